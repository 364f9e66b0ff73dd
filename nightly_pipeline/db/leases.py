"""Tenant-run leases: at most SCHED_TENANT_CONCURRENCY tenant runs working at once across every
process, and never two runs of one tenant, whoever launched them.

A run takes its tenant's lease before its first step and gives it back when it ends; while it
waits it is told why. A holder renews its heartbeat from a thread with a connection of its own;
a lease whose heartbeat is older than its ttl belongs to a process that died and is taken over.
Every decision is made under one transaction-scoped advisory lock, so the limits are exact.
The tenant comes from the scoped transaction (``db.tenant(t)``), as everywhere in this layer.
"""
from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg.rows import tuple_row

from nightly_pipeline.db.database import Database

log = logging.getLogger(__name__)

_LOCK = "tenant-run-leases"
POLL_S = 2.0


@dataclasses.dataclass(frozen=True)
class LeaseAttempt:
    granted: bool
    reason: str = ""


def _execute(conn: psycopg.Connection, query: str, params: tuple = ()) -> psycopg.Cursor:
    return conn.cursor(row_factory=tuple_row).execute(query, params)


def try_take(conn: psycopg.Connection, holder: str, limit: int, ttl_s: float) -> LeaseAttempt:
    """Take (or keep) the current tenant's lease for ``holder`` if the limits allow it now."""
    _execute(conn, "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_LOCK,))
    _execute(conn, "DELETE FROM tenant_run_leases WHERE heartbeat_at < clock_timestamp() - make_interval(secs => ttl_s)")
    row = _execute(conn, "SELECT holder FROM tenant_run_leases WHERE tenant = current_tenant_id()").fetchone()
    if row is not None and row[0] == holder:
        _execute(conn, "UPDATE tenant_run_leases SET heartbeat_at = clock_timestamp() WHERE holder = %s", (holder,))
        return LeaseAttempt(True)
    if row is not None:
        return LeaseAttempt(False, f"another run of this tenant ({row[0]}) is working")
    holders = _execute(conn, "SELECT tenant FROM tenant_run_leases ORDER BY acquired_at").fetchall()
    if len(holders) >= limit:
        tenants = ", ".join(str(t) for (t,) in holders)
        return LeaseAttempt(False, f"{len(holders)} tenant runs are working (tenants {tenants}); "
                                   f"SCHED_TENANT_CONCURRENCY is {limit}")
    _execute(conn, "INSERT INTO tenant_run_leases (holder, pid, host, ttl_s) VALUES (%s, %s, %s, %s)",
             (holder, os.getpid(), socket.gethostname()[:200], ttl_s))
    return LeaseAttempt(True)


def renew(conn: psycopg.Connection, holder: str) -> bool:
    """Refresh ``holder``'s heartbeat; False when it holds no lease any more (it lapsed)."""
    return _execute(conn, "UPDATE tenant_run_leases SET heartbeat_at = clock_timestamp() WHERE holder = %s",
                    (holder,)).rowcount > 0


def release(conn: psycopg.Connection, holder: str) -> None:
    _execute(conn, "DELETE FROM tenant_run_leases WHERE holder = %s", (holder,))


def holders(conn: psycopg.Connection) -> list[tuple[int, str]]:
    """(tenant, holder) of every lease whose heartbeat is fresh, oldest first."""
    return [(int(t), h) for t, h in _execute(
        conn, "SELECT tenant, holder FROM tenant_run_leases "
              "WHERE heartbeat_at >= clock_timestamp() - make_interval(secs => ttl_s) ORDER BY acquired_at")]


class TenantRunLease:
    """The lease of one run (``holder``, e.g. its Dagster run id) for ``tenant_id``.

    ``take()`` waits until the lease is granted (calling ``on_wait`` with the reason whenever it
    changes), then renews it every third of its ttl; ``release()`` gives it back, and so does the
    process's exit.
    """

    def __init__(self, db: Database, tenant_id: int, holder: str, *, limit: int, ttl_s: float) -> None:
        if limit < 1 or ttl_s <= 0:
            raise ValueError("limit must be >= 1 and ttl_s > 0")
        self.db, self.tenant_id, self.holder, self.limit, self.ttl_s = db, tenant_id, holder, limit, ttl_s
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def try_take(self) -> LeaseAttempt:
        with self.db.tenant(self.tenant_id) as conn:
            return try_take(conn, self.holder, self.limit, self.ttl_s)

    def take(self, on_wait: Callable[[str], None] = log.info, *, poll_s: float = POLL_S) -> None:
        said = ""
        while not (attempt := self.try_take()).granted:
            if attempt.reason != said:
                on_wait(f"tenant {self.tenant_id} waits for a tenant-run lease: {attempt.reason}")
                said = attempt.reason
            time.sleep(poll_s)
        self._conn = self.db.dedicated_connection()
        self._heartbeat = threading.Thread(target=self._beat, name=f"lease-{self.tenant_id}", daemon=True)
        self._heartbeat.start()
        atexit.register(self.release)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                with self._lock:
                    if self._conn is None:
                        return
                    if not renew(self._conn, self.holder):
                        log.error("tenant %s: the run's lease lapsed (no heartbeat for %.0f s)",
                                  self.tenant_id, self.ttl_s)
            except psycopg.Error as error:
                log.warning("tenant %s: lease heartbeat failed: %s", self.tenant_id, type(error).__name__)

    def release(self) -> None:
        self._stop.set()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        atexit.unregister(self.release)
        try:
            release(conn, self.holder)
        except psycopg.Error as error:
            log.warning("tenant %s: could not release the lease (%s); it lapses after %.0f s",
                        self.tenant_id, type(error).__name__, self.ttl_s)
        finally:
            conn.close()
