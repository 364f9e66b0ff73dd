"""Every tenant-night ends with a true final status, its stages recorded by the product, and alerts
sent once: a normal night, Odoo down for good, a cancelled run and a killed run."""
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from nightly_pipeline import night_watch
from nightly_pipeline.asset_checks import night_checks
from nightly_pipeline.cli import main
from nightly_pipeline.clock import SINGAPORE, today_in_singapore
from nightly_pipeline.db import night_stages as stages_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.definitions import default_resources, nightly_assets
from nightly_pipeline.partitions import partition_key
from nightly_pipeline.sensors import night_cancelled_sensor, night_failed_sensor
from nightly_pipeline.settings import load_settings
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline_sandbox.runner import ODOO_PASSWORD, SANDBOX_KEYS
from nightly_pipeline_tests.kit.graph import materialize
from nightly_pipeline_tests.kit.tenants import add_tenant
from nightly_pipeline_tests.kit.webhook import webhook_receiver

pytestmark = pytest.mark.database
DAY = "2026-06-01"
RUN_DATE = dt.date.fromisoformat(DAY)
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"], "preferred_titles": ["CEO", "Founder", "CTO"],
            "keywords": ["saas", "cloud"]}
NIGHT_STAGES = ["daily_targets", "crawl_corpus", "contacts", "verified_emails", "lead_scores", "odoo_sync"]
REPOSITORY = Path(__file__).resolve().parents[2]
# The sweep checks the SLA of the night of its own moment: late in a Singapore day, every night is late.
AFTER_THE_SLA = dt.datetime.combine(today_in_singapore(), dt.time(23, 30), tzinfo=SINGAPORE)


@pytest.fixture
def receiver(monkeypatch):
    with webhook_receiver() as running:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", running.url.replace("http://", "http://hookuser:hook-s3cret@"))
        yield running


def sensor_resources(database: DatabaseResource) -> dict:
    return {"database": database, "pipeline_settings": PipelineSettings()}


def night_of(db, tenant: int):
    with db.tenant(tenant) as conn:
        state = stages_db.night_state(conn, RUN_DATE)
        stages = {s.stage: s for s in stages_db.stages(conn, state.run_id)} if state else {}
    return state, stages


def secrets_in(receiver, sandbox_env) -> list[str]:
    secrets = [value for key, value in sandbox_env.items() if key in SANDBOX_KEYS and "KEY" in key]
    secrets += [ODOO_PASSWORD, "hook-s3cret", "hookuser"]
    blob = b"".join(receiver.raw).decode()
    return [s for s in secrets if s and s in blob]


def test_a_normal_night_succeeds_with_its_stages_recorded_and_no_alert(loaded_db, db_target, db_env, sandbox,
                                                                        sandbox_env, receiver, capsys):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="3")
    state, stages = night_of(loaded_db, tenant)
    assert (state.status, state.error_summary) == ("succeeded", None) and state.finished_at is not None
    assert list(stages) == NIGHT_STAGES
    assert all(s.status == "succeeded" and s.finished_at >= s.started_at and s.error is None
               for s in stages.values())
    assert stages["odoo_sync"].counters["failed"] == 0 and stages["lead_scores"].counters["scored"] == 3
    assert receiver.bodies == []

    assert main(["runs", "--date", DAY, "--tenant", str(tenant), "--format", "json"]) == 0
    [night] = json.loads(capsys.readouterr().out)
    assert {"tenant_id", "run_date", "status", "error_summary", "stages", "spend"} <= set(night)
    assert (night["tenant_id"], night["run_date"], night["status"]) == (tenant, DAY, "succeeded")
    assert list(night["stages"]) == NIGHT_STAGES
    for stage in night["stages"].values():
        assert {"started_at", "finished_at", "seconds"} <= set(stage) and stage["seconds"] >= 0
    assert set(night["spend"]) <= {"openai", "tavily", "lusha", "zerobounce"} and night["spend"]


def test_a_degraded_night_is_partial_and_alerted_once(loaded_db, db_target, db_env, sandbox, sandbox_env,
                                                      receiver, monkeypatch):
    monkeypatch.delenv("ZEROBOUNCE_API_KEY")
    tenant = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="2")
    materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="2")  # the same outcome again
    state, stages = night_of(loaded_db, tenant)
    assert state.status == "partial" and "degradations" in state.error_summary
    assert all(s.status == "succeeded" for s in stages.values())
    [alert] = receiver.bodies
    assert (alert["tenant_id"], alert["status"], alert["stage"]) == (tenant, "partial", None)
    assert secrets_in(receiver, sandbox_env) == []


def test_odoo_down_for_good_fails_the_night_and_alerts_once(loaded_db, db_target, db_env, sandbox, sandbox_env,
                                                             receiver):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    sandbox.odoo.set_outage("refuse")
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("tenants", [str(tenant)])
            database = DatabaseResource(database_url=db_target.app_url)
            settings = PipelineSettings.configure_at_launch(overrides={"SHORTLIST_DAILY_CAP": "2"})
            result = dg.materialize(nightly_assets, instance=instance, partition_key=partition_key(DAY, tenant),
                                    resources=default_resources(settings, database), raise_on_error=False)
            assert not result.success
            state, stages = night_of(loaded_db, tenant)
            assert state.status == "failed" and state.finished_at is not None
            assert state.error_summary.startswith("stage odoo_sync failed: OdooUnavailable: Odoo unreachable")
            assert stages["odoo_sync"].status == "failed" and stages["odoo_sync"].attempts == 4
            assert all(stages[s].status == "succeeded" for s in NIGHT_STAGES[:-1])
            assert receiver.bodies == []  # a failing step may yet be retried: the run's end decides

            run = instance.get_run_by_id(result.run_id)
            failure = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1]
            for _ in range(2):  # a second tick, and the watch sweep, send nothing more
                with dg.build_run_status_sensor_context(
                        sensor_name="night_failed", dagster_event=failure.dagster_event, dagster_instance=instance,
                        dagster_run=run, resources=sensor_resources(database)) as context:
                    night_failed_sensor(context.for_run_failure())
            night_watch.watch(loaded_db, load_settings(), instance, AFTER_THE_SLA)
    finally:
        sandbox.odoo.set_outage("none")
    [alert] = [body for body in receiver.bodies if body["run_date"] == DAY]
    assert (alert["tenant_id"], alert["run_date"], alert["status"], alert["stage"]) == (tenant, DAY, "failed",
                                                                                       "odoo_sync")
    # The sweep also found that the tenant's night of today has not finished by NIGHT_SLA.
    [late] = [body for body in receiver.bodies if body["run_date"] != DAY]
    assert (late["outcome"], late["status"], late["run_date"]) == ("sla_missed", "not_started",
                                                                   AFTER_THE_SLA.date().isoformat())
    assert "odoo_sync" in alert["text"] and "Odoo unreachable" in alert["error_summary"]
    assert secrets_in(receiver, sandbox_env) == []
    state, _ = night_of(loaded_db, tenant)
    assert state.status == "failed"


def test_a_cancelled_run_fails_its_night(loaded_db, db_target, db_env, sandbox, sandbox_env, receiver):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant)])
        database = DatabaseResource(database_url=db_target.app_url)
        result = dg.materialize(nightly_assets, instance=instance, partition_key=partition_key(DAY, tenant),
                                selection=["daily_targets"],
                                resources=default_resources(PipelineSettings.configure_at_launch(), database))
        # The run that ran daily_targets is cancelled before its next stage: nothing in a stage saw it.
        run = instance.get_run_by_id(result.run_id)
        with loaded_db.tenant(tenant) as conn:
            state = stages_db.night_state(conn, RUN_DATE)
            stages_db.mark_running(conn, state.run_id, dagster_run_id=run.run_id, worker="elsewhere:1")
        instance.report_run_canceled(run)
        canceled = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELED)[-1]
        with dg.build_run_status_sensor_context(
                sensor_name="night_cancelled", dagster_event=canceled.dagster_event, dagster_instance=instance,
                dagster_run=instance.get_run_by_id(run.run_id), resources=sensor_resources(database)) as context:
            night_cancelled_sensor(context)
    state, _ = night_of(loaded_db, tenant)
    assert (state.status, state.error_summary) == ("failed", "run cancelled") and state.finished_at is not None
    [alert] = receiver.bodies
    assert alert["status"] == "failed" and alert["error_summary"] == "run cancelled"


def test_a_killed_run_is_failed_by_the_watch_and_the_next_run(loaded_db, db_target, db_env, sandbox, sandbox_env,
                                                              receiver, tmp_path):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    home = Path(db_env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SHORTLIST_DAILY_CAP": "6"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant)])
        child = subprocess.Popen([sys.executable, "-m", "dagster", "asset", "materialize", "-m",
                                  "nightly_pipeline.definitions", "--select", "*", "--partition",
                                  str(partition_key(DAY, tenant))], cwd=REPOSITORY, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300  # a safety net for a child that never gets there
            while True:
                state, stages = night_of(loaded_db, tenant)
                if "crawl_corpus" in stages:
                    break
                assert child.poll() is None and time.monotonic() < deadline, "the child never reached the crawl"
                time.sleep(0.2)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        state, stages = night_of(loaded_db, tenant)
        assert state.status == "running" and stages["crawl_corpus"].status == "running"
        dagster_run = instance.get_run_by_id(state.dagster_run_id)
        assert dagster_run.status == dg.DagsterRunStatus.STARTED

        counts = night_watch.watch(loaded_db, load_settings(), instance, dt.datetime.now(dt.timezone.utc))
        assert counts["orphans_failed"] == 1
        state, stages = night_of(loaded_db, tenant)
        assert state.status == "failed"
        assert state.error_summary == f"stage crawl_corpus: {night_watch.KILLED}"
        assert stages["crawl_corpus"].status == "failed"
        assert instance.get_run_by_id(dagster_run.run_id).status == dg.DagsterRunStatus.FAILURE
        [alert] = [body for body in receiver.bodies if body["run_date"] == DAY]
        assert alert["status"] == "failed" and alert["stage"] == "crawl_corpus"

    # The next run of the tenant takes the night over and finishes it.
    materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="6")
    state, stages = night_of(loaded_db, tenant)
    assert state.status == "succeeded" and stages["crawl_corpus"].attempts == 2


def run_checks(db_target, tenant: int, assets, checks) -> dict:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant)])
        # Dagster runs a partitioned check only with an asset of its partition beside it: daily_targets
        # (which reuses the manifest) comes along, every other stage stays as the night left it.
        result = dg.materialize(
            [*assets, *checks], instance=instance, partition_key=partition_key(DAY, tenant),
            selection=dg.AssetSelection.assets("daily_targets") | dg.AssetSelection.all_asset_checks(),
            resources=default_resources(PipelineSettings.configure_at_launch(),
                                        DatabaseResource(database_url=db_target.app_url)))
    return {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}


def test_asset_checks_pass_on_a_normal_night_and_fail_on_a_bad_state(loaded_db, db_target, db_env, sandbox,
                                                                      sandbox_env, admin):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant)])
        result = dg.materialize(
            [*nightly_assets, *night_checks], instance=instance, partition_key=partition_key(DAY, tenant),
            resources=default_resources(PipelineSettings.configure_at_launch(overrides={"SHORTLIST_DAILY_CAP": "3"}),
                                        DatabaseResource(database_url=db_target.app_url)))
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {spec.name: True for check in night_checks for spec in check.check_specs}

    state, _ = night_of(loaded_db, tenant)
    admin.execute("UPDATE enrichment_runs SET caps = caps || '{\"daily_cap\": 1}' WHERE run_id = %s",
                  (state.run_id,))
    primary = admin.execute("SELECT email FROM contacts WHERE tenant_id = %s AND is_primary LIMIT 1",
                            (tenant,)).fetchone()[0]
    admin.execute("UPDATE email_verification_cache SET policy = 'suppressed' WHERE tenant_id = %s AND email = %s",
                  (tenant, primary))
    admin.execute("UPDATE lead_scores SET rationale = ' ' WHERE tenant_id = %s AND company_id = "
                  "(SELECT min(company_id) FROM lead_scores WHERE tenant_id = %s)", (tenant, tenant))
    admin.execute("INSERT INTO vendor_usage (tenant_id, run_id, vendor, endpoint, units_reserved, units_charged, "
                  "status) VALUES (%s, %s, 'tavily', 'search', 1000, 1000, 'ok')", (tenant, state.run_id))
    admin.execute("""UPDATE odoo_sync_log SET error = 'crafted' WHERE tenant_id = %s AND log_id =
                     (SELECT max(log_id) FROM odoo_sync_log WHERE tenant_id = %s)""", (tenant, tenant))
    bad = run_checks(db_target, tenant, nightly_assets, night_checks)
    assert bad["targets_within_daily_cap"] == (False, dg.AssetCheckSeverity.ERROR)
    assert bad["no_suppressed_primary"] == (False, dg.AssetCheckSeverity.ERROR)
    assert bad["scores_in_range_with_rationale"] == (False, dg.AssetCheckSeverity.ERROR)
    assert bad["spend_within_caps"] == (False, dg.AssetCheckSeverity.ERROR)
    assert bad["odoo_sync_failures"] == (False, dg.AssetCheckSeverity.WARN)

    admin.execute("UPDATE odoo_sync_log SET error = 'crafted' WHERE tenant_id = %s", (tenant,))
    assert run_checks(db_target, tenant, nightly_assets, night_checks)["odoo_sync_failures"] == \
        (False, dg.AssetCheckSeverity.ERROR)
