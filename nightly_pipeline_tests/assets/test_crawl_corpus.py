"""crawl_corpus through the sandbox: politeness at the server, resumable re-runs, degradation."""
import datetime as dt
from collections import defaultdict

import dagster as dg
import pytest

from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.crawl_corpus import crawl_corpus
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.definitions import default_resources
from nightly_pipeline.partitions import partition_key
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline_tests.kit.graph import materialize, metadata
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
ASSETS = [companies, icp_candidates, daily_targets, crawl_corpus]
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"]}
DAY = "2026-06-01"


def run_records(db, tenant_id):
    with db.tenant(tenant_id) as conn:
        manifest = targets_db.get_manifest(conn, dt.date.fromisoformat(DAY))
        return enrichment_db.run_records(conn, manifest.run_id)


def test_targets_are_crawled_politely_and_enriched(loaded_db, db_target, sandbox, sandbox_env):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE)
    result = materialize(db_target, ASSETS, tenant, DAY, SHORTLIST_DAILY_CAP="8")
    md = metadata(result, "crawl_corpus")
    assert md["dagster/row_count"] == 8
    assert md["pages_fetched"] > 8
    assert md["errors"] == 0
    records = run_records(loaded_db, tenant)
    crawled = [r for r in records if r.outcome in ("crawled", "thin", "fallback")]
    assert crawled, records
    assert all(r.extraction["source"] in ("llm", "deterministic") for r in records)
    assert any(r.extraction["source"] == "llm" for r in records)
    # Politeness measured where it matters, at the server: request starts per host >= 0.5 s apart.
    starts = defaultdict(list)
    for entry in sandbox.web.request_log:
        starts[entry.host].append(entry.at)
    gaps = [b - a for times in starts.values() for a, b in zip(sorted(times), sorted(times)[1:])]
    assert gaps and min(gaps) >= 0.5 - 0.005
    assert md["tokens"] > 0


def test_a_rerun_makes_no_vendor_calls_and_crawls_nothing(loaded_db, db_target, sandbox, sandbox_env):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE)
    materialize(db_target, ASSETS, tenant, DAY, SHORTLIST_DAILY_CAP="5")
    before = {s.name: s.stats()["requests"] for s in sandbox.servers}
    again = materialize(db_target, [crawl_corpus], tenant, DAY)
    after = {s.name: s.stats()["requests"] for s in sandbox.servers}
    assert after == before
    assert metadata(again, "crawl_corpus")["resumed_from_earlier_attempt"] == 5


def test_without_vendor_keys_the_stage_degrades_instead_of_failing(loaded_db, db_target, sandbox, sandbox_env,
                                                                     monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("TAVILY_API_KEY")
    tenant = add_tenant(loaded_db, "acme", SOFTWARE)
    md = metadata(materialize(db_target, ASSETS, tenant, DAY, SHORTLIST_DAILY_CAP="4"), "crawl_corpus")
    assert md["tokens"] == 0 and md["tavily_queries"] == 0
    assert md["degraded"] == 4
    assert sandbox.openai.stats()["requests"] == 0 and sandbox.tavily.stats()["requests"] == 0
    assert all("no OPENAI_API_KEY" in " ".join(r.reasons) for r in run_records(loaded_db, tenant))
    with loaded_db.tenant(tenant) as conn:
        recorded = conn.execute("SELECT degradations FROM enrichment_runs").fetchone()["degradations"]
    causes = [d["cause"] for d in recorded if d["step"] == "crawl_corpus"]
    assert [cause.split(":")[0] for cause in causes] == ["no OPENAI_API_KEY", "no TAVILY_API_KEY"]


def test_a_stage_without_its_manifest_fails_without_retrying(loaded_db, db_target, sandbox, sandbox_env):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant)])
        result = dg.materialize([crawl_corpus], instance=instance, partition_key=partition_key(DAY, tenant),
                                resources=default_resources(PipelineSettings.configure_at_launch(),
                                                            DatabaseResource(database_url=db_target.app_url)),
                                raise_on_error=False)
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert failure.step_failure_data.error.message.strip().endswith(
        f"no run manifest for {DAY}|{tenant}: materialize daily_targets first")
    assert not [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]


def test_a_tavily_budget_of_zero_is_never_exceeded(loaded_db, db_target, sandbox, sandbox_env):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE)
    md = metadata(materialize(db_target, ASSETS, tenant, DAY, SHORTLIST_DAILY_CAP="10", TAVILY_MAX_QUERIES="0"),
                  "crawl_corpus")
    assert md["tavily_queries"] == 0
    assert sandbox.tavily.stats()["requests"] == 0
