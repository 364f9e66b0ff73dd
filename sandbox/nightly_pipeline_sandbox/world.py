"""The deterministic simulated web behind the sandbox: one website per company of the ACRA sample.

``World.from_acra_csv(seed=7)`` always builds the same sites. A row's ``website`` gives its domain; about
70% of the rows without one get a site at a name-derived domain (``"ACME ROBOTICS PTE. LTD."`` →
``acme-robotics.com.sg``), the rest have no site. On top of that the world holds look-alike sites of
other companies at sibling domains, and one site per hard case (see :data:`HARD_CASES`).

The simulated HTTP proxy (:mod:`nightly_pipeline_sandbox.web`) and the Tavily server
(:mod:`nightly_pipeline_sandbox.tavily`) both serve this world; tests and benchmarks score extraction
against ``Site.truth``.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import random
import re
from collections.abc import Iterable
from pathlib import Path

from nightly_pipeline_sandbox.vendors_common import public_suffixes
from nightly_pipeline_sandbox.world_build import CompanyFacts, SiteOptions, build_site, strip_legal_suffix
from nightly_pipeline_sandbox.world_industries import INDUSTRIES, LOOKALIKE_TRADES, industry_for
from nightly_pipeline_sandbox.world_model import (
    Asset,
    BlogPost,
    EmailMention,
    Page,
    Person,
    PhoneMention,
    Plan,
    Site,
    SiteTruth,
    TechStack,
)

__all__ = ["HARD_CASES", "HARD_CASE_PATHS", "REDIRECT_LOOP_PATHS", "Asset", "BlogPost", "EmailMention", "Page",
           "Person", "PhoneMention", "Plan", "Site", "SiteTruth", "TechStack", "World", "name_derived_slug",
           "registrable_domain", "strip_legal_suffix"]

SITE_SHARE_WITHOUT_WEBSITE = 0.7
NAME_DERIVED_SUFFIXES: tuple[tuple[str, float], ...] = (("com.sg", 0.5), ("sg", 0.25), ("com", 0.25))
LOOKALIKES_OF_SITES = 4        # a second company at a sibling domain of a real site
LOOKALIKES_OF_SITELESS = 2     # a different company at the domain a siteless company would be guessed at

# Each hard case lives on its own domain; the path is where it shows (site-wide cases show on every page).
HARD_CASE_PATHS: dict[str, str] = {
    "robots_disallow_all": "/robots.txt",
    "robots_disallow_path": "/robots.txt",     # disallows /team
    "robots_404": "/robots.txt",
    "robots_500": "/robots.txt",
    "crawl_delay": "/robots.txt",               # Crawl-delay: 2
    "hang": "/about",                           # never answers; the client has to give up
    "flaky_503": "/",                           # site-wide: first request per path 503 + Retry-After: 1
    "redirect_loop": "/about",                  # /about -> /about-us -> /about ...
    "redirect_offsite": "/",                    # 301 to another company's site
    "huge_page": "/about",                      # 30 MiB of HTML
    "gzip_bomb": "/about",                      # ~1 MiB of gzip that inflates to 1 GiB
    "pdf_as_html": "/about",                    # application/pdf where HTML is expected
    "js_only": "/",                             # site-wide: empty single-page-app shell
    "cp1252": "/",                              # site-wide: cp1252 bytes, no charset anywhere
    "broken_html": "/",                         # site-wide: unclosed tags, stray closers, nested forms
    "key_page_offsite": "/contact",             # 301 to another company's contact page
    "hostile_json_ld": "/",                     # site-wide: JSON-LD name with \u0000, 10^13 employees
}
HARD_CASES: tuple[str, ...] = tuple(HARD_CASE_PATHS)
_OFFSITE_CASES = frozenset({"redirect_offsite", "key_page_offsite"})
REDIRECT_LOOP_PATHS = ("/about", "/about-us")


# -- domains -----------------------------------------------------------------------------------------------
def registrable_domain(website: str) -> str:
    """``"https://www.pearlapps.com.sg/"`` → ``"pearlapps.com.sg"`` (empty when there is no such domain)."""
    return public_suffixes()(website.strip().lower()).top_domain_under_public_suffix


def name_derived_slug(entity_name: str) -> str:
    """``"ACME ROBOTICS PTE. LTD."`` → ``"acme-robotics"``."""
    return re.sub(r"[^a-z0-9]+", "-", strip_legal_suffix(entity_name).lower()).strip("-")


def _address(row: dict[str, str]) -> str:
    street = " ".join(part for part in (row.get("block", ""), row.get("street_name", "").title()) if part)
    building = row.get("building_name", "").title()
    return ", ".join(part for part in (street, building, f"Singapore {row.get('postal_code', '')}".strip()) if part)


def _facts(row: dict[str, str]) -> CompanyFacts:
    founded = row.get("registration_incorporation_date", "")[:4]
    return CompanyFacts(uen=row["uen"], entity_name=row["entity_name"],
                        industry=industry_for(row.get("primary_ssic_code", ""),
                                              row.get("primary_ssic_description", "")),
                        address=_address(row), founded=int(founded) if founded.isdigit() else 2015)


# -- planning ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Lookalike:
    domain: str
    imitates: str            # UEN of the registry company it can be mistaken for
    facts: CompanyFacts


class _Plan:
    """Which company gets which domain, before any page is generated."""

    def __init__(self, seed: int, rows: list[dict[str, str]]) -> None:
        self.seed = seed
        self.rows = rows
        self.domain_of: dict[str, str] = {}      # uen -> domain, registry companies only
        self.taken: set[str] = set()

    def claim(self, uen: str, domain: str) -> bool:
        if not domain or domain in self.taken:
            return False
        self.domain_of[uen] = domain
        self.taken.add(domain)
        return True

    def assign_domains(self) -> None:
        for row in self.rows:
            if row.get("website", "").strip():
                self.claim(row["uen"], registrable_domain(row["website"]))
        for row in self.rows:
            if row.get("website", "").strip():
                continue
            rng = random.Random(f"has-site:{self.seed}:{row['uen']}")
            if rng.random() >= SITE_SHARE_WITHOUT_WEBSITE:
                continue
            slug = name_derived_slug(row["entity_name"])
            suffixes = [suffix for suffix, _ in NAME_DERIVED_SUFFIXES]
            first = rng.choices(suffixes, weights=[w for _, w in NAME_DERIVED_SUFFIXES])[0]
            for suffix in [first] + [s for s in suffixes if s != first]:
                if self.claim(row["uen"], f"{slug}.{suffix}"):
                    break

    def lookalikes(self, known_uens: set[str]) -> list[_Lookalike]:
        rng = random.Random(f"lookalikes:{self.seed}")
        rows = {row["uen"]: row for row in self.rows}
        with_site = [uen for uen in rows if uen in self.domain_of and self._free_sibling(self.domain_of[uen])]
        siteless = [uen for uen in rows if uen not in self.domain_of and not rows[uen].get("website", "").strip()
                    and self._guessed_domain(rows[uen]) not in self.taken]
        placed = []
        for uen in rng.sample(with_site, LOOKALIKES_OF_SITES):
            sibling = self._free_sibling(self.domain_of[uen])
            if sibling is not None:
                placed.append(self._place_lookalike(rng, rows[uen], sibling, known_uens))
        for uen in rng.sample(siteless, LOOKALIKES_OF_SITELESS):
            if self._guessed_domain(rows[uen]) not in self.taken:
                placed.append(self._place_lookalike(rng, rows[uen], self._guessed_domain(rows[uen]), known_uens))
        return placed

    def _place_lookalike(self, rng: random.Random, original: dict[str, str], domain: str,
                         known_uens: set[str]) -> _Lookalike:
        self.taken.add(domain)
        return _Lookalike(domain, original["uen"], self._lookalike_facts(rng, original, known_uens))

    @staticmethod
    def _guessed_domain(row: dict[str, str]) -> str:
        return f"{name_derived_slug(row['entity_name'])}.com.sg"

    def _free_sibling(self, domain: str) -> str | None:
        parts = public_suffixes()(domain)
        for suffix, _ in NAME_DERIVED_SUFFIXES:
            candidate = f"{parts.domain}.{suffix}"
            if suffix != parts.suffix and candidate not in self.taken:
                return candidate
        return None

    @staticmethod
    def _lookalike_facts(rng: random.Random, original: dict[str, str], known_uens: set[str]) -> CompanyFacts:
        trade, industry_key = rng.choice(LOOKALIKE_TRADES)
        core = strip_legal_suffix(original["entity_name"])
        founded = rng.randint(2005, 2022)
        uen = _fresh_uen(rng, founded, known_uens)
        street = rng.choice(("Ubi Avenue 3", "Jalan Besar", "Tampines Street 92", "Woodlands Loop", "Geylang Road"))
        return CompanyFacts(uen=uen, entity_name=f"{core} {trade} PTE. LTD.", industry=INDUSTRIES[industry_key],
                            address=f"{rng.randint(1, 300)} {street}, Singapore {rng.randrange(10**5, 10**6)}",
                            founded=founded)

    def hard_case_owners(self, excluded: set[str]) -> dict[str, str]:
        """{hard case: uen}; each case on a different ordinary registry site."""
        rng = random.Random(f"hard-cases:{self.seed}")
        candidates = [uen for uen in self.domain_of if uen not in excluded]
        return dict(zip(HARD_CASES, rng.sample(candidates, len(HARD_CASES)), strict=True))


def _fresh_uen(rng: random.Random, year: int, known: set[str]) -> str:
    """A local-company UEN (year, five digits, check letter) that no registry row uses."""
    while True:
        uen = f"{year}{rng.randrange(10**4, 10**5):05d}{rng.choice('ACDEGHKMNRWZ')}"
        if uen not in known:
            known.add(uen)
            return uen


# -- the world ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class World:
    seed: int
    companies: dict[str, dict[str, str]]      # uen -> ACRA row
    sites: dict[str, Site]                     # domain -> site (registry companies and look-alikes)
    hard_cases: dict[str, str]                 # hard case -> domain
    lookalikes: dict[str, str]                 # look-alike domain -> UEN of the company it resembles
    domain_of: dict[str, str]                  # uen -> domain, for registry companies that have a site

    @classmethod
    def from_acra_csv(cls, path: str | Path | None = None, seed: int = 7) -> World:
        if path is None:
            source = importlib.resources.files("nightly_pipeline") / "data" / "acra_sample.csv"
            with source.open(encoding="utf-8", newline="") as handle:
                return cls.from_rows(csv.DictReader(handle), seed=seed)
        with Path(path).open(encoding="utf-8", newline="") as handle:
            return cls.from_rows(csv.DictReader(handle), seed=seed)

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, str]], seed: int = 7) -> World:
        table = [dict(row) for row in rows]
        companies = {row["uen"]: row for row in table}
        plan = _Plan(seed, table)
        plan.assign_domains()
        lookalikes = plan.lookalikes(set(companies))
        resembled = {lookalike.imitates for lookalike in lookalikes}
        owners = plan.hard_case_owners(resembled)
        case_of = {uen: case for case, uen in owners.items()}
        redirect_target = next(plan.domain_of[uen] for uen in plan.domain_of
                               if uen not in case_of and uen not in resembled)

        sites: dict[str, Site] = {}
        for index, (uen, domain) in enumerate(plan.domain_of.items()):
            case = case_of.get(uen)
            options = SiteOptions(hard_case=case, force_team_page=case == "robots_disallow_path",
                                  redirect_target=redirect_target if case in _OFFSITE_CASES else None)
            sites[domain] = build_site(_facts(companies[uen]), domain, seed=seed, index=index, options=options)
        for offset, lookalike in enumerate(lookalikes, start=len(sites)):
            sites[lookalike.domain] = build_site(lookalike.facts, lookalike.domain, seed=seed, index=offset)
        return cls(seed=seed, companies=companies, sites=sites,
                   hard_cases={case: plan.domain_of[uen] for case, uen in owners.items()},
                   lookalikes={lookalike.domain: lookalike.imitates for lookalike in lookalikes},
                   domain_of=dict(plan.domain_of))

    def site_for_uen(self, uen: str) -> Site | None:
        domain = self.domain_of.get(uen)
        return self.sites[domain] if domain else None

    def site_at(self, host: str) -> Site | None:
        """The site serving ``host`` (``www.`` and letter case ignored), or None: the name does not resolve."""
        host = host.strip().lower().rstrip(".")
        site = self.sites.get(host)
        if site is None and host.startswith("www."):
            site = self.sites.get(host[4:])
        return site
