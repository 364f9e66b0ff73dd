"""Nights that meet flaky vendors: per-call retries finish the job, and what a night left degraded
or unverified is picked up by a re-run or the next night."""
import dataclasses
import datetime as dt

import pytest

from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import reports
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.definitions import nightly_assets
from nightly_pipeline_sandbox.base import FaultConfig
from nightly_pipeline_tests.kit.graph import materialize, metadata
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
DAY = "2026-06-01"
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"], "preferred_titles": ["CEO", "Founder", "CTO"],
            "keywords": ["saas", "cloud"]}


@pytest.fixture
def faults(sandbox):
    """Set a server's faults for one test; every server is healthy again afterwards."""
    saved = {server.name: dataclasses.replace(server.faults) for server in sandbox.servers}

    def inject(server, **config) -> None:
        server.faults = FaultConfig(**config)

    yield inject
    for server in sandbox.servers:
        server.faults = saved[server.name]


def statuses(server) -> list[int]:
    return [record.status for record in server.request_log]


def test_odoo_behind_a_throttling_proxy_ends_with_every_record_synced_once(loaded_db, db_target, sandbox,
                                                                           sandbox_env, faults):
    tenant = add_tenant(loaded_db, "throttled", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    faults(sandbox.odoo, rate_429=0.05, rate_5xx=0.05, status_5xx=502, retry_after_s=0)
    result = materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="8")
    seen = statuses(sandbox.odoo)
    assert 429 in seen and 502 in seen, "the proxy never throttled: the test proves nothing"
    assert metadata(result, "odoo_sync")["failed"] == 0
    with loaded_db.tenant(tenant) as conn:
        shortlist = reports.shortlist(conn, dt.date.fromisoformat(DAY))
    synced = [r for r in shortlist if r["bucket"] in ("High", "Medium")]
    assert synced and all(r["odoo_partner_id"] for r in synced)
    assert all(r["odoo_lead_id"] for r in shortlist if float(r["score"]) >= 0.66)
    partners = {r["id"] for r in sandbox.odoo.records("demo_software", "res.partner")}
    assert {r["odoo_partner_id"] for r in synced} <= partners
    duplicates = sandbox.odoo.duplicates("demo_software")
    assert all(not found for found in duplicates.values()), duplicates


def test_a_tavily_429_storm_leaves_companies_degraded_and_a_rerun_fills_them(loaded_db, db_target, sandbox,
                                                                            sandbox_env, faults):
    tenant = add_tenant(loaded_db, "stormy", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    faults(sandbox.tavily, rate_429=1.0, retry_after_s=0)
    materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="12")
    with loaded_db.tenant(tenant) as conn:
        manifest = targets_db.get_manifest(conn, dt.date.fromisoformat(DAY))
        first = enrichment_db.run_records(conn, manifest.run_id)
        done = enrichment_db.done_company_ids(conn, manifest.run_id)
    stormed = {r.company_id for r in first if any("rate limited by Tavily" in reason for reason in r.reasons)}
    assert stormed, "no company needed Tavily tonight: the storm proves nothing"
    assert set(statuses(sandbox.tavily)) == {429}
    assert all(r.degraded for r in first if r.company_id in stormed)
    assert not stormed & done
    assert done, "companies the storm did not touch stay done"

    faults(sandbox.tavily)
    sandbox.tavily.reset()
    rerun = materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="12")
    assert metadata(rerun, "crawl_corpus")["resumed_from_earlier_attempt"] == len(done)
    assert statuses(sandbox.tavily) and set(statuses(sandbox.tavily)) == {200}
    with loaded_db.tenant(tenant) as conn:
        second = {r.company_id: r for r in enrichment_db.run_records(conn, manifest.run_id)}
        done_now = enrichment_db.done_company_ids(conn, manifest.run_id)
    assert not any("Tavily" in reason for cid in stormed for reason in second[cid].reasons)
    assert stormed <= done_now


def test_a_zerobounce_outage_night_is_verified_and_exported_the_next_night(loaded_db, db_target, sandbox,
                                                                          sandbox_env, faults):
    tenant = add_tenant(loaded_db, "outage", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_logistics")
    faults(sandbox.zerobounce, rate_5xx=1.0)
    first = materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="5")
    assert metadata(first, "verified_emails")["verified_now"] == 0
    with loaded_db.tenant(tenant) as conn:
        night_one = reports.shortlist(conn, dt.date.fromisoformat(DAY))
        night_one_ids = targets_db.get_manifest(conn, dt.date.fromisoformat(DAY)).selected_company_ids
    exported = [r for r in night_one if r["odoo_partner_id"]]
    assert exported

    def contacts_in_odoo() -> set[int]:
        return {r["parent_id"] for r in sandbox.odoo.records("demo_logistics", "res.partner")
                if r.get("parent_id") in {x["odoo_partner_id"] for x in exported}}

    # The default export policy keeps unverified addresses out of the CRM.
    assert not contacts_in_odoo()

    faults(sandbox.zerobounce)
    materialize(db_target, nightly_assets, tenant, "2026-06-02", SHORTLIST_DAILY_CAP="5")
    with loaded_db.tenant(tenant) as conn:
        still_unverified = conn.execute(
            """SELECT count(*) AS n FROM contacts ct
               LEFT JOIN email_verification_cache v ON v.tenant_id = ct.tenant_id AND v.email = ct.email
               WHERE ct.tenant_id = current_tenant_id() AND ct.company_id = ANY(%s) AND v.email IS NULL""",
            (night_one_ids,)).fetchone()["n"]
    assert still_unverified == 0
    assert contacts_in_odoo(), "the contacts verified on the second night never reached Odoo"
    duplicates = sandbox.odoo.duplicates("demo_logistics")
    assert all(not found for found in duplicates.values()), duplicates
