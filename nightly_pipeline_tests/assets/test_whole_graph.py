"""The whole graph for a tenant partition through the sandbox, then again: nothing new anywhere."""
import datetime as dt

import pytest

from nightly_pipeline.cli import main
from nightly_pipeline.db import reports
from nightly_pipeline.definitions import nightly_assets
from nightly_pipeline_tests.kit.graph import materialize, metadata
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
DAY = "2026-06-01"
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"], "preferred_titles": ["CEO", "Founder", "CTO"],
            "keywords": ["saas", "cloud"]}


def odoo_creates(sandbox, database: str) -> dict:
    return dict(sandbox.odoo.stats()["databases"][database]["creates"])


def test_whole_graph_then_a_rerun_that_creates_nothing(loaded_db, db_target, db_env, sandbox, sandbox_env, capsys):
    tenant = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    first = materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="6")
    with loaded_db.tenant(tenant) as conn:
        shortlist = reports.shortlist(conn, dt.date.fromisoformat(DAY))
    assert len(shortlist) == 6
    assert all(0 <= float(r["score"]) <= 1 and r["bucket"] in ("High", "Medium", "Low") and r["rationale"]
               for r in shortlist)
    synced = [r for r in shortlist if r["bucket"] in ("High", "Medium")]
    assert synced and all(r["odoo_partner_id"] for r in synced)
    assert all(r["odoo_lead_id"] for r in shortlist if float(r["score"]) >= 0.66)
    assert metadata(first, "odoo_sync")["failed"] == 0
    created = odoo_creates(sandbox, "demo_software")
    assert created.get("res.partner", 0) >= len(synced)
    vendor_requests = {s.name: s.stats()["requests"] for s in sandbox.servers if s.name != "odoo"}
    assert main(["shortlist", str(tenant), "--date", DAY, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split(",")[:5] == ["rank", "company", "uen", "score", "bucket"]
    assert len(lines) == 7 and "odoo_lead_id" in lines[0]

    materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="6")
    assert odoo_creates(sandbox, "demo_software") == created
    assert {s.name: s.stats()["requests"] for s in sandbox.servers if s.name != "odoo"} == vendor_requests
    duplicates = sandbox.odoo.duplicates("demo_software")
    assert all(not found for found in duplicates.values()), duplicates
    with loaded_db.tenant(tenant) as conn:
        again = reports.shortlist(conn, dt.date.fromisoformat(DAY))
    assert [(r["uen"], r["odoo_partner_id"], r["odoo_lead_id"]) for r in again] == \
        [(r["uen"], r["odoo_partner_id"], r["odoo_lead_id"]) for r in shortlist]


def test_two_tenants_reach_only_their_own_odoo(loaded_db, db_target, sandbox, sandbox_env):
    software = add_tenant(loaded_db, "software", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    logistics = add_tenant(loaded_db, "freight", {"ssic_codes": ["52291", "46900"]}, odoo_url=sandbox.odoo_url,
                           odoo_db="demo_logistics")
    before = {db: odoo_creates(sandbox, db) for db in ("demo_software", "demo_logistics")}
    materialize(db_target, nightly_assets, logistics, DAY, SHORTLIST_DAILY_CAP="3")
    assert odoo_creates(sandbox, "demo_software") == before["demo_software"]
    assert odoo_creates(sandbox, "demo_logistics") != before["demo_logistics"]
    with loaded_db.tenant(software) as conn:
        assert reports.shortlist(conn, dt.date.fromisoformat(DAY)) == []
