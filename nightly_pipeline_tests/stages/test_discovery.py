"""Website discovery: candidate domains, page confirmation, and discovery over the simulated web."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nightly_pipeline.crawl.crawler import SiteCrawler
from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.stages.discovery import (
    NAME_CONFIDENCE,
    UEN_CONFIDENCE,
    DiscoveredWebsite,
    WebsiteDiscovery,
    candidate_domains,
    page_confirms_company,
    snippet_confirms_company,
)
from nightly_pipeline.stages.tavily_fallback import SearchHit, TavilyFallback
from nightly_pipeline_sandbox.runner import Sandbox
from nightly_pipeline_sandbox.world import World
from nightly_pipeline_tests.kit.discovery import (
    crawler_config,
    plain_sites,
    run_night,
    tavily_client,
)

LEGAL_NAME = "ACME ROBOTICS PTE. LTD."
UEN = "201512345K"
OTHER_UEN = "201887654W"
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


# -- candidate domains --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("legal_name", "expected"), [
    ("ACME ROBOTICS PTE. LTD.", ["acme-robotics.com.sg", "acmerobotics.com.sg", "acme-robotics.sg",
                                 "acmerobotics.sg", "acme-robotics.com", "acmerobotics.com"]),
    ("KATONG DATA", ["katong-data.com.sg", "katongdata.com.sg", "katong-data.sg", "katongdata.sg",
                     "katong-data.com", "katongdata.com"]),
    ("PEARL PRIVATE LIMITED", ["pearl.com.sg", "pearl.sg", "pearl.com"]),
    ("Café O\u2019Brien's Pte. Ltd.", ["cafe-obriens.com.sg", "cafeobriens.com.sg", "cafe-obriens.sg",
                                       "cafeobriens.sg", "cafe-obriens.com", "cafeobriens.com"]),
    ("F&B  SOLUTIONS (S) PTE LTD", ["f-b-solutions.com.sg", "fbsolutions.com.sg", "f-b-solutions.sg",
                                     "fbsolutions.sg", "f-b-solutions.com", "fbsolutions.com"]),
    ("GOV PTE LTD", ["gov.com.sg", "gov.com"]),
    ("狮城科技 PTE LTD", ["xn--uisu2wqjnspg.com.sg", "xn--uisu2wqjnspg.sg", "xn--uisu2wqjnspg.com"]),
    # The hyphenated form would be a 64-character label; only the joined one fits.
    (f"{'A' * 31} {'B' * 32} PTE LTD", [f"{'a' * 31}{'b' * 32}.com.sg", f"{'a' * 31}{'b' * 32}.sg",
                                        f"{'a' * 31}{'b' * 32}.com"]),
    (f"{'A' * 64} PTE LTD", []),
    ("", []),
    ("  ...  ", []),
])
def test_candidate_domains(legal_name: str, expected: list[str]) -> None:
    assert candidate_domains(legal_name) == expected


@given(st.text(max_size=80))
def test_every_candidate_is_a_valid_registrable_domain(legal_name: str) -> None:
    candidates = candidate_domains(legal_name)
    assert len(candidates) == len(set(candidates)) <= 6
    for domain in candidates:
        assert len(domain) <= 253 and domain.isascii()
        assert all(_LDH_LABEL.match(label) for label in domain.split("."))
        assert registrable_domain(domain) == domain


# -- page confirmation --------------------------------------------------------------------------------------
def page(*, title: str = "Welcome", body: str = "", footer: str = "", organization: Mapping[str, Any] | None = None,
         site_name: str | None = None) -> str:
    head = f"<title>{title}</title>"
    if organization is not None:
        head += f'<script type="application/ld+json">{json.dumps({"@type": "Organization", **organization})}</script>'
    if site_name is not None:
        head += f'<meta property="og:site_name" content="{site_name}">'
    return f"<html><head>{head}</head><body><main>{body}</main><footer>{footer}</footer></body></html>"


@pytest.mark.parametrize(("html", "confirmed", "confidence", "evidence"), [
    (page(footer=f"&copy; 2025 Acme Holdings &middot; UEN: {UEN}"), True, UEN_CONFIDENCE, "UEN"),
    (page(body=f"<p>Registered as {UEN} in Singapore.</p>", organization={"name": "Globex"}),
     True, UEN_CONFIDENCE, "UEN"),
    (page(footer=f"UEN {OTHER_UEN} and UEN {UEN}"), True, UEN_CONFIDENCE, "UEN"),
    (page(organization={"name": "Acme Robotics", "legalName": LEGAL_NAME}), True, NAME_CONFIDENCE, "organization"),
    (page(organization={"legalName": "ACME ROBOTICS (S) PTE. LTD."}), True, NAME_CONFIDENCE, "organization"),
    (page(site_name="AcmeRobotics"), True, NAME_CONFIDENCE, "organization"),
    (page(title="Acme Robotics Singapore | Automation that works"), True, NAME_CONFIDENCE, "title"),
    (page(footer="&copy; 2025 ACME ROBOTICS PTE. LTD. All rights reserved."), True, NAME_CONFIDENCE, "footer"),
    (page(body="<p>Acme Robotics is an automation firm.</p>"), True, 0.7, "page text"),
    # Look-alikes: a different UEN, or our name inside a longer one.
    (page(title="Acme Robotics", footer=f"&copy; 2025 Acme Robotics &middot; UEN: {OTHER_UEN}"),
     False, 0.0, OTHER_UEN),
    (page(footer=f"Company Reg. No.: {OTHER_UEN}", body="<p>Acme Robotics is here.</p>"), False, 0.0, OTHER_UEN),
    (page(organization={"name": "Acme Robotics Trading"}, body="<p>Acme Robotics is great.</p>"),
     False, 0.0, "Acme Robotics Trading"),
    (page(title="Acme Robotics Trading | Wholesale"), False, 0.0, "Acme Robotics Trading"),
    (page(body="<p>Acme Robotics Trading is a wholesaler.</p>"), False, 0.0, "Acme Robotics Trading"),
    (page(organization={"name": "Globex Logistics"}, body="<p>Our customer Acme Robotics is happy.</p>"),
     False, 0.0, "Globex Logistics"),
    # Unrelated pages, and the name only inside an address.
    (page(title="Globex | Logistics", body="<p>We move boxes.</p>"), False, 0.0, "neither"),
    (page(body="<p>Write to info@acme-robotics.com.sg or visit acmerobotics.com.sg.</p>"), False, 0.0, "neither"),
    (page(body="<p>Acme and robotics are words.</p>"), False, 0.0, "neither"),
])
def test_page_confirms_company(html: str, confirmed: bool, confidence: float, evidence: str) -> None:
    verdict = page_confirms_company(html, legal_name=LEGAL_NAME, uen=UEN)
    assert (verdict.confirmed, verdict.confidence) == (confirmed, confidence)
    assert evidence in verdict.evidence


def test_every_world_site_confirms_its_own_company_and_no_lookalike_confirms_the_original() -> None:
    world = World.from_acra_csv()
    for site in plain_sites(world):
        html = site.pages["/"].html
        assert page_confirms_company(html, legal_name=site.entity_name, uen=site.uen).confirmed
        without_uen = html.replace(site.uen, "")
        assert page_confirms_company(without_uen, legal_name=site.entity_name, uen=site.uen).confirmed
    for domain, uen in world.lookalikes.items():
        html = world.sites[domain].pages["/"].html
        name = world.companies[uen]["entity_name"]
        assert not page_confirms_company(html, legal_name=name, uen=uen).confirmed
        assert not page_confirms_company(html.replace(world.sites[domain].uen, ""), legal_name=name, uen=uen).confirmed


@pytest.mark.parametrize(("title", "content", "confirmed"), [
    ("Acme Robotics | Automation", "Acme Robotics is an automation firm in Singapore.", True),
    ("Acme Robotics Trading | Wholesale", "Acme Robotics Trading is a wholesaler.", False),
    ("Directory", f"ACME ROBOTICS PTE. LTD. (UEN {OTHER_UEN}) is listed here.", False),
])
def test_a_search_snippet_confirms_at_a_lower_confidence(title: str, content: str, confirmed: bool) -> None:
    hit = SearchHit(url="https://acme.sg/", domain="acme.sg", title=title, content=content, score=1.0)
    verdict = snippet_confirms_company(hit, legal_name=LEGAL_NAME, uen=UEN)
    assert verdict.confirmed is confirmed
    if confirmed:
        assert 0 < verdict.confidence < NAME_CONFIDENCE and "search result" in verdict.evidence
    else:
        assert verdict.confidence == 0.0


# -- discovery over the simulated web -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cast:
    """Registry companies without a website, by what the world holds for them."""

    with_site: list[str]             # a site at a name-derived domain
    js_only: str                     # the single-page-app hard case
    lookalike_siblings: list[str]    # a site, plus a look-alike at a sibling domain
    siteless_with_lookalike: list[str]
    siteless: str

    @property
    def everyone(self) -> list[str]:
        return [*self.with_site, self.js_only, *self.lookalike_siblings, *self.siteless_with_lookalike,
                self.siteless]


def no_website(world: World, uen: str) -> bool:
    return not world.companies[uen].get("website", "").strip()


def cast_of(world: World) -> Cast:
    with_site = [site.uen for site in plain_sites(world) if no_website(world, site.uen)][:4]
    js_only = world.sites[world.hard_cases["js_only"]].uen
    imitated = list(world.lookalikes.values())
    siteless = next(uen for uen in sorted(world.companies) if no_website(world, uen)
                    and uen not in world.domain_of and uen not in imitated)
    return Cast(with_site=with_site, js_only=js_only,
                lookalike_siblings=[uen for uen in imitated if uen in world.domain_of and no_website(world, uen)],
                siteless_with_lookalike=[uen for uen in imitated if uen not in world.domain_of],
                siteless=siteless)


@dataclasses.dataclass(frozen=True)
class Discoveries:
    found: dict[str, DiscoveredWebsite | None]
    paths_by_host: dict[str, list[str]]


def discover_all(sandbox: Sandbox, uens: list[str], fallback_args: tuple[Any, ...] | None = None
                 ) -> dict[str, DiscoveredWebsite | None]:
    async def scenario() -> list[DiscoveredWebsite | None]:
        async with SiteCrawler(crawler_config(sandbox)) as crawler:
            fallback = TavilyFallback(*fallback_args) if fallback_args is not None else None
            discovery = WebsiteDiscovery(crawler, fallback)
            return await asyncio.gather(*(discovery.discover(sandbox.world.companies[uen]) for uen in uens))

    return dict(zip(uens, asyncio.run(scenario()), strict=True))


@pytest.fixture(scope="module")
def cast(sandbox: Sandbox) -> Cast:
    return cast_of(sandbox.world)


@pytest.fixture(scope="module")
def guesses(sandbox: Sandbox, cast: Cast) -> Discoveries:
    """Name-guess discovery (no Tavily) for the whole cast at once, with the proxy's log of it."""
    sandbox.web.reset()
    found = discover_all(sandbox, cast.everyone)
    paths: dict[str, list[str]] = defaultdict(list)
    for record in sandbox.web.request_log:
        paths[record.host].append(record.path)
    return Discoveries(found, dict(paths))


def test_the_cast_covers_every_kind_of_company(cast: Cast) -> None:
    assert len(cast.with_site) == 4 and len(cast.lookalike_siblings) == 4 and len(cast.siteless_with_lookalike) == 2


def test_discovery_finds_the_worlds_site_of_companies_without_a_website(sandbox: Sandbox, cast: Cast,
                                                                        guesses: Discoveries) -> None:
    for uen in [*cast.with_site, cast.js_only, *cast.lookalike_siblings]:
        found, truth = guesses.found[uen], sandbox.world.site_for_uen(uen)
        assert found is not None and truth is not None, uen
        assert (found.domain, found.source) == (truth.domain, "name_guess")
        assert found.confidence >= NAME_CONFIDENCE and found.evidence
        assert found.candidates_tried[-1] == truth.domain
    js_only = guesses.found[cast.js_only]
    assert js_only is not None and "title" in js_only.evidence


def test_a_lookalike_at_a_guessed_domain_is_rejected(sandbox: Sandbox, cast: Cast, guesses: Discoveries) -> None:
    lookalike_of = {uen: domain for domain, uen in sandbox.world.lookalikes.items()}
    passed_over = [uen for uen in cast.lookalike_siblings
                   if (found := guesses.found[uen]) is not None and lookalike_of[uen] in found.candidates_tried]
    assert passed_over, "the world should put some look-alike before the real site"
    for uen in passed_over:
        assert guesses.paths_by_host[lookalike_of[uen]] == ["/robots.txt", "/"]
    for uen in cast.siteless_with_lookalike:
        assert guesses.found[uen] is None
        assert guesses.paths_by_host[lookalike_of[uen]] == ["/robots.txt", "/"]


def test_a_company_the_world_gives_no_site_gets_none(cast: Cast, guesses: Discoveries) -> None:
    assert guesses.found[cast.siteless] is None


def test_discovery_fetches_nothing_but_robots_and_the_home_page_of_a_guess(guesses: Discoveries) -> None:
    assert guesses.paths_by_host
    for host, paths in guesses.paths_by_host.items():
        assert set(paths) <= {"/robots.txt", "/"}, host
        assert paths.count("/") <= 1, host


def test_a_company_without_a_name_is_refused(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        async with SiteCrawler(crawler_config(sandbox)) as crawler:
            await WebsiteDiscovery(crawler, None).discover({"uen": UEN})

    with pytest.raises(ValueError, match="legal_name"):
        asyncio.run(scenario())


@pytest.mark.database
def test_a_tavily_search_finds_a_site_whose_guesses_are_unreadable_but_not_a_lookalike(db, sandbox: Sandbox,
                                                                                        cast: Cast) -> None:
    night = run_night(db, max_queries=10)
    sandbox.tavily.reset()
    unreadable = sandbox.world.sites[sandbox.world.hard_cases["robots_500"]].uen
    lookalike_only = cast.siteless_with_lookalike[0]
    with tavily_client(sandbox) as client:
        found = discover_all(sandbox, [unreadable, lookalike_only], (client, night))
    truth = sandbox.world.site_for_uen(unreadable)
    via_search = found[unreadable]
    assert via_search is not None and truth is not None
    assert (via_search.domain, via_search.source) == (truth.domain, "tavily_search")
    assert 0 < via_search.confidence < NAME_CONFIDENCE and "search result" in via_search.evidence
    assert found[lookalike_only] is None
    assert sandbox.tavily.stats()["calls"] == {"search": 2}
    assert night.budget.usage()["tavily"] == {"calls": 2, "charged": 2, "reserved": 2}

