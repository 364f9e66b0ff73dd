"""People named on a company's pages matched to the addresses it publishes, and the primary contact
that follows from them."""
from __future__ import annotations

import pytest

from nightly_pipeline.crawl.signals import merge_site_signals, page_signals
from nightly_pipeline.domain.contacts import choose_primary, contacts_from_signals
from nightly_pipeline.domain.site_people import local_part_spellings, match_people_to_emails

PREFERRED = ["CEO", "Founder", "CTO"]


@pytest.mark.parametrize("local_part", ["wei.ming", "weiming.tan", "wtan", "w.tan", "weiming_tan", "tan.weiming",
                                        "weimingt", "weiming", "wei", "tanweiming", "wmtan"])
def test_the_spellings_mail_servers_use(local_part: str) -> None:
    assert local_part in local_part_spellings("Wei Ming Tan")


def test_family_name_first_is_read_both_ways() -> None:
    spellings = local_part_spellings("Tan Wei Ming")
    assert {"weiming.tan", "wtan", "weiming"} <= spellings


def test_addresses_match_only_one_named_person_each() -> None:
    people = [{"name": "Jason Lim", "title": "CEO", "page": "/team"},
              {"name": "Jason Tan", "title": "CTO", "page": "/team"},
              {"name": "Priya Nair", "title": "Head of Sales", "page": "/team"},
              {"name": "Mark Walker", "title": "CFO", "page": "/team", "email": "finance.lead@acme.sg"}]
    emails = ["jason@acme.sg", "jlim@acme.sg", "priya.nair2@acme.sg", "pnair@acme.sg", "finance.lead@acme.sg",
              "sales@acme.sg", "kelvin.ong@acme.sg"]
    matched = match_people_to_emails(people, emails)
    assert {email: person["name"] for email, person in matched.items()} == {
        "jlim@acme.sg": "Jason Lim", "priya.nair2@acme.sg": "Priya Nair", "pnair@acme.sg": "Priya Nair",
        "finance.lead@acme.sg": "Mark Walker"}


def stored(pages: list[tuple[str, str]]) -> dict:
    signals = merge_site_signals([page_signals(url, html, {}, "acme.com.sg") for url, html in pages]).to_dict()
    signals.pop("corpus")
    signals["domain"] = {"value": "acme.com.sg", "source": "acra", "confidence": 1.0}
    return signals


TEAM_PAGES = {
    "cards": ('<div class="member"><h3>Wei Ming Tan</h3><p class="role">Founder &amp; CEO</p></div>'
              '<div class="member"><h3>Priya Nair</h3><p class="role">Sales Manager</p></div>'),
    "headings": "<h3>Wei Ming Tan</h3><p>Founder &amp; CEO</p><h3>Priya Nair</h3><p>Sales Manager</p>",
    "lines": "<ul><li>Wei Ming Tan, Founder &amp; CEO</li><li>Priya Nair, Sales Manager</li></ul>",
    "definitions": "<dl><dt>Wei Ming Tan</dt><dd>Founder &amp; CEO</dd><dt>Priya Nair</dt><dd>Sales Manager</dd></dl>",
    "json-ld": ('<script type="application/ld+json">{"@type":"Organization","employee":['
                '{"@type":"Person","name":"Wei Ming Tan","jobTitle":"Founder & CEO"},'
                '{"@type":"Person","name":"Priya Nair","jobTitle":"Sales Manager"}]}</script>'),
}


@pytest.mark.parametrize("markup", sorted(TEAM_PAGES))
def test_a_ceo_named_on_the_site_is_the_primary_contact_with_name_and_title(markup: str) -> None:
    contact_page = ('<html><body><p>Write to <a href="mailto:info@acme.com.sg">info@acme.com.sg</a>, '
                    "priya.nair@acme.com.sg or wtan@acme.com.sg</p></body></html>")
    team_page = f"<html><body><main><h1>Meet the team</h1>{TEAM_PAGES[markup]}</main></body></html>"
    signals = stored([("https://acme.com.sg/contact", contact_page), ("https://acme.com.sg/team", team_page)])

    contacts = {c.email: c for c in contacts_from_signals({"company_id": 1, "website_domain": "acme.com.sg"}, signals)}
    primary = choose_primary(contacts.values(), PREFERRED, {})

    assert primary is not None and primary.email == "wtan@acme.com.sg"
    assert (primary.full_name, primary.title, primary.seniority, primary.name_source) == (
        "Wei Ming Tan", "Founder & CEO", 6, "site_page")
    assert (contacts["priya.nair@acme.com.sg"].full_name, contacts["priya.nair@acme.com.sg"].title) == (
        "Priya Nair", "Sales Manager")
    assert contacts["info@acme.com.sg"].full_name is None
