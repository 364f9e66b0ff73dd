"""The rules of a domain's turn, the same for the in-memory gate and the PostgreSQL one.

Each test plays several crawlers (one gate each) against one shared store. Times are read back from
the store itself (the database's clock for PostgreSQL), so the assertions compare stored instants,
not how long anything took here.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from nightly_pipeline.crawl.politeness import DomainScheduler, InMemoryDomainGate
from nightly_pipeline.db.politeness import PostgresDomainGate

DOMAIN = "acme.com.sg"
# Long enough that no test ever waits one out, so every "still inside the interval" holds for sure.
LONG_S = 600.0


@dataclass(frozen=True)
class Stored:
    """A domain's row as the store holds it, in the store's own clock (seconds)."""

    holder: str | None
    last_end: float | None
    last_interval: float
    lease_expires_at: float | None


@dataclass
class Crawlers:
    """``gates[i]`` is crawler i; ``stored`` and ``now`` read the shared store and its clock."""

    gates: list[Any]
    stored: Callable[[str], Stored]
    now: Callable[[], float]


@asynccontextmanager
async def _memory(count: int) -> AsyncIterator[Crawlers]:
    board: dict = {}
    gates = [InMemoryDomainGate(board) for _ in range(count)]

    def stored(domain: str) -> Stored:
        turn = board[domain]
        return Stored(turn.holder, None if turn.last_end == float("-inf") else turn.last_end, turn.last_interval,
                      None if turn.holder is None else turn.lease_expires_at)

    loop_clock = gates[0]._clock
    yield Crawlers(gates, stored, loop_clock)


@asynccontextmanager
async def _postgres(count: int, conninfo: str) -> AsyncIterator[Crawlers]:
    async with AsyncExitStack() as stack:
        gates = [await stack.enter_async_context(PostgresDomainGate.open(conninfo, max_size=1))
                 for _ in range(count)]
        with psycopg.connect(conninfo, autocommit=True) as reader:
            def stored(domain: str) -> Stored:
                row = reader.execute(
                    """SELECT holder, extract(epoch FROM last_end)::float8, last_interval_s,
                              extract(epoch FROM lease_expires_at)::float8
                       FROM domain_politeness WHERE domain = %s""", (domain,)).fetchone()
                return Stored(*row)

            def now() -> float:
                return reader.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]

            yield Crawlers(gates, stored, now)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.database)])
def crawlers(request: pytest.FixtureRequest) -> Callable[[int], Any]:
    if request.param == "memory":
        return _memory
    db_target = request.getfixturevalue("db_target")
    request.getfixturevalue("db")   # empty tables
    return lambda count: _postgres(count, db_target.app_url)


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_free_domain_is_granted_at_once_and_then_held(crawlers) -> None:
    async def scenario() -> None:
        async with crawlers(2) as c:
            a, b = c.gates
            granted, wait = await a.take_turn(DOMAIN, interval_s=LONG_S, lease_s=LONG_S)
            assert granted and wait == pytest.approx(0.0, abs=1e-3)
            assert c.stored(DOMAIN).holder == a.holder
            refused, retry_in = await b.take_turn(DOMAIN, interval_s=0.5, lease_s=LONG_S)
            assert not refused and 0 < retry_in <= LONG_S
            # Asking again while holding the turn keeps it (and extends the lease).
            again, _ = await a.take_turn(DOMAIN, interval_s=LONG_S, lease_s=LONG_S)
            assert again

    _run(scenario())


def test_the_next_turn_starts_the_interval_after_the_last_end(crawlers) -> None:
    async def scenario() -> None:
        async with crawlers(2) as c:
            a, b = c.gates
            await a.take_turn(DOMAIN, interval_s=0.5, lease_s=LONG_S)
            assert await a.end_turn(DOMAIN, interval_s=LONG_S, ended_ago_s=0.0)
            ended = c.stored(DOMAIN)
            assert ended.holder is None and ended.last_interval == LONG_S
            # B asks for a short interval; A's request asked for a long one after it, and that wins.
            granted, wait = await b.take_turn(DOMAIN, interval_s=0.5, lease_s=30.0)
            assert granted and wait > 0
            taken = c.stored(DOMAIN)
            assert taken.holder == b.holder
            assert taken.lease_expires_at - 30.0 >= ended.last_end + LONG_S - 1e-6

    _run(scenario())


def test_a_dead_holder_blocks_only_until_its_lease_expires(crawlers) -> None:
    lease_s, interval_s = 0.3, LONG_S

    async def scenario() -> None:
        async with crawlers(2) as c:
            dead, heir = c.gates
            await dead.take_turn(DOMAIN, interval_s=interval_s, lease_s=LONG_S)
            await dead.end_turn(DOMAIN, interval_s=0.0, ended_ago_s=0.0)
            await dead.take_turn(DOMAIN, interval_s=0.0, lease_s=lease_s)
            held = c.stored(DOMAIN)        # the dead holder never ends this turn
            refusals = 0
            while True:
                before = c.now()
                granted, seconds = await heir.take_turn(DOMAIN, interval_s=interval_s, lease_s=LONG_S)
                if granted:
                    break
                refusals += 1
                # Refused only while the lease runs, and told no more than what it has left.
                assert before < held.lease_expires_at
                assert 0 <= seconds <= lease_s
                await asyncio.sleep(seconds)
            assert refusals >= 1
            taken = c.stored(DOMAIN)
            assert taken.holder == heir.holder
            # Counted from the expiry, not from the last recorded end: the dead holder's request may have
            # reached the site just before the expiry.
            assert taken.lease_expires_at - LONG_S >= held.lease_expires_at + interval_s - 1e-6
            assert held.last_end + interval_s < held.lease_expires_at + interval_s

    _run(scenario())


def test_an_expired_holder_cannot_end_the_next_holders_turn(crawlers) -> None:
    async def scenario() -> None:
        async with crawlers(2) as c:
            slow, heir = c.gates
            await slow.take_turn(DOMAIN, interval_s=0.0, lease_s=0.05)
            while not (await heir.take_turn(DOMAIN, interval_s=0.0, lease_s=LONG_S))[0]:
                await asyncio.sleep(0.02)
            assert not await slow.end_turn(DOMAIN, interval_s=0.0, ended_ago_s=0.0)
            assert c.stored(DOMAIN).holder == heir.holder
            assert await heir.end_turn(DOMAIN, interval_s=0.0, ended_ago_s=0.0)

    _run(scenario())


def test_domains_are_independent(crawlers) -> None:
    async def scenario() -> None:
        async with crawlers(2) as c:
            a, b = c.gates
            assert (await a.take_turn("acme.com.sg", interval_s=LONG_S, lease_s=LONG_S))[0]
            granted, wait = await b.take_turn("other.com.sg", interval_s=LONG_S, lease_s=LONG_S)
            assert granted and wait == pytest.approx(0.0, abs=1e-3)

    _run(scenario())


def test_schedulers_of_separate_crawlers_space_one_domain_from_each_others_ends(crawlers) -> None:
    """Three crawlers, each with its own scheduler, sending to one domain at once."""
    interval_s = 0.05

    async def scenario() -> list[tuple[str, float]]:
        async with crawlers(3) as c:
            loop = asyncio.get_running_loop()
            schedulers = [DomainScheduler(interval_s, gate=gate, request_s=5.0) for gate in c.gates]
            events: list[tuple[str, float]] = []

            async def request(scheduler: DomainScheduler) -> None:
                async with scheduler.slot(DOMAIN):
                    events.append(("start", loop.time()))
                    await asyncio.sleep(0.01)
                    events.append(("end", loop.time()))

            await asyncio.gather(*(request(s) for s in schedulers for _ in range(3)))
            for scheduler in schedulers:
                await scheduler.aclose()
            return events

    events = _run(scenario())
    assert [kind for kind, _ in events] == ["start", "end"] * 9
    ends = [at for kind, at in events if kind == "end"]
    starts = [at for kind, at in events if kind == "start"]
    assert all(started - ended >= interval_s for ended, started in zip(ends, starts[1:]))


def test_handing_back_records_the_end_on_the_stores_clock_or_keeps_it(crawlers) -> None:
    async def scenario() -> None:
        async with crawlers(1) as c:
            (a,) = c.gates
            await a.take_turn(DOMAIN, interval_s=0.5, lease_s=LONG_S)
            before = c.now()
            assert await a.end_turn(DOMAIN, interval_s=2.0, ended_ago_s=5.0)
            after = c.now()
            ended = c.stored(DOMAIN)
            # Never earlier than the real end (5 s before the call), never later than 5 s before its return.
            assert before - 5.0 - 1e-6 <= ended.last_end <= after - 5.0 + 1e-6
            assert ended.last_interval == 2.0
            # A turn that sent nothing leaves the last end and its interval as they were.
            await a.take_turn(DOMAIN, interval_s=0.5, lease_s=LONG_S)
            assert await a.end_turn(DOMAIN, interval_s=0.5, ended_ago_s=None)
            kept = c.stored(DOMAIN)
            assert (kept.holder, kept.last_end, kept.last_interval) == (None, ended.last_end, 2.0)

    _run(scenario())


class CountingGate:
    """Counts what a scheduler asks of the gate it wraps."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.takes = 0
        self.ends: list[float | None] = []

    async def take_turn(self, domain: str, *, interval_s: float, lease_s: float) -> tuple[bool, float]:
        self.takes += 1
        return await self.inner.take_turn(domain, interval_s=interval_s, lease_s=lease_s)

    async def end_turn(self, domain: str, *, interval_s: float, ended_ago_s: float | None) -> bool:
        self.ends.append(ended_ago_s)
        return await self.inner.end_turn(domain, interval_s=interval_s, ended_ago_s=ended_ago_s)


def test_a_site_visit_takes_the_turn_once_and_hands_it_back_once(crawlers) -> None:
    """Requests that follow each other keep the turn: one take and one hand-back, not one per request."""
    interval_s = 0.02

    async def scenario() -> tuple[CountingGate, list[float], Stored, float]:
        async with crawlers(2) as c:
            loop = asyncio.get_running_loop()
            gate = CountingGate(c.gates[0])
            scheduler = DomainScheduler(interval_s, gate=gate, request_s=5.0)
            starts = []
            for _ in range(5):
                async with scheduler.slot(DOMAIN):
                    starts.append(loop.time())
            held = c.stored(DOMAIN)
            # Another crawler waits while the turn is kept, and gets it once it is handed back.
            other = DomainScheduler(interval_s, gate=c.gates[1], request_s=5.0)
            async with other.slot(DOMAIN):
                handed_back = c.stored(DOMAIN)
            await other.aclose()
            await scheduler.aclose()
            return gate, starts, held, handed_back.holder

    gate, starts, held, next_holder = _run(scenario())
    assert gate.takes == 1 and len(gate.ends) == 1 and gate.ends[0] is not None
    assert all(later - earlier >= interval_s for earlier, later in zip(starts, starts[1:]))
    assert held.holder is not None and next_holder not in (None, held.holder)


def test_many_turns_asked_at_once_are_answered_each(crawlers) -> None:
    """Two hundred sites starting together, one of them asked for twice."""
    domains = [f"site{n:03d}.com.sg" for n in range(200)]

    async def scenario() -> list[tuple[bool, float]]:
        async with crawlers(2) as c:
            a, b = c.gates
            assert (await b.take_turn(domains[0], interval_s=LONG_S, lease_s=LONG_S))[0]
            answers = await asyncio.gather(*(a.take_turn(domain, interval_s=0.5, lease_s=LONG_S)
                                             for domain in [*domains, domains[1]]))
            assert c.stored(domains[5]).holder == a.holder
            ended = await asyncio.gather(*(a.end_turn(domain, interval_s=0.5, ended_ago_s=0.0)
                                           for domain in domains[1:]))
            assert all(ended)
            assert c.stored(domains[5]).holder is None and c.stored(domains[0]).holder == b.holder
            return answers

    answers = _run(scenario())
    refused, *granted, again = answers
    assert not refused[0] and 0 < refused[1] <= LONG_S
    assert all(ok and wait == pytest.approx(0.0, abs=1e-3) for ok, wait in granted)
    assert again[0]
