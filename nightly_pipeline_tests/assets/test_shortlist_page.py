"""The shortlist page from a night of the real graph against the sandbox, rendered by headless
Chromium: every lead in rank order with its contact, verification badge and chart, nothing fetched."""
from __future__ import annotations

import datetime as dt
import json
import re
from importlib import resources

import pytest
from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.definitions import nightly_assets
from nightly_pipeline.cli import main
from nightly_pipeline.db import reports
from nightly_pipeline.report import build_shortlist_page, render_shortlist_page
from nightly_pipeline_tests.kit.chromium import network_listener, render
from nightly_pipeline_tests.kit.graph import materialize
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
DAY = "2026-06-01"
PRICES = {"openai": 0.0000006, "tavily": 0.008, "lusha": 0.4, "zerobounce": 0.008}
URL_ATTRIBUTES = ("href", "src", "srcset", "action", "formaction", "poster", "data", "xlink:href", "background")


def logistics_icp() -> dict:
    return json.loads((resources.files("nightly_pipeline_sandbox") / "data" / "logistics_icp.json").read_text())


def lead_articles(tree: LexborHTMLParser) -> list:
    return tree.css("article.lead")


def external_urls(tree: LexborHTMLParser) -> list[str]:
    found = [node.attributes.get(name) or "" for node in tree.css("*") for name in URL_ATTRIBUTES
             if name in node.attributes]
    found += re.findall(r"url\(\s*['\"]?([^)'\"]+)", " ".join(style.text() for style in tree.css("style")))
    found += [node.attributes.get("content") or "" for node in tree.css("meta[http-equiv=refresh]")]
    return [url for url in found if re.match(r"\s*(?:https?:)?//", url, re.IGNORECASE)]


def test_the_page_of_a_real_night_in_chromium(loaded_db, db_target, db_env, sandbox, sandbox_env, tmp_path, capsys):
    tenant = add_tenant(loaded_db, "straits", logistics_icp(), odoo_url=sandbox.odoo_url, odoo_db="demo_logistics")
    materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="12")
    run_date = dt.date.fromisoformat(DAY)
    with loaded_db.tenant(tenant) as conn:
        shortlist = reports.shortlist(conn, run_date)
    page = build_shortlist_page(loaded_db, tenant, run_date, unit_prices=PRICES)
    html_text = render_shortlist_page(loaded_db, tenant, run_date, unit_prices=PRICES)
    out = tmp_path / "shortlist.html"
    out.write_text(html_text, encoding="utf-8")

    # Every shortlisted lead, actionable ones first, each group in rank order.
    assert sorted(lead.rank for lead in page.leads) == [row["rank"] for row in shortlist]
    assert [lead.company for lead in sorted(page.leads, key=lambda lead: lead.rank)] == \
        [row["company"] for row in shortlist]
    for group in (page.actionable, page.not_actionable):
        assert [lead.rank for lead in group] == sorted(lead.rank for lead in group)
    # The night finished; a target with no website and no contact degrades it to partial.
    assert page.actionable and page.status in ("succeeded", "partial") and page.cost_per_lead is not None

    with network_listener() as listener:
        dom, screenshot = render(out, tmp_path, listener)
        assert listener.connections == 0, "the page asked the network for something"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\nscreenshot: {screenshot}")

    tree = LexborHTMLParser(dom)
    articles = lead_articles(tree)
    assert [a.attributes["id"] for a in articles] == [lead.anchor for lead in page.leads]
    for article, lead in zip(articles, page.leads):
        text = " ".join(article.text(separator=" ").split())
        assert lead.company in text
        assert len(article.css("table.breakdown svg.bar")) == len(lead.bars) > 0
        assert article.css_first("table.breakdown caption").text() == "What raised and lowered the score"
        if lead.contact is not None:
            assert lead.contact.email in text and lead.contact.badge_text in text
            if lead.contact.name:
                assert lead.contact.name in text
        else:
            assert "No address found" in text
        if not lead.actionable:
            assert f"Not actionable today: {lead.not_actionable_because}." in text
    odoo_links = [a.attributes["href"] for a in tree.css("a[href^=http]")]
    assert odoo_links and all(link.startswith(f"{sandbox.odoo_url}/odoo/") for link in odoo_links)
    assert external_urls(tree) == odoo_links
    assert not tree.css("script, link, img, iframe, object, embed, video, audio, source")
    for table in tree.css("table"):
        assert table.css_first("caption") is not None
        assert all(th.attributes.get("scope") in ("col", "row") for th in table.css("th"))

    assert main(["report", str(tenant), "--date", DAY, "--out", str(tmp_path / "cli.html")]) == 0
    assert "leads ready today" in capsys.readouterr().out
    assert (tmp_path / "cli.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_careless_models_rationales_are_replaced_and_the_night_says_so(loaded_db, db_target, sandbox,
                                                                         sandbox_env):
    tenant = add_tenant(loaded_db, "careless", logistics_icp(), odoo_url=sandbox.odoo_url, odoo_db="demo_logistics")
    sandbox.openai.unfaithful_rationales = True
    try:
        materialize(db_target, nightly_assets, tenant, DAY, SHORTLIST_DAILY_CAP="4")
    finally:
        sandbox.openai.unfaithful_rationales = False
    run_date = dt.date.fromisoformat(DAY)
    page = build_shortlist_page(loaded_db, tenant, run_date, unit_prices=PRICES)
    with loaded_db.tenant(tenant) as conn:
        stored = conn.execute("SELECT rationale, rationale_source FROM lead_scores WHERE tenant_id = %s",
                              (tenant,)).fetchall()
    assert stored and all(row["rationale_source"] == "template" for row in stored)
    assert not any("Salesforce" in row["rationale"] or "250" in row["rationale"] for row in stored)
    assert any("model rationales stated facts that are not among the reasons" in line
               and "replaced by the template sentence" in line for line in page.degradations)
    assert all(lead.rationale_source == "written from the reasons by template" for lead in page.leads)
