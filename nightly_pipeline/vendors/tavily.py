"""Tavily (search, extract, crawl) through tavily-python's ``TavilyClient``, and what its calls cost.

The run's cap counts queries: a call Tavily answered counts one query, also when its body could not
be read; a call Tavily refused or that never reached it counts none. The credits Tavily reports
(``usage.credits``) go into the ledger's status line. Failure descriptions leave exception messages
out, since they may echo the request.
"""
import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import dagster as dg
import requests
from pydantic import PrivateAttr
from tavily import TavilyClient
from tavily.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidAPIKeyError,
    TavilyKeylessLimitError,
    UsageLimitExceededError,
)
from tavily.errors import TimeoutError as TavilyTimeoutError

from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.paid_call import Answer, Billed, NullClient
from nightly_pipeline.vendors.rate_limits import key_fingerprint
from nightly_pipeline.vendors.retrying import CallRetry, parse_retry_after

DEFAULT_BASE_URL = "https://api.tavily.com"
NO_KEY = "no TAVILY_API_KEY"


class UnreadableResponse(ValueError):
    """Tavily answered 200 with a body that is not the documented JSON object."""


# Failures of one call that leave the run intact; anything else is a bug and should surface.
VENDOR_ERRORS = (UsageLimitExceededError, ForbiddenError, InvalidAPIKeyError, BadRequestError,
                 TavilyTimeoutError, requests.RequestException, UnreadableResponse)
# Refusals about the key or the account: a second endpoint would be refused the same way.
ACCOUNT_ERRORS = (InvalidAPIKeyError, ForbiddenError)
# Tavily answered but the body could not be used: the query still counted.
_ANSWERED_ERRORS = (UnreadableResponse, requests.JSONDecodeError)


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed call; exception messages are left out because they may echo input."""
    if isinstance(exc, UsageLimitExceededError):
        return "rate limited by Tavily (HTTP 429)"
    if isinstance(exc, ForbiddenError):
        return "refused by Tavily: plan or credit limit reached (HTTP 403/432/433)"
    if isinstance(exc, InvalidAPIKeyError):
        return "Tavily rejected the API key (HTTP 401)"
    if isinstance(exc, BadRequestError):
        return "Tavily rejected the request as invalid (HTTP 400)"
    if isinstance(exc, TavilyTimeoutError):
        return "no answer from Tavily in time"
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return f"Tavily answered HTTP {status}"
    if isinstance(exc, requests.RequestException):
        return f"could not reach Tavily ({type(exc).__name__})"
    return "Tavily's answer could not be read"


def credits_of(response: Mapping[str, Any]) -> int:
    usage = response.get("usage")
    credits = usage.get("credits") if isinstance(usage, Mapping) else None
    return credits if isinstance(credits, int) and not isinstance(credits, bool) and credits >= 0 else 0


def answer(response: Any) -> Answer[Mapping[str, Any]]:
    """One query billed for a response, with its credits in the status; raises for an unreadable body."""
    if not isinstance(response, Mapping):
        raise UnreadableResponse(f"expected a JSON object, got {type(response).__name__}")
    return Answer(response, Billed(1, f"ok: {credits_of(response)} credits"))


def billed_for_error(error: Exception, reserved: int) -> Billed:
    """A query counts when Tavily answered, however unusable the answer; not when it refused or was unreachable."""
    return Billed(1 if isinstance(error, _ANSWERED_ERRORS) else 0, f"error: {type(error).__name__}")


# -- retries -----------------------------------------------------------------------------------------
T = TypeVar("T")
# tavily-python raises a 429 without its response; the session's hook keeps the Retry-After of the
# last 429 seen by this thread, and the retry (which runs in the calling thread) reads it.
_last_429 = threading.local()


def _remember_retry_after(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    _last_429.retry_after_s = parse_retry_after(response.headers.get("Retry-After")) \
        if response.status_code == 429 else None
    return response


def is_transient(error: BaseException) -> bool:
    """429 (not the keyless quota), 5xx, timeouts and connection failures."""
    if isinstance(error, TavilyKeylessLimitError):
        return False
    if isinstance(error, (UsageLimitExceededError, TavilyTimeoutError, requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(error, requests.HTTPError):
        return error.response is not None and error.response.status_code >= 500
    return False


def retry_after_of(error: BaseException) -> float | None:
    return getattr(_last_429, "retry_after_s", None) if isinstance(error, UsageLimitExceededError) else None


TAVILY_RETRY = CallRetry(is_transient, retry_after_of)

# The key's fleet-wide pace, set by the caller of a call that runs in a worker thread (which copies
# the caller's context): each attempt of a retried call waits its own turn, since each is a request.
before_each_attempt: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "tavily_before_each_attempt", default=None)


class RetryingTavilyClient(TavilyClient):
    """tavily-python's client whose search, extract and crawl retry transient failures per call.

    The retry sleeps in the calling thread; the stage makes these calls in worker threads.
    """

    def __init__(self, api_key: str, *, api_base_url: str, retry: CallRetry = TAVILY_RETRY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        session = requests.Session()
        session.hooks["response"].append(_remember_retry_after)
        super().__init__(api_key=api_key, api_base_url=api_base_url, session=session)
        self._retry = retry
        self._sleep = sleep

    def _retried(self, call: Callable[[], T]) -> T:
        wait_turn = before_each_attempt.get()
        return self._retry.call(call, sleep=self._sleep,
                                on_attempt=(lambda _: wait_turn()) if wait_turn is not None else None)

    def search(self, *args: Any, **kwargs: Any) -> Any:
        return self._retried(lambda: super(RetryingTavilyClient, self).search(*args, **kwargs))

    def extract(self, *args: Any, **kwargs: Any) -> Any:
        return self._retried(lambda: super(RetryingTavilyClient, self).extract(*args, **kwargs))

    def crawl(self, *args: Any, **kwargs: Any) -> Any:
        return self._retried(lambda: super(RetryingTavilyClient, self).crawl(*args, **kwargs))

    def close(self) -> None:
        # A session handed to tavily-python is the caller's to close.
        super().close()
        self.session.close()


class NullTavilyClient(NullClient):
    """No Tavily tonight: no fallback content and no web search."""


class TavilyResource(dg.ConfigurableResource):
    """Builds the run's ``TavilyClient`` once, when the run starts, and closes it at the end.

    The key comes from the run's settings (``TAVILY_API_KEY``), never from a field, so it cannot
    appear in run config or the UI; without it the client is a :class:`NullTavilyClient`. Never a
    keyless ``TavilyClient``: tavily-python would then read ``TAVILY_API_KEY`` from the process
    environment or fall back to its anonymous mode, behind the run's configuration. ``base_url``
    left unset takes ``TAVILY_BASE_URL``.
    """

    settings: PipelineSettings
    base_url: str | None = None

    _client: TavilyClient | NullTavilyClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = self.settings.settings
        key = (settings.secret("tavily_api_key") or "").strip()
        if not key:
            self._client = NullTavilyClient(NO_KEY)
            return
        base_url = self.base_url or settings.tavily_base_url or DEFAULT_BASE_URL
        self._client = RetryingTavilyClient(key, api_base_url=base_url.rstrip("/"))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def get_client(self) -> TavilyClient | NullTavilyClient:
        if self._client is None:
            raise RuntimeError("TavilyResource is used outside a run; Dagster builds its client at run start")
        return self._client


# -- rate limits ------------------------------------------------------------------------------------------
VENDOR = "tavily"
# Every search, crawl and extract request counts against the key's per-minute limit.
REQUESTS_BUCKET = "tavily.requests"


def fingerprint(client: TavilyClient) -> bytes:
    """The hash naming the client's key in the fleet's rate-limit bookkeeping."""
    return key_fingerprint(VENDOR, str(client.api_key))
