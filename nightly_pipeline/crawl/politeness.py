"""Per-domain request spacing that holds across processes, and a bound on requests in flight.

One request at a time per registrable domain, and the next one starts at least the domain's
interval after the previous one *ended*. Counting from the end rather than the start is what
makes the spacing hold at the server: the server saw the previous request before its response
finished, so no network or server-side jitter can squeeze two arrivals closer than the
interval. The interval is never randomised; Crawl-delay can only raise it.

Every request asks a :class:`DomainGate` for the domain's turn. The gate knows who may send to
the domain now and when its last request ended, for everyone who crawls: the pipeline uses the
PostgreSQL gate (:mod:`nightly_pipeline.db.politeness`), so tenant runs in other processes or on
other hosts against the same database are spaced too; :class:`InMemoryDomainGate` serves a single
process (unit tests, tools). A turn is a lease: it covers the wait for the request's start and the
longest the request may take, so a crawler that died holding it blocks the domain only until the
lease expires, and the next request then counts its interval from the expiry.

:class:`DomainScheduler` sits in front of the gate in each process. It queues the process's own
requests per domain, so only one of them at a time asks the gate; remembers each domain's last
end itself, so its own spacing never depends on the gate's answer arriving; and bounds requests
in flight across all domains. Its per-domain state is dropped once the domain is idle and its
longest possible interval has passed, so a broad crawl does not accumulate one object per domain
ever seen (Scrapy's per-slot growth, scrapy#2077).
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from nightly_pipeline.crawl.pages import registrable_domain

logger = logging.getLogger(__name__)

# How often a request whose domain another crawler holds asks again, at most once per interval:
# the other crawler's request must end and its interval pass before ours may start anyway.
MIN_POLL_S = 0.02
# Added to the longest request when leasing a turn: room for the event loop's own delays between
# the lease check and the send.
LEASE_MARGIN_S = 5.0
DEFAULT_REQUEST_S = 30.0


def politeness_key(host: str) -> str:
    """The key requests are spaced by: the registrable domain, or the host when it has none."""
    if ":" in host:
        # An IPv6 literal has no registrable domain (and would read as host:port to a URL parser).
        return host.strip("[]").lower()
    return registrable_domain(host) or host.lower()


class DomainGate(Protocol):
    """Whose turn it is to send to a domain, and when the domain's last request ended."""

    async def take_turn(self, domain: str, *, interval_s: float, lease_s: float) -> tuple[bool, float]:
        """Take the domain's turn for one request.

        ``(True, wait)``: the turn is ours; send no sooner than ``wait`` seconds from now (the
        previous request's end plus the larger of ``interval_s`` and the interval that request
        asked for), then :meth:`end_turn`. The lease lasts until ``wait + lease_s`` from now;
        taking the turn again while holding it extends the lease.

        ``(False, retry_in)``: another crawler holds the turn, for ``retry_in`` seconds at most.
        """
        ...

    async def end_turn(self, domain: str, *, interval_s: float) -> bool:
        """Our request to ``domain`` ended now; ``interval_s`` is the spacing it asks for after it.

        Returns False when the turn was no longer ours (the lease had expired and been taken).
        """
        ...


@dataclass
class _DomainTurn:
    last_end: float = float("-inf")
    last_interval: float = 0.0
    holder: str | None = None
    lease_expires_at: float = float("-inf")


class InMemoryDomainGate:
    """A :class:`DomainGate` in this process's memory, by its monotonic clock.

    Gates built on one shared ``board`` behave as crawlers in separate processes sharing a database
    (each gate is one holder); the rules are the PostgreSQL gate's.
    """

    # Idle entries are swept once this many takes have passed since the last sweep.
    SWEEP_EVERY = 4096

    def __init__(self, board: dict[str, _DomainTurn] | None = None, *,
                 clock: Callable[[], float] = time.monotonic, holder: str | None = None) -> None:
        self._board: dict[str, _DomainTurn] = {} if board is None else board
        self._clock = clock
        self.holder = holder or uuid.uuid4().hex
        self._takes = 0

    def __len__(self) -> int:
        return len(self._board)

    async def take_turn(self, domain: str, *, interval_s: float, lease_s: float) -> tuple[bool, float]:
        now = self._clock()
        self._sweep(now)
        turn = self._board.setdefault(domain, _DomainTurn())
        someone_else = turn.holder is not None and turn.holder != self.holder
        if someone_else and turn.lease_expires_at > now:
            return False, turn.lease_expires_at - now
        base = turn.last_end
        if someone_else:
            # The lease ran out while its holder may have been sending: its request may have
            # reached the site as late as the expiry.
            base = max(base, turn.lease_expires_at)
        start = max(now, base + max(interval_s, turn.last_interval))
        turn.holder = self.holder
        turn.lease_expires_at = start + lease_s
        return True, start - now

    async def end_turn(self, domain: str, *, interval_s: float) -> bool:
        turn = self._board.get(domain)
        if turn is None or turn.holder != self.holder:
            return False
        turn.last_end = self._clock()
        turn.last_interval = interval_s
        turn.holder = None
        turn.lease_expires_at = float("-inf")
        return True

    def _sweep(self, now: float) -> None:
        self._takes += 1
        if self._takes % self.SWEEP_EVERY:
            return
        idle = [domain for domain, turn in self._board.items()
                if turn.holder is None and turn.last_end + turn.last_interval < now]
        for domain in idle:
            del self._board[domain]


@dataclass
class _DomainState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_end: float = float("-inf")
    last_interval: float = 0.0
    users: int = 0
    forget_handle: asyncio.TimerHandle | None = None


class DomainScheduler:
    """Spaces requests per domain through a :class:`DomainGate` and bounds requests in flight.

    ``request_s`` is the longest a request may hold its slot (the crawler's timeout); turns are
    leased for that plus :data:`LEASE_MARGIN_S` after their start. Without a gate, an
    :class:`InMemoryDomainGate` of its own spaces this process's requests only.
    """

    def __init__(self, min_interval_s: float = 0.5, *, max_interval_s: float = 10.0,
                 max_in_flight: int = 64, gate: DomainGate | None = None,
                 request_s: float = DEFAULT_REQUEST_S) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        if request_s <= 0:
            raise ValueError("request_s must be > 0")
        self.min_interval_s = min_interval_s
        self.max_interval_s = max(max_interval_s, min_interval_s)
        self.gate: DomainGate = gate if gate is not None else InMemoryDomainGate()
        self._request_s = request_s
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._domains: dict[str, _DomainState] = {}

    @property
    def tracked_domains(self) -> int:
        """Domains with live state (waiting, in flight, or still inside their interval)."""
        return len(self._domains)

    @property
    def lease_s(self) -> float:
        return self._request_s + LEASE_MARGIN_S

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
        state = self._enter(key)
        try:
            async with state.lock:
                await self._start_turn(key, state, interval)
                try:
                    yield
                finally:
                    state.last_end = loop.time()
                    state.last_interval = interval
                    self._in_flight.release()
                    await self._end_turn(key, interval)
        finally:
            self._leave(key, state)

    async def _start_turn(self, key: str, state: _DomainState, interval: float) -> None:
        """Return when the request may be sent, holding the domain's turn and an in-flight slot."""
        loop = asyncio.get_running_loop()
        while True:
            asked_at = loop.time()
            granted, seconds = await self.gate.take_turn(key, interval_s=interval, lease_s=self.lease_s)
            if not granted:
                await asyncio.sleep(max(MIN_POLL_S, min(seconds, interval)))
                continue
            try:
                # The gate's wait counts from its answer, which came after we asked and before now.
                ready_at = max(loop.time() + seconds, state.last_end + max(interval, state.last_interval))
                lease_ends = asked_at + seconds + self.lease_s
                # A timer may fire a clock tick early; loop until the floor has truly passed.
                while (wait := ready_at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await self._in_flight.acquire()
            except BaseException:
                # Cancelled while waiting: hand the turn back rather than let it block until expiry.
                await self._end_turn(key, interval)
                raise
            if loop.time() + self._request_s <= lease_ends:
                return
            # Queued for an in-flight slot so long that the lease could run out mid-request.
            self._in_flight.release()

    async def _end_turn(self, key: str, interval: float) -> None:
        try:
            kept = await self.gate.end_turn(key, interval_s=interval)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself; the crawl goes on
            logger.warning("could not end the turn of %s (%s: %s); it lapses with its lease",
                           key, type(exc).__name__, exc)
            return
        if not kept:
            logger.warning("the turn of %s was no longer ours when its request ended", key)

    def _enter(self, key: str) -> _DomainState:
        state = self._domains.get(key)
        if state is None:
            state = self._domains[key] = _DomainState()
        state.users += 1
        if state.forget_handle is not None:
            state.forget_handle.cancel()
            state.forget_handle = None
        return state

    def _leave(self, key: str, state: _DomainState) -> None:
        state.users -= 1
        if state.users == 0:
            loop = asyncio.get_running_loop()
            forget_at = max(state.last_end + self.max_interval_s, loop.time())
            state.forget_handle = loop.call_at(forget_at, self._forget_if_idle, key, state)

    def _forget_if_idle(self, key: str, state: _DomainState) -> None:
        if state.users == 0 and self._domains.get(key) is state:
            del self._domains[key]
