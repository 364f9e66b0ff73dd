"""Tenant-run leases across real processes: the fleet-wide limit, one run per tenant, and the lease
of a killed process lapsing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline.db import leases
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.leases import TenantRunLease

pytestmark = pytest.mark.database

HOLDER = textwrap.dedent("""
    import json, sys, time
    from nightly_pipeline.db import Database, DatabaseTarget
    from nightly_pipeline.db import leases
    from nightly_pipeline.db.leases import TenantRunLease

    app_url, app_role, tenant, limit, ttl, hold_s = sys.argv[1:7]
    db = Database(DatabaseTarget(admin_url=app_url, app_url=app_url, app_role=app_role, embedded=False), max_size=2)
    lease = TenantRunLease(db, int(tenant), f"run-{tenant}", limit=int(limit), ttl_s=float(ttl))
    waits = []
    lease.take(waits.append, poll_s=0.1)
    with db.shared() as conn:
        working = len(leases.holders(conn))
    print(json.dumps({"tenant": int(tenant), "working": working, "waited": waits}), flush=True)
    time.sleep(float(hold_s))
    with db.shared() as conn:
        working = max(working, len(leases.holders(conn)))
    print(json.dumps({"tenant": int(tenant), "working": working}), flush=True)
    if float(hold_s) < 1000:
        lease.release()
    db.close()
""")


def _tenants(db: Database, count: int) -> list[int]:
    with db.shared() as conn:
        return [tenants_db.register_tenant(conn, f"tenant-{i}", None) for i in range(count)]


def _holder(target: DatabaseTarget, tenant: int, *, limit: int, ttl_s: float, hold_s: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, target.app_url, target.app_role, str(tenant), str(limit),
                             str(ttl_s), str(hold_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_six_runs_started_together_work_three_at_a_time(db: Database, db_target: DatabaseTarget) -> None:
    processes = [_holder(db_target, tenant, limit=3, ttl_s=30, hold_s=0.5) for tenant in _tenants(db, 6)]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        reports += [json.loads(line) for line in out.splitlines()]
    assert len(reports) == 12
    assert max(r["working"] for r in reports) <= 3
    waited = [r for r in reports if r.get("waited")]
    assert waited, "with six runs and room for three, some had to wait"
    assert all("SCHED_TENANT_CONCURRENCY is 3" in r["waited"][0] for r in waited)
    with db.shared() as conn:
        assert leases.holders(conn) == []


def test_a_second_run_of_a_tenant_waits_until_the_first_releases(db: Database) -> None:
    [tenant] = _tenants(db, 1)
    first = TenantRunLease(db, tenant, "run-a", limit=3, ttl_s=30)
    second = TenantRunLease(db, tenant, "run-b", limit=3, ttl_s=30)
    first.take()
    attempt = second.try_take()
    assert not attempt.granted and "another run of this tenant (run-a)" in attempt.reason
    assert first.try_take().granted, "the holder keeps its own lease"
    first.release()
    assert second.try_take().granted
    second.release()


def test_the_lease_of_a_killed_process_lapses(db: Database, db_target: DatabaseTarget) -> None:
    [tenant] = _tenants(db, 1)
    holder = _holder(db_target, tenant, limit=1, ttl_s=5, hold_s=100_000)
    try:
        first_line = holder.stdout.readline()
        assert json.loads(first_line)["tenant"] == tenant
        successor = TenantRunLease(db, tenant, "run-after", limit=1, ttl_s=30)
        assert not successor.try_take().granted
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    waits: list[str] = []
    successor.take(waits.append, poll_s=0.5)
    assert waits and "another run of this tenant (run-" in waits[0]
    with db.shared() as conn:
        assert leases.holders(conn) == [(tenant, "run-after")]
    successor.release()
