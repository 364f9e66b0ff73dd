"""The operator's controls end to end: run_nightly.py --dry-run and --limit, and SKIP_STEPS."""
import datetime as dt

import psycopg
import pytest
from psycopg import sql

from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.nightly import main
from nightly_pipeline_tests.kit.graph import materialize
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
DAY = "2026-06-01"
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"], "preferred_titles": ["CEO", "Founder", "CTO"],
            "keywords": ["saas", "cloud"]}


def row_counts(admin_url: str) -> dict[str, int]:
    with psycopg.connect(admin_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
                for t in tables}


def vendor_requests(sandbox) -> dict[str, int]:
    return {server.name: len(server.request_log) for server in sandbox.servers}


def test_dry_run_shows_targets_caps_and_budgets_and_changes_nothing(loaded_db, db_target, db_env, sandbox,
                                                                     sandbox_env, capsys):
    tenant = add_tenant(loaded_db, "planned", SOFTWARE, odoo_url=sandbox.odoo_url, daily_cap=6)
    materialize(db_target, [companies, icp_candidates], tenant, DAY)
    before, requests = row_counts(db_target.admin_url), vendor_requests(sandbox)

    assert main(["--dry-run", "--date", DAY, "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert row_counts(db_target.admin_url) == before
    assert vendor_requests(sandbox) == requests
    assert f"would run {DAY}|{tenant} (planned)" in out
    assert "manifest: new, at most 3 targets" in out
    assert "caps: targets=3, openai=150000, tavily=800, lusha=500, zerobounce=1000" in out
    assert "budget left: openai=150000, tavily=800, lusha=500, zerobounce=1000" in out
    targets = [line for line in out.splitlines() if line.startswith("    ") and "(UEN " in line]
    assert len(targets) == 3 and all(line.endswith("never targeted before") for line in targets)

    assert main(["--dry-run", "--date", DAY]) == 0
    assert "manifest: new, at most 6 targets" in capsys.readouterr().out
    assert row_counts(db_target.admin_url) == before


def _manifest(db, tenant):
    with db.tenant(tenant) as conn:
        return targets_db.get_manifest(conn, dt.date.fromisoformat(DAY))


def _degradations(db, tenant) -> dict[str, list[str]]:
    with db.tenant(tenant) as conn:
        row = conn.execute("SELECT degradations FROM enrichment_runs WHERE run_date = %s",
                           (dt.date.fromisoformat(DAY),)).fetchone()
    found: dict[str, list[str]] = {}
    for item in row["degradations"]:
        found.setdefault(item["step"], []).append(item["cause"])
    return found


def test_limit_caps_a_new_manifest_and_trims_an_existing_one_and_skip_steps_skips(
        loaded_db, db_target, db_env, sandbox, sandbox_env, monkeypatch, capsys):
    tenant = add_tenant(loaded_db, "limited", SOFTWARE, odoo_url=sandbox.odoo_url, daily_cap=6)

    assert main(["--tenant", str(tenant), "--date", DAY, "--limit", "2"]) == 0, capsys.readouterr().out
    manifest = _manifest(loaded_db, tenant)
    assert len(manifest.selected_company_ids) == 2      # the tenant's own cap is 6

    monkeypatch.setenv("SKIP_STEPS", "lusha,zerobounce,odoo_sync")
    odoo_before = len(sandbox.odoo.request_log)
    lusha_before, zerobounce_before = len(sandbox.lusha.request_log), len(sandbox.zerobounce.request_log)
    assert main(["--tenant", str(tenant), "--date", DAY, "--limit", "1"]) == 0, capsys.readouterr().out
    again = _manifest(loaded_db, tenant)
    assert again.selected_company_ids == manifest.selected_company_ids
    assert again.company_ids_to_process == manifest.selected_company_ids[:1]
    assert len(sandbox.odoo.request_log) == odoo_before
    assert len(sandbox.lusha.request_log) == lusha_before
    assert len(sandbox.zerobounce.request_log) == zerobounce_before
    skipped = {step: causes for step, causes in _degradations(loaded_db, tenant).items()
               if any("skipped by SKIP_STEPS" in cause for cause in causes)}
    assert set(skipped) == {"contacts", "verified_emails", "odoo_sync"}

    monkeypatch.setenv("SKIP_STEPS", "crawl")
    assert main(["--tenant", str(tenant), "--date", DAY]) == 2
    assert "SKIP_STEPS: expected a comma-separated list of tavily, lusha, zerobounce, extraction, odoo_sync, " \
           "got unknown 'crawl'" in capsys.readouterr().err
