"""People named on team, leadership and about pages, and the headcount a site states."""
from __future__ import annotations

import pytest

from nightly_pipeline.crawl.signals import merge_site_signals, page_signals
from nightly_pipeline.crawl.signals.people import job_title, person_name, stated_headcount
from nightly_pipeline.domain import headcount

TEAM = [("Wei Ming Tan", "Founder & CEO"), ("Priya Nair", "Chief Technology Officer"),
        ("Siti Nurhaliza binte Osman", "Head of Sales")]


def names_and_titles(url: str, html: str) -> list[tuple[str, str | None]]:
    page = page_signals(url, html, {}, "acme.com.sg")
    return [(person.name, person.title) for person in page.people]


def page(body: str) -> str:
    return f"<!DOCTYPE html><html><head><title>Our team</title></head><body><main>{body}</main></body></html>"


MARKUPS = {
    "cards": "".join(f'<div class="team-member"><h3 class="name">{n}</h3><span class="role">{t}</span></div>'
                     for n, t in TEAM),
    "heading-then-title": "".join(f"<h3>{n}</h3><p>{t}</p>" for n, t in TEAM),
    "definition-list": "<dl>" + "".join(f"<dt>{n}</dt><dd>{t}</dd>" for n, t in TEAM) + "</dl>",
    "titles-as-terms": "<dl>" + "".join(f"<dt>{t}</dt><dd>{n}</dd>" for n, t in TEAM) + "</dl>",
    "name-comma-title": "<ul>" + "".join(f"<li>{n}, {t}</li>" for n, t in TEAM) + "</ul>",
    "name-dash-title": "".join(f"<p>{n} \u2013 {t}</p>" for n, t in TEAM),
    "name-parenthesised-title": "".join(f"<p>{n} ({t})</p>" for n, t in TEAM),
    "title-colon-name": "".join(f"<p>{t}: {n}</p>" for n, t in TEAM),
    "table": "<table><tr><th>Name</th><th>Role</th></tr>" + "".join(
        f'<tr><td class="person"><strong>{n}</strong><br><em>{t}</em></td></tr>' for n, t in TEAM) + "</table>",
    "microdata": "".join(f'<div itemscope itemtype="https://schema.org/Person"><span itemprop="name">{n}</span>'
                         f'<span itemprop="jobTitle">{t}</span></div>' for n, t in TEAM),
    "json-ld-persons": '<script type="application/ld+json">[' + ",".join(
        f'{{"@context":"https://schema.org","@type":"Person","name":"{n}","jobTitle":"{t.replace("&", "and")}"}}'
        for n, t in TEAM) + "]</script>",
    "upper-case-names": "".join(f"<h4>{n.upper()}</h4><h5>{t}</h5>" for n, t in TEAM),
}


@pytest.mark.parametrize("markup", sorted(MARKUPS))
def test_team_pages_in_every_markup_give_names_and_titles(markup: str) -> None:
    found = names_and_titles("https://acme.com.sg/team", page(MARKUPS[markup]))
    expected = [(n, t.replace("&", "and") if markup == "json-ld-persons" else t) for n, t in TEAM]
    assert found == expected


def test_json_ld_organisation_founders_and_employees() -> None:
    html = page('<script type="application/ld+json">{"@context":"https://schema.org","@type":"Organization",'
                '"name":"Acme","founder":[{"name":"Ahmad Firdaus"}],"employee":{"@type":"Person",'
                '"givenName":"Hui Min","familyName":"Goh","jobTitle":"COO","email":"mailto:HuiMin.Goh@acme.com.sg"}}'
                '</script>')
    people = page_signals("https://acme.com.sg/", html, {}, "acme.com.sg").people
    assert [(p.name, p.title, p.email, p.source) for p in people] == [
        ("Ahmad Firdaus", "Founder", None, "jsonld"), ("Hui Min Goh", "COO", "huimin.goh@acme.com.sg", "jsonld")]


def test_a_card_keeps_the_address_printed_in_it() -> None:
    html = page('<div class="person"><h3>Jason Lim</h3><p class="title">Sales Director</p>'
                '<a href="mailto:jason.lim@acme.com.sg">Email Jason</a></div>'
                '<div class="person"><h3>Mei Ling Koh</h3><p class="title">Marketing Manager</p></div>')
    people = page_signals("https://acme.com.sg/about-us", html, {}, "acme.com.sg").people
    assert [(p.name, p.email) for p in people] == [("Jason Lim", "jason.lim@acme.com.sg"), ("Mei Ling Koh", None)]


@pytest.mark.parametrize("body", [
    pytest.param('<div class="card"><h3>WordPress Hosting</h3><p>Managed plans for growing teams</p></div>',
                 id="product-card"),
    pytest.param("<h2>Our Services</h2><p>Consulting Director services for SMEs</p>", id="section-heading"),
    pytest.param('<blockquote><p>Great work!</p><p>Alan Goh, CEO of Bay Foods</p></blockquote>', id="testimonial"),
    pytest.param('<div class="testimonial"><h3>Alan Goh</h3><p>Managing Director, Bay Foods</p></div>',
                 id="testimonial-card"),
    pytest.param("<h3>Managing Director</h3><p>Chief Executive Officer</p>", id="two-titles"),
    pytest.param("<h3>Contact Us</h3><p>Sales Manager on duty: 9am to 6pm</p>", id="heading-not-a-name"),
    pytest.param("<p>Founded in 2010 by two engineers.</p>", id="prose"),
])
def test_markup_that_names_nobody(body: str) -> None:
    assert names_and_titles("https://acme.com.sg/team", page(body)) == []


def test_markup_is_read_on_people_pages_only_and_structured_data_everywhere() -> None:
    lines = "<ul><li>Wei Ming Tan, Founder</li></ul>"
    assert names_and_titles("https://acme.com.sg/blog/news-2024", page(lines)) == []
    assert names_and_titles("https://acme.com.sg/leadership", page(lines)) == [("Wei Ming Tan", "Founder")]


def test_the_site_keeps_one_entry_per_person_with_its_page() -> None:
    home = page('<script type="application/ld+json">{"@type":"Person","name":"Wei Ming Tan","jobTitle":"CEO"}</script>')
    team = page('<h3>Wei Ming Tan</h3><p>Founder &amp; CEO</p><h3>Priya Nair</h3><p>CTO</p>')
    site = merge_site_signals([page_signals("https://acme.com.sg/", home, {}, "acme.com.sg"),
                               page_signals("https://acme.com.sg/team", team, {}, "acme.com.sg")])
    stored = site.to_dict()["people"]
    assert [(p["name"], p["title"], p["source"], p["page"]) for p in stored] == [
        ("Wei Ming Tan", "CEO", "jsonld", "https://acme.com.sg/"),
        ("Priya Nair", "CTO", "heading", "https://acme.com.sg/team")]


@pytest.mark.parametrize(("text", "expected"), [
    ("Mr. Jason Lim", "Jason Lim"), ("Dr Kumar Raj", "Kumar Raj"), ("Ren\u00e9e Tan", "Ren\u00e9e Tan"),
    ("Muhammad Hafiz bin Rahman", "Muhammad Hafiz bin Rahman"), ("JANE TAN", "Jane Tan"),
    ("Mary-Anne O'Neil", "Mary-Anne O'Neil"), ("J. Tan", "J. Tan"),
    ("Tan", None), ("Our Team", None), ("Acme Pte Ltd", None), ("Head of Sales", None), ("jane tan", None),
    ("Room 42 Team", None), ("jane@acme.sg", None),
])
def test_person_names(text: str, expected: str | None) -> None:
    assert person_name(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Founder & CEO", "Founder & CEO"), ("Head of Sales", "Head of Sales"), ("Senior Software Engineer",
                                                                              "Senior Software Engineer"),
    ("Managing Director, APAC", "Managing Director, APAC"), ("Singapore", None), ("Read more", None),
    ("We are hiring engineers in Singapore and across the region today.", None),
])
def test_job_titles(text: str, expected: str | None) -> None:
    assert job_title(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Founded in 2012, Acme is a logistics firm with a team of 42 people.", headcount.exact(42, "stated")),
    ("We employ over 120 staff across Asia.", headcount.at_least(120, "stated")),
    ("Our 1,200 employees serve 30 countries.", headcount.exact(1200, "stated")),
    ("a 50+ strong workforce with 50+ employees", headcount.at_least(50, "stated")),
    ("A headcount of about 35 full-time staff.", headcount.exact(35, "stated")),
    ("Serving 500 clients since 2005.", None),
    ("Trusted by 10,000 people every day.", None),
    ("Established 2015 employees first culture", None),
])
def test_stated_headcount(text: str, expected: headcount.Headcount | None) -> None:
    assert stated_headcount(text) == expected


@pytest.fixture(scope="module")
def world():
    from nightly_pipeline_sandbox.world import World

    return World.from_acra_csv(seed=7)


def test_every_team_page_of_the_sandbox_world_gives_its_people_in_every_markup(world) -> None:
    from nightly_pipeline_sandbox.world_pages import TEAM_MARKUPS

    seen: set[str] = set()
    for site in world.sites.values():
        if not site.people or "/team" not in site.pages:
            continue
        found = page_signals(f"http://{site.domain}/team", site.pages["/team"].html, {}, site.domain).people
        assert {(p.name, p.title) for p in found} == {(p.full_name, p.title) for p in site.people}, site.domain
        seen.add(site.team_markup)
    assert seen == set(TEAM_MARKUPS)


def test_the_sandbox_worlds_stated_headcounts_are_read_and_unstated_ones_are_not(world) -> None:
    forms = set()
    for site in world.sites.values():
        if "/about" not in site.pages:
            continue
        stated = stated_headcount(page_signals(f"http://{site.domain}/about", site.pages["/about"].html, {},
                                               site.domain).text)
        in_text = site.employees_published in ("both", "text")
        assert stated == (headcount.exact(site.employee_count, "stated") if in_text else None), site.domain
        forms.add(site.employees_published)
    assert forms == {"both", "text", "structured", "none"}
