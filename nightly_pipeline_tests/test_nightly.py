"""scripts/run_nightly.py: which tenants and dates it runs."""
import datetime as dt

import pytest

from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.database import administrator_transaction
from nightly_pipeline.db.targets import create_manifest
from nightly_pipeline.nightly import main, plan_runs
from nightly_pipeline.settings import load_settings

pytestmark = pytest.mark.database
DAY = dt.date(2026, 6, 1)


@pytest.fixture
def three_tenants(db, db_env, db_target):
    ids = []
    for name in ("a", "b", "c"):
        with db.shared() as conn:
            tenant = tenants_db.register_tenant(conn, name, None)
        with db.tenant(tenant) as conn:
            tenants_db.upsert_odoo_connection(conn, tenants_db.OdooConnection("https://odoo.example", "d", "x", "ODOO_PASSWORD", True))
        ids.append(tenant)
    with administrator_transaction(db_target) as conn:
        tenants_db.set_status(conn, ids[2], "disabled")
    return ids


def test_plans_active_tenants_with_include_and_exclude(three_tenants, db_env):
    a, b, _ = three_tenants
    settings = load_settings(db_env)
    assert [r.key for r in plan_runs(settings, run_date=DAY)] == [f"2026-06-01|{a}", f"2026-06-01|{b}"]
    assert [r.tenant_id for r in plan_runs(settings, run_date=DAY, tenant_ids=[b])] == [b]
    excluded = load_settings({**db_env, "SCHED_TENANT_EXCLUDE": str(a)})
    assert [r.tenant_id for r in plan_runs(excluded, run_date=DAY)] == [b]


def test_from_manifest_resumes_that_tenant_and_date(three_tenants, db, db_env):
    _, b, _ = three_tenants
    with db.tenant(b) as conn:
        manifest = create_manifest(conn, DAY, [], caps={}, budget_snapshot={}, dagster_run_id=None)
    runs = plan_runs(load_settings(db_env), run_date=dt.date(2030, 1, 1), from_manifest=manifest.run_id)
    assert [(r.tenant_id, r.run_date) for r in runs] == [(b, DAY)]


def test_dry_run_prints_the_plan(three_tenants, db_env, capsys):
    assert main(["--dry-run", "--date", "2026-06-01"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("would run")] == [
        f"would run 2026-06-01|{three_tenants[0]} (a)", f"would run 2026-06-01|{three_tenants[1]} (b)"]
    assert main(["--from-manifest", "00000000-0000-0000-0000-000000000001"]) == 2


def test_run_nightly_beside_a_running_run_of_the_tenant_waits_for_it_and_never_starts_another(
        three_tenants, db, db_env):
    import threading
    import uuid

    import dagster as dg

    from nightly_pipeline import nightly
    from nightly_pipeline.instance import ensure_dagster_home
    from nightly_pipeline.launch import NightLauncher, night_runs, night_tags
    from nightly_pipeline.partitions import TENANTS, tenant_key

    settings = load_settings()
    ensure_dagster_home(settings)
    tenant = three_tenants[0]
    night = dt.date.today() - dt.timedelta(days=1)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(TENANTS, [tenant_key(tenant)])
        # A run of the night started by another launcher (the schedule, say), working right now.
        elsewhere = instance.add_run(dg.DagsterRun(job_name="nightly", run_id=str(uuid.uuid4()),
                                                   status=dg.DagsterRunStatus.STARTED,
                                                   tags=night_tags(tenant, night)))
        planned = nightly.PlannedRun(tenant, "a", night)
        with NightLauncher(instance) as launcher:
            submitted = nightly.submit_runs(launcher, db, [planned])
            assert list(submitted) == [elsewhere.run_id]
            # The other run ends while run_nightly waits for it (it was cancelled elsewhere).
            ender = threading.Thread(target=instance.report_run_canceled, args=(elsewhere,))
            ender.start()
            [outcome] = nightly.wait_for_runs(launcher, submitted, poll_s=0.2)
            ender.join()
        assert (outcome.run_id, outcome.status, outcome.created) == (elsewhere.run_id, "CANCELED", False)
        assert [r.dagster_run.run_id for r in night_runs(instance, tenant, night)] == [elsewhere.run_id]


def test_without_a_daemon_run_nightly_takes_its_runs_off_the_queue_and_waits_for_their_end(
        three_tenants, db, db_env, capsys):
    import dagster as dg

    from nightly_pipeline import nightly
    from nightly_pipeline.launch import night_runs

    settings = load_settings()
    night = dt.date.today() - dt.timedelta(days=1)
    [outcome] = nightly.run_all(settings, [nightly.PlannedRun(three_tenants[0], "a", night, limit=1)])
    assert outcome.created and outcome.status in ("SUCCESS", "FAILURE")
    assert "no dagster-daemon is running" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        [record] = night_runs(instance, three_tenants[0], night)
        assert record.dagster_run.run_id == outcome.run_id
        assert record.dagster_run.run_config["ops"]["daily_targets"]["config"] == {"limit": 1}


def test_a_dry_run_creates_no_embedded_database(tmp_path, monkeypatch, capsys):
    for name in ("DATABASE_URL", "DATABASE_ADMIN_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["--dry-run"]) == 2
    assert "no embedded database under" in capsys.readouterr().err
    assert not (tmp_path / "home" / "pgdata").exists()
