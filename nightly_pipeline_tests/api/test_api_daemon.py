"""A kickoff over HTTP that a running Dagster daemon takes off the queue and runs to the end of the
tenant's night against the sandbox, then reads back through the API."""
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import dagster as dg
import pytest

from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.domain.acra import parse_acra_text
from nightly_pipeline_sandbox.runner import ODOO_PASSWORD, ODOO_PASSWORD_ENV, SANDBOX_KEYS, Sandbox, SandboxConfig
from nightly_pipeline_tests.api.conftest import add_tenant, default_signals, issue, stop

pytestmark = pytest.mark.database
DAY = "2026-06-01"
REPOSITORY = Path(__file__).resolve().parents[2]
STAGES = ["companies", "icp_candidates", "daily_targets", "crawl_corpus", "contacts", "verified_emails",
          "lead_scores", "odoo_sync"]
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"], "preferred_titles": ["CEO", "Founder", "CTO"],
            "keywords": ["saas", "cloud"]}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(web_latency_scale=0.1, vendor_latency_scale=0)) as running:
        yield running


def start_daemon(api, db_target, sandbox, log_path: Path) -> subprocess.Popen:
    env = {key: value for key, value in api.env.items() if key not in SANDBOX_KEYS}
    env.update(sandbox.env)
    env.update({"DATABASE_URL": db_target.app_url, "SHORTLIST_DAILY_CAP": "2", "SCHED_ENABLED": "false"})
    with log_path.open("w") as log:
        return subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run",
                                 "-w", str(REPOSITORY / "workspace.yaml")],
                                cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=default_signals)


def wait_until_finished(instance: dg.DagsterInstance, run_id: str, daemon: subprocess.Popen, log_path: Path):
    deadline = time.monotonic() + 600  # a safety net for a hung daemon, not a performance assertion
    while True:
        run = instance.get_run_by_id(run_id)
        if run.status in FINISHED:
            return run
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} is {run.status.value}; daemon log:\n{log_path.read_text()[-4000:]}")
        time.sleep(1)


def test_a_kickoff_is_run_by_the_daemon_to_the_end_of_the_night(api, db, db_target, queue, sandbox, tmp_path):
    text = (resources.files("nightly_pipeline") / "data" / "acra_sample.csv").read_text(encoding="utf-8")
    with db.shared() as conn:
        acra_db.upsert_staging(conn, parse_acra_text(text).rows)
    tenant = add_tenant(db, "acme", icp=SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software",
                        password_env=ODOO_PASSWORD_ENV)
    client = api.client(issue(db, "console", "operator"))
    submitted = client.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
    assert submitted.status_code == 202
    run_id = submitted.json()["run_id"]
    assert queue.get_run_by_id(run_id).status == dg.DagsterRunStatus.QUEUED
    odoo_before = sandbox.odoo.stats()["databases"]["demo_software"]["creates"].get("res.partner", 0)

    log_path = tmp_path / "daemon.log"
    daemon = start_daemon(api, db_target, sandbox, log_path)
    try:
        run = wait_until_finished(queue, run_id, daemon, log_path)
    finally:
        code = stop(daemon)
    assert code == 0, log_path.read_text()[-4000:]
    assert run.status == dg.DagsterRunStatus.SUCCESS, log_path.read_text()[-4000:]

    detail = client.get(f"/admin/runs/{run_id}")
    assert detail.status_code == 200
    assert (detail.json()["status"], detail.json()["tenant_id"]) == ("SUCCESS", tenant)
    nights = client.get("/admin/runs", params={"date": DAY, "tenant_id": tenant})
    night = nights.json()[0]
    assert night["status"] == "succeeded" and night["dagster_run_id"] == run_id
    assert (night["targets"], night["shortlisted"]) == (2, 2)
    assert list(night["stages"]) == STAGES
    assert all(s["status"] == "succeeded" and s["seconds"] >= 0 for s in night["stages"].values())
    assert night["spend"] and night["failures"] == {"crawl_errors": 0, "odoo_errors": 0, "failed_stages": []}
    assert sandbox.odoo.stats()["databases"]["demo_software"]["creates"].get("res.partner", 0) > odoo_before

    again = client.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
    assert again.status_code == 202 and again.json()["run_id"] != run_id  # the night is over: a re-run may queue
    shown = submitted.text + detail.text + nights.text + again.text + api.log()
    assert [s for s in (*SANDBOX_KEYS.values(), ODOO_PASSWORD) if s in shown] == []
