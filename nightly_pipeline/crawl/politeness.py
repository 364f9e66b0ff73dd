"""Per-domain request spacing and a global bound on requests in flight (asyncio only).

One request at a time per registrable domain, and the next one starts at least the domain's
interval after the previous one *ended*. Counting from the end rather than the start is what
makes the spacing hold at the server: the server saw the previous request before its response
finished, so no network or server-side jitter can squeeze two arrivals closer than the
interval. The interval is never randomised; Crawl-delay can only raise it.

State per domain is a lock and a timestamp. It is dropped once the domain is idle and its
longest possible interval has passed, so a broad crawl does not accumulate one object per
domain ever seen (Scrapy's per-slot growth, scrapy#2077).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from nightly_pipeline.crawl.pages import site_key


@dataclass
class _DomainState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_end: float = float("-inf")
    last_interval: float = 0.0
    users: int = 0
    forget_handle: asyncio.TimerHandle | None = None


def politeness_key(host: str) -> str:
    """The key requests are spaced by: the registrable domain, or the host when it has none."""
    if ":" in host:
        # An IPv6 literal has no registrable domain (and would read as host:port to a URL parser).
        return host.strip("[]").lower()
    return site_key(host) or host.lower()


class DomainScheduler:
    """Spaces requests per domain and bounds how many run at once across all domains."""

    def __init__(self, min_interval_s: float = 0.5, *, max_interval_s: float = 10.0,
                 max_in_flight: int = 64) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.min_interval_s = min_interval_s
        self.max_interval_s = max(max_interval_s, min_interval_s)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._domains: dict[str, _DomainState] = {}

    @property
    def tracked_domains(self) -> int:
        """Domains with live state (waiting, in flight, or still inside their interval)."""
        return len(self._domains)

    def interval_for(self, crawl_delay_s: float | None) -> float:
        """The interval a request observes: the floor, raised by Crawl-delay up to the cap."""
        if crawl_delay_s is None:
            return self.min_interval_s
        return min(max(self.min_interval_s, crawl_delay_s), self.max_interval_s)

    @asynccontextmanager
    async def slot(self, key: str, *, crawl_delay_s: float | None = None) -> AsyncIterator[None]:
        """Hold the domain's turn for one request: enter when it may start, exit when it ended."""
        loop = asyncio.get_running_loop()
        interval = self.interval_for(crawl_delay_s)
        state = self._domains.get(key)
        if state is None:
            state = self._domains[key] = _DomainState()
        state.users += 1
        if state.forget_handle is not None:
            state.forget_handle.cancel()
            state.forget_handle = None
        try:
            async with state.lock:
                ready_at = state.last_end + max(interval, state.last_interval)
                # A timer may fire a clock tick early; loop until the floor has truly passed.
                while (wait := ready_at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                async with self._in_flight:
                    try:
                        yield
                    finally:
                        state.last_end = loop.time()
                        state.last_interval = interval
        finally:
            state.users -= 1
            if state.users == 0:
                forget_at = max(state.last_end + self.max_interval_s, loop.time())
                state.forget_handle = loop.call_at(forget_at, self._forget_if_idle, key, state)

    def _forget_if_idle(self, key: str, state: _DomainState) -> None:
        if state.users == 0 and self._domains.get(key) is state:
            del self._domains[key]
