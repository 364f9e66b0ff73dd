"""The tenant-night report behind `nightly-pipeline runs` and `GET /admin/runs`."""
import datetime as dt
import json
import uuid

import dagster as dg
import pytest

from nightly_pipeline.cli import main
from nightly_pipeline.db import runs as runs_db
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.database import administrator_transaction
from nightly_pipeline.db.budget import VendorBudget
from nightly_pipeline.domain.targets import Target, Tier
from nightly_pipeline.launch import night_tags
from nightly_pipeline.run_report import night_report, night_reports, night_status
from nightly_pipeline.settings import load_settings
from nightly_pipeline_tests.api.conftest import add_tenant

DAY = dt.date(2026, 6, 1)


@dg.op(name="daily_targets")
def _daily_targets() -> None:
    pass


@dg.op(name="odoo_sync", ins={"after": dg.In(dg.Nothing)})
def _odoo_sync() -> None:
    pass


@dg.op(name="odoo_sync", ins={"after": dg.In(dg.Nothing)})
def _odoo_sync_down() -> None:
    raise RuntimeError("Odoo unreachable")


@dg.job(name="nightly_job")
def finished_night() -> None:
    _odoo_sync(after=_daily_targets())


@dg.job(name="nightly_job")
def broken_night() -> None:
    _odoo_sync_down(after=_daily_targets())


def companies(admin, count: int) -> list[int]:
    return [admin.execute("""INSERT INTO companies (uen, name, legal_name, is_live, source_row_hash, source_updated_at)
                             VALUES (%s, %s, %s, true, 'h', now()) RETURNING company_id""",
                          (f"20190000{i}K", f"Co {i}", f"CO {i}")).fetchone()[0] for i in range(count)]


def record_a_night(db, admin, tenant: int) -> targets_db.Manifest:
    """A night as the stages leave it: 3 targets, one crawl error, 2 shortlisted, spend, one Odoo failure."""
    ids = companies(admin, 3)
    with db.tenant(tenant) as conn:
        manifest = targets_db.create_manifest(conn, DAY, [Target(c, Tier.NEVER_SEEN, 0.9, None) for c in ids],
                                              caps={}, budget_snapshot={}, dagster_run_id=None)
        targets_db.record_step(conn, manifest.run_id, "contacts", {"found": 4}, status="running")
        targets_db.record_degradations(conn, manifest.run_id, "contacts", ["LUSHA_API_KEY is unset"])
        conn.execute("""INSERT INTO company_enrichment_runs (tenant_id, run_id, company_id, outcome)
                        VALUES (%s, %s, %s, 'ok'), (%s, %s, %s, 'error')""",
                     (tenant, manifest.run_id, ids[0], tenant, manifest.run_id, ids[1]))
        for company, shortlisted, lead in ((ids[0], True, 501), (ids[1], True, None), (ids[2], False, None)):
            conn.execute("""INSERT INTO lead_scores (tenant_id, company_id, score_date, score, bucket, reasons,
                                                     rationale, rationale_source, shortlisted, odoo_lead_id)
                            VALUES (%s, %s, %s, 0.7, 'High', '[]', 'r', 'template', %s, %s)""",
                         (tenant, company, DAY, shortlisted, lead))
        entry = lambda company, error: scores_db.SyncLogEntry(company, None, [], None, "error" if error else "create",  # noqa: E731
                                                             [], error)
        # The first company failed, then synced on a retry; the second failed for good.
        scores_db.insert_sync_log(conn, manifest.run_id, [entry(ids[0], "timeout"), entry(ids[1], "timeout")])
        scores_db.insert_sync_log(conn, manifest.run_id, [entry(ids[0], None)])
        targets_db.record_step(conn, manifest.run_id, "odoo_sync", {"lead": {"created": 1}, "failed": 1})
        targets_db.finish_run(conn, manifest.run_id, "partial", "1 Odoo records failed; retried next run")
    budget = VendorBudget(db, tenant, manifest.run_id)
    for vendor, units in (("tavily", 3), ("tavily", 2), ("openai", 1200)):
        budget.settle(budget.reserve(vendor, "call", units, cap=10_000), charged=units, status="ok")
    return manifest


@pytest.mark.database
def test_a_finished_night_reports_counts_degradations_spend_cost_and_stage_timings(db, admin):
    tenant = add_tenant(db, "acme")
    manifest = record_a_night(db, admin, tenant)
    settings = load_settings({"VENDOR_UNIT_COSTS": "tavily=0.01,openai=0.000002"})
    with dg.instance_for_test() as instance:
        run = finished_night.execute_in_process(instance=instance, tags=night_tags(tenant, DAY)).dagster_run
        report = night_report(db, instance, settings, tenant, DAY)
    assert {k: report[k] for k in ("tenant_id", "run_date", "status", "error_summary", "targets", "shortlisted",
                                   "leads_created", "leads_in_odoo", "dagster_run_id", "dagster_status")} == {
        "tenant_id": tenant, "run_date": "2026-06-01", "status": "partial",
        "error_summary": "1 Odoo records failed; retried next run", "targets": 3, "shortlisted": 2,
        "leads_created": 1, "leads_in_odoo": 1, "dagster_run_id": run.run_id, "dagster_status": "SUCCESS"}
    assert report["manifest_id"] == str(manifest.run_id)
    assert report["degradations"] == [{"step": "contacts", "cause": "LUSHA_API_KEY is unset"}]
    assert report["failures"] == {"crawl_errors": 1, "odoo_errors": 1, "failed_stages": []}
    assert report["spend"] == {"openai": {"calls": 1, "units": 1200, "cost": 0.0024},
                               "tavily": {"calls": 2, "units": 5, "cost": 0.05}}
    assert report["cost_total"] == pytest.approx(0.0524)
    assert report["cost_per_shortlisted_lead"] == pytest.approx(0.0262)
    assert list(report["stages"]) == ["daily_targets", "odoo_sync"]
    for stage in report["stages"].values():
        assert stage["status"] == "succeeded" and stage["seconds"] >= 0
        assert dt.datetime.fromisoformat(stage["started_at"]) <= dt.datetime.fromisoformat(stage["finished_at"])

    unpriced = night_report(db, dg.DagsterInstance.ephemeral(), load_settings({"VENDOR_UNIT_COSTS": "tavily=0.01"}),
                            tenant, DAY)
    assert unpriced["spend"]["openai"]["cost"] is None and unpriced["cost_per_shortlisted_lead"] is None
    assert unpriced["stages"] == {} and unpriced["status"] == "partial"


@pytest.mark.database
def test_a_night_that_died_in_a_stage_reads_failed_with_the_stage(db):
    tenant = add_tenant(db, "acme")
    with db.tenant(tenant) as conn:
        targets_db.create_manifest(conn, DAY, [], caps={}, budget_snapshot={}, dagster_run_id=None)
    with dg.instance_for_test() as instance:
        broken_night.execute_in_process(instance=instance, tags=night_tags(tenant, DAY), raise_on_error=False)
        report = night_report(db, instance, load_settings({}), tenant, DAY)
    assert report["status"] == "failed" and report["manifest_status"] == "selected"
    assert report["failures"]["failed_stages"] == ["odoo_sync"]
    assert report["error_summary"].endswith("ended FAILURE at odoo_sync")
    assert report["stages"]["daily_targets"]["status"] == "succeeded"


@pytest.mark.database
def test_each_tenant_reads_only_its_own_night(db, admin):
    a, b = add_tenant(db, "a"), add_tenant(db, "b")
    disabled = add_tenant(db, "idle")
    with administrator_transaction(db.target) as conn:
        tenants_db.set_status(conn, disabled, "disabled")
    record_a_night(db, admin, a)
    with db.tenant(b) as conn:
        seen_by_b = runs_db.night(conn, DAY)  # a's night exists; b's transaction shows only b's
    assert seen_by_b.tenant_id == b and seen_by_b.run_id is None and seen_by_b.shortlisted == 0 and seen_by_b.spend == ()
    reports = night_reports(db, dg.DagsterInstance.ephemeral(), load_settings({}), DAY)
    assert [(r["tenant_id"], r["status"], r["targets"]) for r in reports] == [(a, "partial", 3), (b, "not_started", None)]


def _record(status: str | None, finished: dt.datetime | None = None) -> runs_db.NightRecord:
    return runs_db.NightRecord(1, DAY, run_id=uuid.uuid4() if status else None, status=status, finished_at=finished)


def _run(status: dg.DagsterRunStatus, ended: dt.datetime | None = None) -> dg.RunRecord:
    now = dt.datetime.now(dt.timezone.utc)
    return dg.RunRecord(storage_id=1, dagster_run=dg.DagsterRun(job_name="nightly_job", status=status),
                        create_timestamp=now, update_timestamp=now, start_time=None,
                        end_time=ended.timestamp() if ended else None)


T0 = dt.datetime(2026, 6, 1, 1, tzinfo=dt.timezone.utc)
LATER = T0 + dt.timedelta(hours=1)


@pytest.mark.parametrize("record, run, expected", [
    (_record(None), None, "not_started"),
    (_record(None), _run(dg.DagsterRunStatus.NOT_STARTED), "queued"),
    (_record("succeeded", T0), _run(dg.DagsterRunStatus.STARTED), "running"),
    (_record("running"), None, "running"),
    (_record("running"), _run(dg.DagsterRunStatus.FAILURE, LATER), "failed"),
    (_record("succeeded", T0), _run(dg.DagsterRunStatus.SUCCESS, T0), "succeeded"),
    (_record("partial", LATER), _run(dg.DagsterRunStatus.FAILURE, T0), "partial"),
    (_record("succeeded", T0), _run(dg.DagsterRunStatus.FAILURE, LATER), "failed"),
    (_record("failed", T0), None, "failed"),
])
def test_the_status_follows_the_newest_run_and_the_manifest(record, run, expected):
    assert night_status(record, run) == expected


@pytest.mark.database
def test_runs_command_prints_the_contracted_json_and_a_table(db, db_env, admin, capsys):
    tenant, quiet = add_tenant(db, "acme"), add_tenant(db, "quiet")
    record_a_night(db, admin, tenant)
    assert main(["runs", "--date", DAY.isoformat(), "--format", "json"]) == 0  # creates DAGSTER_HOME's instance
    with dg.DagsterInstance.get() as instance:
        finished_night.execute_in_process(instance=instance, tags=night_tags(tenant, DAY))
    capsys.readouterr()
    assert main(["runs", "--date", DAY.isoformat(), "--format", "json"]) == 0
    nights = json.loads(capsys.readouterr().out)
    assert [n["tenant_id"] for n in nights] == [tenant, quiet]
    for night in nights:
        assert {"tenant_id", "run_date", "status", "error_summary", "stages", "spend"} <= set(night)
    assert nights[0]["status"] == "partial" and nights[1]["status"] == "not_started"
    assert set(nights[0]["stages"]["odoo_sync"]) >= {"started_at", "finished_at", "seconds"}
    assert nights[0]["spend"]["tavily"]["units"] == 5

    assert main(["runs", "--date", DAY.isoformat(), "--tenant", str(quiet)]) == 0
    table = capsys.readouterr().out
    assert "not_started" in table and "acme" not in table
    assert main(["runs", "--date", DAY.isoformat()]) == 0
    table = capsys.readouterr().out
    assert "partial" in table and "tavily 5" in table and f"tenant {tenant} stages" in table
    assert main(["runs", "--tenant", "999"]) == 1
    assert "no tenant with id 999" in capsys.readouterr().err
