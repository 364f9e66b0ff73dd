"""The shortlist page's content and markup from stored rows: hostile text stays text, Odoo links only
from a sound Odoo URL, honest costs, and who can be reached today."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.db import Database
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.scoring.score import build_features, score
from nightly_pipeline.report import render_shortlist_page
from nightly_pipeline.report.render import render_page
from nightly_pipeline.report.view import odoo_base_url, page_view
from nightly_pipeline_tests.kit.scoring import (
    CEO,
    SOFTWARE_ICP,
    company_row,
    create_run,
    crawl_row,
    insert_company,
    insert_contact,
    insert_verification,
    save_crawl,
)
from nightly_pipeline_tests.kit.tenants import register_tenant

RUN_DATE = dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 6, 1, 1, 30, tzinfo=dt.timezone.utc)
HOSTILE = '<script>alert(1)</script><img src="https://evil.example/x.png">"\'&'


def night(**changes: Any) -> dict[str, Any]:
    data = {"tenant_id": 3, "tenant_name": "Acme", "odoo_url": "https://acme.odoo.com", "run_id": uuid.uuid4(),
            "status": "succeeded", "started_at": NOW, "finished_at": NOW, "error_summary": None,
            "degradations": [], "step_counters": {}, "targets": 2, "scored": 2, "shortlisted": 2}
    data.update(changes)
    return data


def lead_row(rank: int = 1, **changes: Any) -> dict[str, Any]:
    data = {"rank": rank, "company_id": rank, "company": f"Company {rank}", "uen": f"20190000{rank}K",
            "website_domain": f"company{rank}.sg", "industry": "software", "entity_status": "Live",
            "employees_estimate": 42, "employees_min": 42, "employees_max": 42, "employees_source": "stated",
            "score": 0.8, "bucket": "High", "rationale": "Fits.", "rationale_source": "template",
            "reasons": [], "contributions": [{"feature": "pricing_page", "text": "a published pricing page",
                                              "contribution": 0.03},
                                             {"feature": "tech_match", "text": "no tech stack seen on the site",
                                              "contribution": -0.05}],
            "odoo_partner_id": 10 + rank, "odoo_lead_id": 20 + rank,
            "contact_email": f"ceo@company{rank}.sg", "contact_name": "Tan Mei", "contact_title": "CEO",
            "contact_phone": None, "contact_source": "site", "contact_name_source": "site_page",
            "contact_policy": "deliverable", "contact_status": "valid", "reachable_addresses": 1, "addresses": 1,
            "contact_phones": 0, "crawl_outcome": "crawled", "crawl_reasons": [],
            "crawl_domain": {"value": f"company{rank}.sg", "source": "acra"}, "crawl": {"pages_fetched": 3},
            "crawl_fallback": None, "crawl_pages": [], "site_phones": [], "extraction_source": "llm"}
    data.update(changes)
    return data


def view(rows: list[dict[str, Any]], prices: dict[str, float] | None = None, **night_changes: Any):
    spend = [{"vendor": "openai", "calls": 4, "units_charged": 10_000, "unsettled": 0},
             {"vendor": "lusha", "calls": 2, "units_charged": 3, "unsettled": 0}]
    return page_view(night(**night_changes), spend, rows, prices or {}, RUN_DATE, NOW)


@pytest.mark.parametrize(("url", "base"), [
    ("https://acme.odoo.com", "https://acme.odoo.com"), ("https://acme.odoo.com/", "https://acme.odoo.com"),
    ("http://127.0.0.1:8069", "http://127.0.0.1:8069"), ("https://crm.acme.sg/odoo-prod/", "https://crm.acme.sg/odoo-prod"),
    ("javascript:alert(1)", None), ("ftp://acme.sg", None), ("acme.odoo.com", None), ("", None), (None, None),
    ('https://acme.odoo.com/"><script>', None),
])
def test_odoo_links_only_from_a_sound_url(url: str | None, base: str | None) -> None:
    assert odoo_base_url(url) == base


def test_odoo_record_links_use_the_current_url_scheme() -> None:
    [lead] = view([lead_row()]).leads
    assert lead.odoo_partner_url == "https://acme.odoo.com/odoo/contacts/11"
    assert lead.odoo_lead_url == "https://acme.odoo.com/odoo/crm.lead/21"
    [unlinked] = view([lead_row()], odoo_url="javascript:alert(1)").leads
    assert unlinked.odoo_partner_url is None and unlinked.odoo_partner_id == 11


@pytest.mark.parametrize(("prices", "per_lead", "note"), [
    ({}, None, "unknown: no vendor unit prices are configured (set VENDOR_UNIT_COSTS)"),
    ({"openai": 0.000001}, None, "unknown: no unit price for lusha (set VENDOR_UNIT_COSTS)"),
    ({"openai": 0.000001, "lusha": 0.5}, "US$0.76", None),
])
def test_cost_per_lead_is_known_only_when_every_vendor_used_has_a_price(prices, per_lead, note) -> None:
    page = view([lead_row(1), lead_row(2)], prices)
    assert (page.cost_per_lead, page.cost_note) == (per_lead, note)


@pytest.mark.parametrize(("changes", "reason"), [
    ({}, None),
    ({"contact_email": None, "reachable_addresses": 0, "addresses": 0, "site_phones": ["+6561234567"]}, None),
    ({"contact_email": None, "reachable_addresses": 0, "addresses": 0, "website_domain": None, "crawl_domain": None,
      "crawl_outcome": "no_website"}, "no website and no contact"),
    ({"contact_email": None, "reachable_addresses": 0, "addresses": 0}, "a website, but no address or phone number on it"),
    ({"contact_email": None, "reachable_addresses": 0, "addresses": 2}, "every address found is undeliverable, and no phone number"),
])
def test_leads_nobody_can_be_reached_at_are_set_apart(changes: dict[str, Any], reason: str | None) -> None:
    page = view([lead_row(1, **changes), lead_row(2)])
    leads = {lead.rank: lead for lead in page.leads}
    assert leads[1].not_actionable_because == reason
    assert (leads[1] in page.not_actionable) == (reason is not None)


@pytest.mark.parametrize(("policy", "badge"), [("deliverable", "Verified deliverable"),
                                               ("risky", "Risky: catch-all or unknown"), (None, "Unverified"),
                                               ("suppressed", "Suppressed: do not email")])
def test_every_verification_has_a_badge_in_words(policy: str | None, badge: str) -> None:
    page = view([lead_row(contact_policy=policy)])
    html = render_page(page)
    assert page.leads[0].contact.badge_text == badge and badge in html


def test_headcounts_say_where_they_come_from() -> None:
    stated, inferred, unknown = view([
        lead_row(1), lead_row(2, employees_estimate=None, employees_min=11, employees_max=50,
                              employees_source="inferred"),
        lead_row(3, employees_estimate=None, employees_min=None, employees_max=None, employees_source=None)]).leads
    assert (stated.employees, stated.employees_source) == ("42", "stated on the site")
    assert (inferred.employees, inferred.employees_source) == ("11–50", "estimated from the site text")
    assert unknown.employees == "not stated"


def test_hostile_values_from_the_web_stay_text() -> None:
    row = lead_row(company=HOSTILE, rationale=HOSTILE, contact_name=HOSTILE, contact_title=HOSTILE,
                   contact_email=f"x{HOSTILE}@a.sg", industry=HOSTILE,
                   contributions=[{"feature": "x", "text": HOSTILE, "contribution": 0.1}],
                   crawl_pages=[{"url": f"https://company1.sg/{HOSTILE}", "kind": HOSTILE}],
                   crawl_reasons=[HOSTILE], crawl_domain={"value": HOSTILE, "source": HOSTILE})
    html = render_page(view([row], tenant_name=HOSTILE, error_summary=HOSTILE,
                            degradations=[{"step": "crawl", "cause": HOSTILE}]))
    tree = LexborHTMLParser(html)
    assert not tree.css("script, img")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    hrefs = [a.attributes.get("href") or "" for a in tree.css("a")]
    assert all(h.startswith("#") or h.startswith("https://acme.odoo.com/odoo/") for h in hrefs)


@pytest.mark.database
def test_the_page_from_stored_rows_keeps_the_scores_breakdown_and_order(db: Database) -> None:
    tenant = register_tenant(db)
    with db.tenant(tenant) as conn:
        conn.execute("""INSERT INTO odoo_connections (tenant_id, url, db_name, username, password_env)
                        VALUES (%s, 'https://acme.odoo.com', 'acme', 'bot', 'ODOO_PASSWORD')""", (tenant,))
    ids = [insert_company(db, company_row(n, name=f"Nimbus {n}")) for n in (1, 2)]
    run_id = create_run(db, tenant, ids, RUN_DATE)
    results = {}
    with db.tenant(tenant) as conn:
        for n, company_id in enumerate(ids, start=1):
            crawl = crawl_row() if n == 1 else None
            features = build_features(company_row(n, name=f"Nimbus {n}"), SOFTWARE_ICP, crawl,
                                      [CEO] if n == 1 else [], {})
            results[company_id] = score(features, tenant_id=tenant)
        scores_db.upsert_scores(conn, RUN_DATE, [
            scores_db.ScoreRow(cid, r.value, r.bucket, r.reasons, f"{HOSTILE} rationale", "template",
                               r.features_hash) for cid, r in results.items()])
        scores_db.record_contributions(conn, RUN_DATE, {cid: r.contributions for cid, r in results.items()})
        scores_db.mark_shortlist(conn, RUN_DATE, 2)
    save_crawl(db, tenant, run_id, ids[0], crawl_row())
    insert_contact(db, tenant, ids[0], CEO)
    insert_verification(db, tenant, CEO["email"], "risky")

    html = render_shortlist_page(db, tenant, RUN_DATE, unit_prices={}, now=NOW)

    tree = LexborHTMLParser(html)
    articles = tree.css("article.lead")
    assert [" ".join(a.css_first("h3").text().split()) for a in articles] == ["#1 Nimbus 1", "#2 Nimbus 2"]
    first, second = (" ".join(a.text().split()) for a in articles)
    assert len(articles[0].css("svg.bar")) == len(results[ids[0]].contributions) > 6
    assert "Risky: catch-all or unknown" in first and "Tan Mei" in first
    assert "Not actionable today: a website, but no address or phone number on it." in second
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "No vendor was called tonight." in html and "US$0.00" in html


def test_a_date_without_a_run_says_so() -> None:
    page = page_view(night(run_id=None, status=None, started_at=None, finished_at=None, targets=0, scored=0,
                           shortlisted=0), [], [], {}, RUN_DATE, NOW)
    html = " ".join(LexborHTMLParser(render_page(page)).body.text().split())
    assert "No run for this date" in html
    assert "No shortlisted lead has a contact yet: nothing was shortlisted for this night." in html
    assert "No vendor was called tonight." in html


@pytest.mark.database
def test_an_unknown_tenant_is_an_error_not_an_empty_page(db: Database) -> None:
    from nightly_pipeline.db.tenants import TenantNotFound

    with pytest.raises(TenantNotFound, match="tenant 999 does not exist"):
        render_shortlist_page(db, 999, RUN_DATE, unit_prices={})
