"""The crawl's per-domain turns in PostgreSQL (table ``domain_politeness``), shared by every process.

:class:`PostgresDomainGate` is the gate of :mod:`nightly_pipeline.crawl.politeness` for the pipeline:
each tenant run opens one, with a small asyncio pool of its own, and every request the crawler sends
takes the domain's turn here first and ends it here afterwards (two short autocommit statements).
All times are computed by the server with ``clock_timestamp()``, so hosts with drifting clocks still
space their requests correctly; the crawler only ever receives durations.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator

import psycopg
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)

# Rows nobody has touched for this long say nothing about any interval (Crawl-delay is capped far below).
STALE_AFTER = "1 hour"

# One statement: take the turn when it is free, ours, or its lease has expired, and say how long to
# wait; otherwise say how long the holder's lease has left (read from the statement's snapshot).
# The turn's start is stored as the lease's expiry minus the lease, so it needs no column of its own.
_TAKE_TURN = """
WITH taken AS (
    INSERT INTO domain_politeness AS t (domain, holder, lease_expires_at)
    VALUES (%(domain)s, %(holder)s, clock_timestamp() + make_interval(secs => %(lease_s)s))
    ON CONFLICT (domain) DO UPDATE
    SET holder = excluded.holder,
        lease_expires_at = greatest(
            clock_timestamp(),
            -- Taking over an expired lease: its holder's request may have reached the site as late as the expiry.
            CASE WHEN t.holder <> excluded.holder THEN greatest(t.last_end, t.lease_expires_at) ELSE t.last_end END
                + make_interval(secs => greatest(%(interval_s)s, t.last_interval_s))
        ) + make_interval(secs => %(lease_s)s)
    WHERE t.holder IS NULL OR t.holder = excluded.holder OR t.lease_expires_at <= clock_timestamp()
    RETURNING extract(epoch FROM lease_expires_at - clock_timestamp())::float8 - %(lease_s)s AS wait_s
)
SELECT true AS granted, greatest(wait_s, 0) AS seconds FROM taken
UNION ALL
SELECT false, coalesce(extract(epoch FROM lease_expires_at - clock_timestamp())::float8, 0)
FROM domain_politeness
WHERE domain = %(domain)s AND NOT EXISTS (SELECT FROM taken)
"""

_END_TURN = """
UPDATE domain_politeness
SET last_end = clock_timestamp(), last_interval_s = %(interval_s)s, holder = NULL, lease_expires_at = NULL
WHERE domain = %(domain)s AND holder = %(holder)s
"""

_FORGET_STALE = f"""
DELETE FROM domain_politeness
WHERE coalesce(lease_expires_at, last_end) < clock_timestamp() - interval '{STALE_AFTER}'
"""


def new_holder() -> str:
    """Names this crawler in the table: host and process for an operator, random for uniqueness."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class PostgresDomainGate:
    """A :class:`~nightly_pipeline.crawl.politeness.DomainGate` on the ``domain_politeness`` table."""

    def __init__(self, pool: AsyncConnectionPool, *, holder: str | None = None) -> None:
        self._pool = pool
        self.holder = holder or new_holder()

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
            yield gate
        finally:
            await pool.close()

    async def take_turn(self, domain: str, *, interval_s: float, lease_s: float) -> tuple[bool, float]:
        params = {"domain": domain, "holder": self.holder, "interval_s": float(interval_s),
                  "lease_s": float(lease_s)}
        row = await self._fetch_one(_TAKE_TURN, params)
        if row is None:
            # The row appeared after this statement's snapshot and another crawler holds it.
            return False, 0.0
        return bool(row[0]), float(row[1])

    async def end_turn(self, domain: str, *, interval_s: float) -> bool:
        params = {"domain": domain, "holder": self.holder, "interval_s": float(interval_s)}
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_END_TURN, params)
            return cursor.rowcount == 1

    async def forget_stale(self) -> int:
        """Delete rows idle far longer than any interval; returns how many."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_FORGET_STALE)
            return cursor.rowcount

    async def _fetch_one(self, query: str, params: dict[str, object]) -> tuple | None:
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    cursor = await conn.execute(query, params)
                    return await cursor.fetchone()
            except psycopg.OperationalError as exc:
                # A connection the server dropped is discarded by the pool; one fresh try is enough
                # to tell that from a database that is down.
                if attempt == 2:
                    raise
                logger.warning("taking a domain turn failed (%s); retrying on a fresh connection", exc)
        return None
