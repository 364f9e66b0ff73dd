"""Public facts through the sandbox: a second tenant targeting the same companies the same night
fetches nothing the first already fetched, shared rows carry no tenant trace, facts age out, and a
hostile website fails nobody's night."""
import datetime as dt
import json
from collections import Counter

import psycopg
import pytest

from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.contacts import contacts
from nightly_pipeline.assets.crawl_corpus import crawl_corpus
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.assets.verified_emails import verified_emails
from nightly_pipeline.crawl.politeness import politeness_key
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import reports
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.definitions import nightly_assets
from nightly_pipeline_sandbox.world import World
from nightly_pipeline_tests.kit.night import new_night
from nightly_pipeline_tests.kit.graph import materialize, metadata
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
DAY = "2026-06-01"
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"], "preferred_titles": ["CEO", "Founder", "CTO"],
            "keywords": ["saas", "cloud"]}
SELECTION = [companies, icp_candidates, daily_targets]
FACTS = [crawl_corpus, contacts, verified_emails]
CAP = "6"
SHARED = ("companies", "public_websites", "public_site_crawls", "public_extractions", "public_email_verifications",
          "public_fact_claims")


def requests(sandbox) -> dict[str, int]:
    return {s.name: s.stats()["requests"] for s in sandbox.servers}


def manifest(db, tenant: int) -> targets_db.Manifest:
    with db.tenant(tenant) as conn:
        return targets_db.get_manifest(conn, dt.date.fromisoformat(DAY))


def test_a_second_tenant_the_same_night_fetches_nothing_the_first_fetched(
        loaded_db, db_target, sandbox, sandbox_env, admin):
    first = add_tenant(loaded_db, "acme", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_software")
    second = add_tenant(loaded_db, "globex", SOFTWARE, odoo_url=sandbox.odoo_url, odoo_db="demo_logistics")
    materialize(db_target, nightly_assets, first, DAY, SHORTLIST_DAILY_CAP=CAP)
    assert requests(sandbox)["web"] > 0 and requests(sandbox)["openai"] > 0 and requests(sandbox)["zerobounce"] > 0

    materialize(db_target, SELECTION, second, DAY, SHORTLIST_DAILY_CAP=CAP)
    assert manifest(loaded_db, second).selected_company_ids == manifest(loaded_db, first).selected_company_ids
    before = requests(sandbox)
    result = materialize(db_target, FACTS, second, DAY, SHORTLIST_DAILY_CAP=CAP)
    after = requests(sandbox)
    # Website, crawl, extraction and verification: all reused, no request at the servers.
    assert (after["web"], after["openai"], after["zerobounce"]) == (before["web"], before["openai"],
                                                                     before["zerobounce"])
    assert metadata(result, "crawl_corpus")["errors"] == 0
    assert metadata(result, "verified_emails")["verified_now"] == 0
    with loaded_db.tenant(second) as conn:
        usage = conn.execute("""SELECT vendor, status, units_charged FROM vendor_usage
                                WHERE run_id = %s AND vendor = 'openai'""", (manifest(loaded_db, second).run_id,))
        openai_rows = usage.fetchall()
    assert openai_rows and all((r["status"], r["units_charged"]) == ("reused", 0) for r in openai_rows)

    # The second tenant's shortlist is as complete as the first's: the same companies, contacts, verdicts.
    materialize(db_target, nightly_assets, second, DAY, SHORTLIST_DAILY_CAP=CAP)
    shortlists = {}
    for tenant in (first, second):
        with loaded_db.tenant(tenant) as conn:
            shortlists[tenant] = [(r["uen"], r["domain"], r["primary_contact"], r["verification"])
                                  for r in reports.shortlist(conn, dt.date.fromisoformat(DAY))]
    assert len(shortlists[first]) == int(CAP)
    assert shortlists[second] == shortlists[first]

    # Nothing shared names either tenant or either run.
    run_ids = {str(manifest(loaded_db, tenant).run_id) for tenant in (first, second)}
    for table in SHARED:
        for (row,) in admin.execute(f"SELECT row_to_json(t)::text FROM {table} t"):
            assert not any(run_id in row for run_id in run_ids), (table, row)
            assert '"tenant' not in row and '"run_id' not in row, (table, row)


def two_tenants_the_first_crawled(loaded_db, db_target, sandbox) -> tuple[int, int, Counter]:
    """Two tenants with the same targets; the first crawled them: the robots.txt fetches per site."""
    first = add_tenant(loaded_db, "acme", SOFTWARE)
    second = add_tenant(loaded_db, "globex", SOFTWARE)
    for tenant in (first, second):
        materialize(db_target, SELECTION, tenant, DAY, SHORTLIST_DAILY_CAP="4")
    materialize(db_target, [crawl_corpus], first, DAY)
    crawled = Counter(politeness_key(e.host) for e in sandbox.web.request_log if e.path == "/robots.txt")
    assert crawled
    return first, second, crawled


def test_a_fact_older_than_the_window_is_fetched_again(loaded_db, db_target, sandbox, sandbox_env, admin):
    first, second, crawled = two_tenants_the_first_crawled(loaded_db, db_target, sandbox)
    admin.execute("UPDATE public_site_crawls SET crawled_at = crawled_at - interval '21 hours'")
    admin.execute("UPDATE public_websites SET checked_at = checked_at - interval '21 hours'")
    sandbox.web.reset()
    materialize(db_target, [crawl_corpus], second, DAY, PUBLIC_FACTS_MAX_AGE_HOURS="20")
    again = Counter(politeness_key(e.host) for e in sandbox.web.request_log if e.path == "/robots.txt")
    assert set(again) == set(crawled) and set(again.values()) == {1}


def test_with_reuse_off_a_second_tenant_crawls_searches_and_extracts_again(loaded_db, db_target, sandbox,
                                                                          sandbox_env, admin):
    first, second, crawled = two_tenants_the_first_crawled(loaded_db, db_target, sandbox)
    first_extractions = sandbox.openai.stats()["calls"]
    assert first_extractions > 0
    sandbox.web.reset()
    result = materialize(db_target, [crawl_corpus], second, DAY, PUBLIC_FACTS_REUSE="false")
    again = Counter(politeness_key(e.host) for e in sandbox.web.request_log if e.path == "/robots.txt")
    # Every site the first tenant crawled (found by the registry or by its search) is crawled again.
    assert set(again) == set(crawled)
    assert sandbox.openai.stats()["calls"] == 2 * first_extractions
    assert metadata(result, "crawl_corpus")["errors"] == 0
    with loaded_db.tenant(second) as conn:
        reused = conn.execute("""SELECT count(*) AS n FROM vendor_usage
                                 WHERE run_id = %s AND status = 'reused'""",
                              (manifest(loaded_db, second).run_id,)).fetchone()["n"]
    assert reused == 0


def test_a_site_with_a_nul_in_its_json_ld_and_an_impossible_headcount_fails_nobody(
        loaded_db, db_target, sandbox, sandbox_env, admin):
    world = World.from_acra_csv()
    hostile_domain = world.hard_cases["hostile_json_ld"]
    [hostile_uen] = [uen for uen, domain in world.domain_of.items() if domain == hostile_domain]
    tenant = add_tenant(loaded_db, "acme", SOFTWARE)
    materialize(db_target, [companies], tenant, DAY)
    ids = dict(admin.execute("SELECT uen, company_id FROM companies WHERE uen = %s OR website_domain IS NOT NULL "
                             "ORDER BY uen = %s DESC, company_id LIMIT 3", (hostile_uen, hostile_uen)).fetchall())
    assert hostile_uen in ids
    night = new_night(loaded_db, tenant, list(ids.values()))

    result = materialize(db_target, [crawl_corpus], tenant, DAY)

    assert metadata(result, "crawl_corpus")["errors"] == 0
    with loaded_db.tenant(tenant) as conn:
        records = {r.uen: r for r in enrichment_db.run_records(conn, night.run_id)}
    assert set(records) == set(ids)
    hostile = records[hostile_uen]
    assert hostile.outcome in ("crawled", "thin")
    organization = hostile.signals["organization"]
    assert "\x00" not in json.dumps(organization, ensure_ascii=False) and organization["name"]
    row = admin.execute("SELECT employees_estimate, employees_source FROM companies WHERE uen = %s",
                        (hostile_uen,)).fetchone()
    # 10^13 employees is not a headcount any column holds: not stored, not clipped into another number.
    assert row[0] is None or row[0] < 2**31
    assert row[1] != "structured" or row[0] is not None
