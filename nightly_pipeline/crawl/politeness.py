"""Per-domain request spacing that holds across processes, and a bound on requests in flight.

One request at a time per registrable domain, and the next one starts at least the domain's
interval after the previous one *ended*. Counting from the end rather than the start is what
makes the spacing hold at the server: the server saw the previous request before its response
finished, so no network or server-side jitter can squeeze two arrivals closer than the
interval. The interval is never randomised; Crawl-delay can only raise it.

A request is sent only in its domain's turn, taken from a :class:`DomainGate`. The gate knows
who may send to the domain now and when its last request ended, for everyone who crawls: the
pipeline uses the PostgreSQL gate (:mod:`nightly_pipeline.db.politeness`), so tenant runs in other
processes or on other hosts against the same database are spaced too; :class:`InMemoryDomainGate`
serves a single process (unit tests, tools). A turn is a lease: it covers the wait for the start
and the longest a request may take, so a crawler that died holding it blocks the domain only until
the lease expires, and the next request then counts its interval from the expiry.

:class:`DomainScheduler` sits in front of the gate in each process. It queues the process's own
requests per domain; keeps a turn while those requests follow each other (a site visit), spacing
them itself by its own clock, and hands it back with the last one's end shortly after; and bounds
requests in flight across all domains. Its per-domain state is dropped once the domain is idle and
its longest possible interval has passed, so a broad crawl does not accumulate one object per
domain ever seen (Scrapy's per-slot growth, scrapy#2077).
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

from nightly_pipeline.crawl.pages import site_key

logger = logging.getLogger(__name__)

# How often a request whose domain another crawler holds asks again, at most once per interval:
# the other crawler's request must end and its interval pass before ours may start anyway.
MIN_POLL_S = 0.02
# Added to the longest request when leasing a turn. A turn kept through a site visit is extended
# (one more round trip) once less than a whole request fits in it, so the margin is about how long a
# visit runs on one lease; it is also how long beyond a request a dead crawler can block a domain.
LEASE_MARGIN_S = 15.0
# How long a process keeps a domain's turn after its request ended, for its next request to the
# domain (the next page of the same site visit); shorter than any interval, so another crawler
# waiting for the domain loses nothing by it.
HOLD_S = 0.1
DEFAULT_REQUEST_S = 30.0


def politeness_key(host: str) -> str:
    """The key requests are spaced by: the registrable domain, or the host when it has none."""
    if ":" in host:
        # An IPv6 literal has no registrable domain (and would read as host:port to a URL parser).
        return host.strip("[]").lower()
    return site_key(host) or host.lower()


class DomainGate(Protocol):
    """Whose turn it is to send to a domain, and when the domain's last request ended."""

    async def take_turn(self, domain: str, *, interval_s: float, lease_s: float) -> tuple[bool, float]:
        """Take the domain's turn.

        ``(True, wait)``: the turn is ours; send no sooner than ``wait`` seconds from now (the
        previous request's end plus the larger of ``interval_s`` and the interval that request
        asked for), and only while the lease lasts (``wait + lease_s`` from now); then
        :meth:`end_turn`. Taking the turn again while holding it extends the lease. The holder
        spaces its own requests within a turn itself.

        ``(False, retry_in)``: another crawler holds the turn, for ``retry_in`` seconds at most.
        """
        ...

    async def end_turn(self, domain: str, *, interval_s: float, ended_ago_s: float | None) -> bool:
        """Hand the turn back: our last request in it ended ``ended_ago_s`` seconds ago and asks for
        ``interval_s`` after it; ``None`` when the turn sent nothing (the last end stays as it was).

        Returns False when the turn was no longer ours (the lease had expired and been taken).
        """
        ...


@dataclass
class _DomainTurn:
    last_end: float = float("-inf")
    last_interval: float = 0.0
    holder: str | None = None
    start: float = float("-inf")
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
        if turn.holder == self.holder:
            # Taking our own turn again (to extend it) never moves its start earlier.
            start = max(start, turn.start)
        turn.holder = self.holder
        turn.start = start
        turn.lease_expires_at = start + lease_s
        return True, start - now

    async def end_turn(self, domain: str, *, interval_s: float, ended_ago_s: float | None) -> bool:
        turn = self._board.get(domain)
        if turn is None or turn.holder != self.holder:
            return False
        if ended_ago_s is not None:
            turn.last_end = max(turn.last_end, self._clock() - ended_ago_s)
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
    # The gate's turn as this process holds it: until when (by our clock, conservatively), whether a
    # request was sent in it, and a pending hand-back. ``serial`` counts requests, so a hand-back
    # scheduled before the latest request knows it is stale.
    lease_ends: float = float("-inf")
    pending_take: asyncio.Future[tuple[bool, float]] | None = None
    unsure: bool = False
    sent: bool = False
    serial: int = 0
    release_handle: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        return self.lease_ends != float("-inf")

    @property
    def to_hand_back(self) -> bool:
        return self.holding or self.unsure


class DomainScheduler:
    """Spaces requests per domain through a :class:`DomainGate` and bounds requests in flight.

    ``request_s`` is the longest a request may hold its slot (the crawler's timeout); turns are
    leased for that plus :data:`LEASE_MARGIN_S`. A turn is kept while this process's requests to
    the domain follow each other (a site visit: robots.txt, the home page, its key pages), so most
    requests need no round trip to the gate; it is handed back :data:`HOLD_S` after the last one
    ended, recording that end, and at :meth:`aclose`. Without a gate, an :class:`InMemoryDomainGate`
    of its own spaces this process's requests only.
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
        self._releases: set[asyncio.Task[None]] = set()

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
                state.serial += 1
                if state.release_handle is not None:
                    state.release_handle.cancel()
                    state.release_handle = None
                try:
                    await self._start_turn(key, state, interval)
                except BaseException:
                    self._release_later(key, state)
                    raise
                state.sent = True
                try:
                    yield
                finally:
                    state.last_end = loop.time()
                    state.last_interval = interval
                    self._in_flight.release()
                    self._release_later(key, state)
        finally:
            self._leave(key, state)

    async def aclose(self) -> None:
        """Hand back every turn still held (call before the gate closes)."""
        for state in self._domains.values():
            if state.release_handle is not None:
                state.release_handle.cancel()
                state.release_handle = None
        held = [self._release(key, state, state.serial) for key, state in self._domains.items()
                if state.to_hand_back]
        await asyncio.gather(*held, *self._releases, return_exceptions=True)

    async def _start_turn(self, key: str, state: _DomainState, interval: float) -> None:
        """Return when the request may be sent, holding the domain's turn and an in-flight slot."""
        loop = asyncio.get_running_loop()
        while True:
            ready_at = state.last_end + max(interval, state.last_interval)
            if state.lease_ends - max(ready_at, loop.time()) < self._request_s:
                # Not holding the turn, or not for long enough: ask the gate (again).
                asked_at = loop.time()
                state.lease_ends = float("-inf")
                # Shielded and remembered: if we stop listening, the answer still arrives, and the
                # hand-back waits for it rather than overtake it.
                state.pending_take = asyncio.ensure_future(
                    self.gate.take_turn(key, interval_s=interval, lease_s=self.lease_s))
                try:
                    granted, seconds = await asyncio.shield(state.pending_take)
                except BaseException:
                    state.unsure = True
                    raise
                state.pending_take = None
                state.unsure = False
                if not granted:
                    state.lease_ends = float("-inf")
                    state.sent = False
                    await asyncio.sleep(max(MIN_POLL_S, min(seconds, interval)))
                    continue
                # The gate's wait counts from its answer, which came after we asked and before now.
                state.lease_ends = asked_at + seconds + self.lease_s
                ready_at = max(ready_at, loop.time() + seconds)
            # A timer may fire a clock tick early; loop until the floor has truly passed.
            while (wait := ready_at - loop.time()) > 0:
                await asyncio.sleep(wait)
            await self._in_flight.acquire()
            if loop.time() + self._request_s <= state.lease_ends:
                return
            # Queued for an in-flight slot so long that the lease could run out mid-request.
            self._in_flight.release()

    def _release_later(self, key: str, state: _DomainState) -> None:
        if not state.to_hand_back:
            return
        loop = asyncio.get_running_loop()
        state.release_handle = loop.call_later(HOLD_S, self._spawn_release, key, state, state.serial)

    def _spawn_release(self, key: str, state: _DomainState, serial: int) -> None:
        task = asyncio.ensure_future(self._release(key, state, serial))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, key: str, state: _DomainState, serial: int) -> None:
        """Hand the turn back unless another request took it up meanwhile; record our last end."""
        loop = asyncio.get_running_loop()
        async with state.lock:
            if state.serial != serial or not state.to_hand_back:
                return
            state.release_handle = None
            if state.pending_take is not None:
                await asyncio.wait([state.pending_take])
                state.pending_take = None
            state.unsure = False
            # Recorded as "so long ago" and placed on the gate's clock by the gate: the statement
            # runs after we measured, so the recorded end is never earlier than the real one.
            ended_ago = loop.time() - state.last_end if state.sent else None
            state.lease_ends = float("-inf")
            state.sent = False
            try:
                kept = await self.gate.end_turn(key, interval_s=state.last_interval, ended_ago_s=ended_ago)
            except Exception as exc:  # noqa: BLE001 - the lease expires by itself; the crawl goes on
                logger.warning("could not hand back the turn of %s (%s: %s); it lapses with its lease",
                               key, type(exc).__name__, exc)
                return
            if not kept and ended_ago is not None:
                logger.warning("the turn of %s had expired before it was handed back", key)

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
            self._forget_later(key, state)

    def _forget_later(self, key: str, state: _DomainState) -> None:
        loop = asyncio.get_running_loop()
        forget_at = max(state.last_end + self.max_interval_s, loop.time() + HOLD_S)
        state.forget_handle = loop.call_at(forget_at, self._forget_if_idle, key, state)

    def _forget_if_idle(self, key: str, state: _DomainState) -> None:
        if state.users or self._domains.get(key) is not state:
            return
        if state.to_hand_back:
            # Its hand-back is under way.
            loop = asyncio.get_running_loop()
            state.forget_handle = loop.call_later(MIN_POLL_S, self._forget_if_idle, key, state)
            return
        del self._domains[key]
