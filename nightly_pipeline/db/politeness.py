"""The crawl's per-domain turns in PostgreSQL (table ``domain_politeness``), shared by every process.

:class:`PostgresDomainGate` is the gate of :mod:`nightly_pipeline.crawl.politeness` for the pipeline:
each tenant run opens one, with a small asyncio pool of its own. A crawler takes a domain's turn here
before its first request to the domain and hands it back after the last one of a site visit. Turns
asked for while a statement runs go together in the next one (one statement for any number of
domains), so hundreds of sites starting at once cost a few round trips, not hundreds.

All times are computed by the server with ``clock_timestamp()``, so hosts with drifting clocks still
space their requests correctly; the crawler only ever receives and sends durations.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)

# Take the turns that are free, ours, or whose lease has expired, and say how long to wait; for the
# others say how long the holder's lease has left (read from the statement's snapshot). The requested
# interval and lease travel in the inserted row, the only place ON CONFLICT can read them from. Rows
# are locked in domain order, as the hand-back locks them, so two crawlers' batches cannot deadlock.
_TAKE_TURNS = """
WITH asked AS (
    SELECT domain, interval_s, lease_s
    FROM unnest(%(domains)s::text[], %(intervals)s::float8[], %(leases)s::float8[]) AS a(domain, interval_s, lease_s)
), taken AS (
    INSERT INTO domain_politeness AS t (domain, holder, lease_expires_at, lease_s, last_interval_s)
    SELECT domain, %(holder)s, clock_timestamp() + make_interval(secs => lease_s), lease_s, interval_s
    FROM asked ORDER BY domain
    ON CONFLICT (domain) DO UPDATE
    SET holder = excluded.holder,
        lease_s = excluded.lease_s,
        lease_expires_at = greatest(
            clock_timestamp(),
            -- Taking over an expired lease: its holder's request may have reached the site as late as the expiry.
            CASE WHEN t.holder <> excluded.holder THEN greatest(t.last_end, t.lease_expires_at) ELSE t.last_end END
                + make_interval(secs => greatest(excluded.last_interval_s, t.last_interval_s)),
            -- Taking our own turn again (to extend it) never moves its start earlier.
            CASE WHEN t.holder = excluded.holder THEN t.lease_expires_at - make_interval(secs => t.lease_s) END
        ) + make_interval(secs => excluded.lease_s)
    WHERE t.holder IS NULL OR t.holder = excluded.holder OR t.lease_expires_at <= clock_timestamp()
    RETURNING t.domain, extract(epoch FROM t.lease_expires_at - clock_timestamp())::float8 - t.lease_s AS wait_s
)
SELECT a.domain,
       k.domain IS NOT NULL AS granted,
       CASE WHEN k.domain IS NOT NULL THEN greatest(k.wait_s, 0)
            ELSE coalesce(extract(epoch FROM d.lease_expires_at - clock_timestamp())::float8, 0) END AS seconds
FROM asked a
LEFT JOIN taken k ON k.domain = a.domain
LEFT JOIN domain_politeness d ON d.domain = a.domain
"""

# Hand turns back. Each holder says how long ago its last request ended (NULL: the turn sent nothing
# and the last end stays); the server places that on its own clock when the statement runs, after the
# holder measured, so the recorded end is never earlier than the real one.
_END_TURNS = """
WITH ended AS (
    SELECT domain, interval_s, ended_ago_s
    FROM unnest(%(domains)s::text[], %(intervals)s::float8[], %(ended_ago)s::float8[]) AS e(domain, interval_s, ended_ago_s)
), mine AS MATERIALIZED (
    SELECT d.domain FROM domain_politeness d JOIN ended USING (domain)
    WHERE d.holder = %(holder)s ORDER BY d.domain FOR UPDATE OF d
)
UPDATE domain_politeness d
SET last_end = CASE WHEN e.ended_ago_s IS NULL THEN d.last_end
                    ELSE greatest(d.last_end, clock_timestamp() - make_interval(secs => e.ended_ago_s)) END,
    last_interval_s = CASE WHEN e.ended_ago_s IS NULL THEN d.last_interval_s ELSE e.interval_s END,
    holder = NULL,
    lease_expires_at = NULL,
    lease_s = NULL
FROM ended e
WHERE d.domain = e.domain AND d.domain IN (SELECT domain FROM mine) AND d.holder = %(holder)s
RETURNING d.domain
"""

# Rows nobody has touched for this long say nothing about any interval (Crawl-delay is capped far below).
_FORGET_STALE = """
DELETE FROM domain_politeness
WHERE coalesce(lease_expires_at, last_end) < clock_timestamp() - interval '1 hour'
"""

# Domains per statement; more wait for the next one.
MAX_BATCH = 500

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Batches(Generic[Item, Result]):
    """Runs ``execute`` on everything submitted meanwhile, at most one item per key per statement."""

    def __init__(self, execute: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
                 key: Callable[[Item], Hashable]) -> None:
        self._execute = execute
        self._key = key
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, later, keys = [], [], set()
            for entry in self._pending:
                key = self._key(entry[0])
                if key in keys or len(batch) >= MAX_BATCH:
                    later.append(entry)
                else:
                    keys.add(key)
                    batch.append(entry)
            self._pending = later
            try:
                results = await self._execute([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._draining is not None:
            await asyncio.gather(self._draining, return_exceptions=True)


def new_holder() -> str:
    """Names this crawler in the table: host and process for an operator, random for uniqueness."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class PostgresDomainGate:
    """A :class:`~nightly_pipeline.crawl.politeness.DomainGate` on the ``domain_politeness`` table."""

    def __init__(self, pool: AsyncConnectionPool, *, holder: str | None = None) -> None:
        self._pool = pool
        self.holder = holder or new_holder()
        self._takes: _Batches[tuple[str, float, float], tuple[bool, float]] = _Batches(
            self._take_turns, key=lambda item: item[0])
        self._ends: _Batches[tuple[str, float, float | None], bool] = _Batches(
            self._end_turns, key=lambda item: item[0])

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, conninfo: str, *, max_size: int = 4,
                   holder: str | None = None) -> AsyncIterator[PostgresDomainGate]:
        """A gate with its own pool on ``conninfo`` (the runtime role's URL), closed on exit."""
        pool = AsyncConnectionPool(conninfo, min_size=1, max_size=max_size, open=False,
                                   kwargs={"autocommit": True}, name="domain_politeness")
        await pool.open(wait=True, timeout=30)
        try:
            gate = cls(pool, holder=holder)
            await gate.forget_stale()
            try:
                yield gate
            finally:
                await gate._takes.aclose()
                await gate._ends.aclose()
        finally:
            await pool.close()

    async def take_turn(self, domain: str, *, interval_s: float, lease_s: float) -> tuple[bool, float]:
        return await self._takes.submit((domain, float(interval_s), float(lease_s)))

    async def end_turn(self, domain: str, *, interval_s: float, ended_ago_s: float | None) -> bool:
        ago = None if ended_ago_s is None else max(0.0, float(ended_ago_s))
        return await self._ends.submit((domain, float(interval_s), ago))

    async def forget_stale(self) -> int:
        """Delete rows idle far longer than any interval; returns how many."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_FORGET_STALE)
            return cursor.rowcount

    async def _take_turns(self, asked: Sequence[tuple[str, float, float]]) -> list[tuple[bool, float]]:
        params = {"holder": self.holder, "domains": [domain for domain, _, _ in asked],
                  "intervals": [interval for _, interval, _ in asked], "leases": [lease for _, _, lease in asked]}
        rows = {row[0]: (bool(row[1]), float(row[2])) for row in await self._fetch_all(_TAKE_TURNS, params)}
        return [rows[domain] for domain, _, _ in asked]

    async def _end_turns(self, ended: Sequence[tuple[str, float, float | None]]) -> list[bool]:
        params = {"holder": self.holder, "domains": [domain for domain, _, _ in ended],
                  "intervals": [interval for _, interval, _ in ended], "ended_ago": [ago for _, _, ago in ended]}
        handed_back = {row[0] for row in await self._fetch_all(_END_TURNS, params)}
        return [domain in handed_back for domain, _, _ in ended]

    async def _fetch_all(self, query: str, params: dict[str, object]) -> list[tuple]:
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    cursor = await conn.execute(query, params)
                    return await cursor.fetchall()
            except psycopg.OperationalError as exc:
                # A connection the server dropped is discarded by the pool, and a deadlock victim may
                # simply run again; one more try tells those from a database that is down. Both
                # statements only take, extend or hand back this holder's own turns, so a repeat is safe.
                if attempt == 2:
                    raise
                logger.warning("domain turn statement failed (%s); trying once more", exc)
        raise AssertionError("unreachable")
