"""The one retry policy for a single vendor call: at most three attempts, exponential backoff with
full jitter, and the wait a 429 names (``Retry-After``) honoured up to a cap.

Each vendor module says which of its errors are transient and where their ``Retry-After`` is; this
module decides how long to wait and when to give up. A wait the vendor asks for beyond the cap (a
daily quota, a long maintenance window) is not waited out: the error is raised at once, and the
caller degrades the item (it is retried by the next run) or fails the step. One bad call never
fails a step by itself.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import wait_base

T = TypeVar("T")

MAX_ATTEMPTS = 3
BASE_WAIT_S = 1.0
MAX_BACKOFF_S = 20.0
MAX_RETRY_AFTER_S = 60.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; ``None`` when absent or an HTTP date
    (servers in front of these vendors send seconds; a date is treated as no hint)."""
    text = (value or "").strip()
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class _WaitAsked(wait_base):
    """The part of the wait the vendor asked for; the jittered backoff is added on top."""

    def __init__(self, retry_after_of: Callable[[BaseException], float | None]) -> None:
        self._retry_after_of = retry_after_of

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        return (self._retry_after_of(error) or 0.0) if error is not None else 0.0


@dataclasses.dataclass(frozen=True)
class CallRetry:
    """How one vendor's calls are retried.

    ``is_transient`` says whether an error may go away on its own (429, 5xx, timeouts, resets);
    ``retry_after_of`` reads the wait the vendor asked for from such an error, if any.
    """

    is_transient: Callable[[BaseException], bool]
    retry_after_of: Callable[[BaseException], float | None] = lambda error: None
    max_attempts: int = MAX_ATTEMPTS
    base_wait_s: float = BASE_WAIT_S
    max_backoff_s: float = MAX_BACKOFF_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_wait_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("retry waits must not be negative")

    def should_retry(self, error: BaseException) -> bool:
        if not self.is_transient(error):
            return False
        asked = self.retry_after_of(error)
        return asked is None or asked <= self.max_retry_after_s

    def _options(self) -> dict[str, object]:
        return {
            "stop": stop_after_attempt(self.max_attempts),
            "wait": _WaitAsked(self.retry_after_of)
            + wait_random_exponential(multiplier=self.base_wait_s, max=self.max_backoff_s),
            "retry": retry_if_exception(self.should_retry),
            "reraise": True,
        }

    def call(self, fn: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep,
             on_attempt: Callable[[int], None] | None = None) -> T:
        """``fn()`` until it succeeds, fails for good, or the attempts run out (its last error raised)."""
        attempts = 0
        for attempt in Retrying(sleep=sleep, **self._options()):
            with attempt:
                attempts += 1
                if on_attempt is not None:
                    on_attempt(attempts)
                return fn()
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover

    async def acall(self, fn: Callable[[], Awaitable[T]], *,
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                    on_attempt: Callable[[int], None] | None = None) -> T:
        """The same for a coroutine function."""
        attempts = 0
        async for attempt in AsyncRetrying(sleep=sleep, **self._options()):
            with attempt:
                attempts += 1
                if on_attempt is not None:
                    on_attempt(attempts)
                return await fn()
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover
