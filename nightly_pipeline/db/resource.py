"""The app database: embedded by default, ``DATABASE_URL`` when set; and the tenant-run lease a
run of a tenant's night holds from its start to its end."""
from __future__ import annotations

import contextlib
import os

import dagster as dg
from pydantic import PrivateAttr

from nightly_pipeline.db import Database, open_database
from nightly_pipeline.db.leases import TenantRunLease
from nightly_pipeline.partitions import tenant_key
from nightly_pipeline.settings import load_settings

PARTITION_TAG = "dagster/partition"


def tenant_of_run(run: dg.DagsterRun | None) -> int | None:
    """The tenant a run works for (from its partition tags), or None for a run of no tenant."""
    if run is None:
        return None
    tenant = run.tags.get(f"{PARTITION_TAG}/tenant")
    if not tenant:
        key = run.tags.get(PARTITION_TAG, "")
        tenant = key.partition("|")[2] if "|" in key else ""
    try:
        return int(tenant_key(tenant)) if tenant else None
    except ValueError:
        return None


class DatabaseResource(dg.ConfigurableResource):
    """Holds the runtime role's connection pool for one run (or one sensor tick).

    Left unset, ``database_url`` comes from ``DATABASE_URL`` when the run starts, so the URL never
    appears in the UI or run config; tests set it to their own server.

    A run of a tenant's night takes the tenant's lease here, before its first step, whichever
    launcher started it (schedule, backfill, admin API, run_nightly.py, ``dagster asset
    materialize``), waiting while SCHED_TENANT_CONCURRENCY runs work or another run of the tenant
    does; the lease goes back when the run's resources are torn down (success, failure or cancel),
    or lapses when the process dies. Runs execute in process, so this happens once per run.
    """

    database_url: str | None = None
    dagster_home: str | None = None
    pool_size: int = 8

    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)
    _db: Database | None = PrivateAttr(default=None)
    _lease: TenantRunLease | None = PrivateAttr(default=None)
    _limit: int = PrivateAttr(default=3)
    _ttl_s: float = PrivateAttr(default=60.0)

    def _open(self) -> Database:
        env = dict(os.environ)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.dagster_home:
            env["DAGSTER_HOME"] = self.dagster_home
        self._stack = contextlib.ExitStack()
        settings = load_settings(env)
        self._db = self._stack.enter_context(open_database(settings, max_size=self.pool_size))
        self._limit, self._ttl_s = settings.sched_tenant_concurrency, settings.tenant_lease_ttl_s
        return self._db

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        db = self._open()
        run = context.dagster_run
        tenant_id = tenant_of_run(run)
        if run is None or tenant_id is None:
            return
        lease = TenantRunLease(db, tenant_id, run.run_id, limit=self._limit, ttl_s=self._ttl_s)
        try:
            lease.take(context.log.info)
        except BaseException:
            self.teardown_after_execution(context)
            raise
        self._lease = lease

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()
        if self._stack is not None:
            self._stack.close()
            self._stack = None
            self._db = None

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("DatabaseResource is used outside a run; open it with setup_for_execution")
        return self._db
