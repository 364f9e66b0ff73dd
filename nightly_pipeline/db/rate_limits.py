"""Vendor rate limits kept by every process together, by the database clock.

Each admitted call is a row (key hash, bucket, time, weight). Admission runs in one short
transaction under a transaction-scoped advisory lock of the (key, bucket), so concurrent
acquirers in any process are serialised and the count is exact: a call is inserted only when it
fits every rolling window of the bucket. A call that does not fit is told how long until the
oldest calls leave the window (by ``clock_timestamp()``, the one clock all processes share), and
waits that long instead of being sent and refused.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
from collections.abc import Mapping, Sequence

import psycopg
from psycopg.rows import tuple_row

from nightly_pipeline.db.database import Database
from nightly_pipeline.vendors.rate_limits import KeyBlocked, Window

log = logging.getLogger(__name__)

# Wake at least this often while waiting, so a block recorded meanwhile is noticed.
MAX_SLEEP_S = 5.0


@dataclasses.dataclass(frozen=True)
class Admission:
    admitted: bool
    wait_s: float = 0.0
    admitted_at: dt.datetime | None = None
    blocked_until: dt.datetime | None = None
    block_reason: str = ""


def _execute(conn: psycopg.Connection, query: str, params: Sequence[object] = ()) -> psycopg.Cursor:
    return conn.cursor(row_factory=tuple_row).execute(query, params)


def _lock(conn: psycopg.Connection, key_sha256: bytes, bucket: str) -> None:
    _execute(conn, "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 (f"vendor-rate:{key_sha256.hex()}:{bucket}",))


def _wait_for_room(calls: Sequence[tuple[dt.datetime, int]], now: dt.datetime, window: Window,
                   weight: int) -> float:
    """Seconds until ``weight`` more units fit ``window`` (0 when they fit now); ``calls`` oldest first."""
    used = sum(w for _, w in calls)
    excess = used + weight - window.limit
    if excess <= 0:
        return 0.0
    freed = 0
    for called_at, call_weight in calls:
        freed += call_weight
        if freed >= excess:
            return max(0.0, (called_at + dt.timedelta(seconds=window.period_s) - now).total_seconds())
    return window.period_s


def try_acquire(conn: psycopg.Connection, key_sha256: bytes, bucket: str, windows: Sequence[Window],
                weight: int = 1) -> Admission:
    """Record one call of ``weight`` if it fits every window now; else how long to wait.

    A weight above a window's limit is counted as the whole limit (it could never fit otherwise).
    """
    _lock(conn, key_sha256, bucket)
    now = _execute(conn, "SELECT clock_timestamp()").fetchone()[0]
    # A block of "zerobounce" holds every "zerobounce.*" bucket of the key.
    blocked = _execute(conn, "SELECT blocked_until, reason FROM vendor_key_blocks "
                           "WHERE key_sha256 = %s AND (bucket = %s OR %s LIKE bucket || '.%%') "
                           "AND blocked_until > %s ORDER BY blocked_until DESC LIMIT 1",
                           (key_sha256, bucket, bucket, now)).fetchone()
    if blocked is not None:
        return Admission(False, (blocked[0] - now).total_seconds(), blocked_until=blocked[0], block_reason=blocked[1])
    if not windows:
        return Admission(True, admitted_at=now)
    longest = max((w.period_s for w in windows), default=0.0)
    _execute(conn, "DELETE FROM vendor_rate_calls WHERE key_sha256 = %s AND bucket = %s AND called_at <= %s",
                 (key_sha256, bucket, now - dt.timedelta(seconds=longest)))
    rows = _execute(conn, "SELECT called_at, weight FROM vendor_rate_calls WHERE key_sha256 = %s AND bucket = %s "
                        "ORDER BY called_at", (key_sha256, bucket)).fetchall()
    weight = min([weight, *(w.limit for w in windows)])
    wait = 0.0
    for window in windows:
        since = now - dt.timedelta(seconds=window.period_s)
        wait = max(wait, _wait_for_room([(t, w) for t, w in rows if t > since], now, window, weight))
    if wait > 0:
        return Admission(False, wait)
    _execute(conn, "INSERT INTO vendor_rate_calls (key_sha256, bucket, called_at, weight) VALUES (%s, %s, %s, %s)",
                 (key_sha256, bucket, now, weight))
    return Admission(True, admitted_at=now)


def release(conn: psycopg.Connection, key_sha256: bytes, bucket: str, admitted_at: dt.datetime) -> None:
    """Forget one call admitted at ``admitted_at`` that was never sent."""
    _execute(conn, "DELETE FROM vendor_rate_calls WHERE ctid = (SELECT ctid FROM vendor_rate_calls "
                   "WHERE key_sha256 = %s AND bucket = %s AND called_at = %s LIMIT 1)",
             (key_sha256, bucket, admitted_at))


def record_block(conn: psycopg.Connection, key_sha256: bytes, bucket: str, seconds: float, reason: str) -> dt.datetime:
    """The vendor blocked the key: nobody calls ``bucket`` for ``seconds`` from now (a longer block
    already recorded stands)."""
    return _execute(conn, 
        "INSERT INTO vendor_key_blocks (key_sha256, bucket, blocked_until, reason) "
        "VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s), %s) "
        "ON CONFLICT (key_sha256, bucket) DO UPDATE SET "
        "blocked_until = greatest(vendor_key_blocks.blocked_until, excluded.blocked_until), reason = excluded.reason "
        "RETURNING blocked_until", (key_sha256, bucket, seconds, reason[:200])).fetchone()[0]


def busiest_window(conn: psycopg.Connection, key_sha256: bytes, bucket: str, period_s: float) -> int:
    """The most units admitted in any rolling ``period_s`` among the calls still recorded."""
    row = _execute(conn, 
        "SELECT coalesce(max(in_window), 0) FROM ("
        # The rolling window is (t - period, t]: a call exactly one period earlier is outside it.
        "  SELECT sum(weight) OVER (ORDER BY called_at RANGE BETWEEN make_interval(secs => %s) PRECEDING "
        "                           AND CURRENT ROW) AS in_window"
        "  FROM vendor_rate_calls WHERE key_sha256 = %s AND bucket = %s) w",
        (period_s - 1e-6, key_sha256, bucket)).fetchone()
    return int(row[0])


class FleetRateLimiter:
    """The :class:`~nightly_pipeline.vendors.rate_limits.CallLimiter` of one API key, shared by every
    process through the database. ``windows`` maps a bucket (an endpoint family such as
    ``zerobounce.batch``) to its rolling windows; a bucket without windows is only checked for blocks.
    """

    def __init__(self, db: Database, key_sha256: bytes, windows: Mapping[str, Sequence[Window]]) -> None:
        self.db = db
        self.key_sha256 = key_sha256
        self.windows = {bucket: tuple(ws) for bucket, ws in windows.items()}

    def _try(self, bucket: str, weight: int) -> Admission:
        with self.db.shared() as conn:
            return try_acquire(conn, self.key_sha256, bucket, self.windows.get(bucket, ()), weight)

    async def acquire(self, bucket: str, weight: int = 1) -> dt.datetime:
        """Wait for room in every window of ``bucket``; the database time the call was admitted at."""
        waited = False
        while True:
            admission = await asyncio.to_thread(self._try, bucket, max(1, int(weight)))
            if admission.admitted:
                assert admission.admitted_at is not None
                return admission.admitted_at
            if admission.blocked_until is not None:
                raise KeyBlocked(bucket, admission.blocked_until, admission.block_reason)
            if not waited:
                log.info("%s: the key's rate limit is reached across the fleet; waiting %.1f s for a free slot",
                         bucket, admission.wait_s)
                waited = True
            # A little jitter keeps waiters that woke together from queueing on the lock in lockstep.
            await asyncio.sleep(min(MAX_SLEEP_S, admission.wait_s) + random.uniform(0.0, 0.05))

    async def release(self, bucket: str, admitted_at: object) -> None:
        """Give back a slot that carried no call, so the window's allowance is not spent on nothing."""
        if not isinstance(admitted_at, dt.datetime):
            return

        def forget() -> None:
            with self.db.shared() as conn:
                release(conn, self.key_sha256, bucket, admitted_at)

        await asyncio.to_thread(forget)

    async def block(self, bucket: str, seconds: float, reason: str) -> None:
        def record() -> dt.datetime:
            with self.db.shared() as conn:
                return record_block(conn, self.key_sha256, bucket, seconds, reason)

        until = await asyncio.to_thread(record)
        log.warning("%s: the vendor blocked the key; no process calls it until %s", bucket,
                    until.isoformat(timespec="seconds"))
