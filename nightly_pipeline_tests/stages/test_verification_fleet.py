"""Three tenant runs in three processes share one ZeroBounce key: together they keep its limit of 5
batch calls in any rolling minute, as the sandbox counts them on arrival, and nobody is refused."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.zerobounce import ZeroBounceServer

pytestmark = pytest.mark.database

KEY = "zb-fleet-key"
TENANT_RUN = textwrap.dedent("""
    import asyncio, dataclasses, datetime as dt, json, sys, uuid
    from nightly_pipeline.db import Database, DatabaseTarget
    from nightly_pipeline.settings import load_settings
    from nightly_pipeline.stages.night import TenantNight
    from nightly_pipeline.stages.verification import verify_emails
    from nightly_pipeline.vendors.zerobounce import ZeroBounceClient

    app_url, app_role, tenant, base, key = sys.argv[1:6]
    db = Database(DatabaseTarget(admin_url=app_url, app_url=app_url, app_role=app_role, embedded=False), max_size=4)
    night = TenantNight(db, int(tenant), uuid.uuid4(), dt.date(2026, 6, 1), load_settings({}))
    emails = [f"valid.t{tenant}n{i}@firm{i % 40}.com.sg" for i in range(400)]

    async def run():
        async with ZeroBounceClient(key, base_url=base, bulk_base_url=base) as client:
            return await verify_emails(emails, night, client)

    report = asyncio.run(run())
    print(json.dumps(report.to_dict()))
    db.close()
""")


def test_three_tenant_processes_on_one_key_keep_five_batches_a_minute(db: Database, db_target: DatabaseTarget) -> None:
    with db.shared() as conn:
        tenants = [tenants_db.register_tenant(conn, f"fleet-{i}", None) for i in range(3)]
    with serving(ZeroBounceServer(api_keys={KEY})) as server:
        base = f"{server.url}/v2"
        processes = [subprocess.Popen([sys.executable, "-c", TENANT_RUN, db_target.app_url, db_target.app_role,
                                       str(tenant), base, KEY], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for tenant in tenants]
        reports = []
        for process in processes:
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, err[-3000:]
            reports.append(json.loads(out.splitlines()[-1]))
        stats = server.stats()

    # Each run alone would send its two batches at once; six batches in one minute would get the key
    # blocked for an hour. Together they wait for the minute to roll over instead.
    assert stats["calls_by_endpoint"]["validatebatch"] == 6
    assert stats["batch_refusals"] == 0
    assert stats["max_batch_calls_in_60s"] <= 5
    assert [r["verified"] for r in reports] == [400, 400, 400]
    assert all(r["degradations"] == [] for r in reports)
