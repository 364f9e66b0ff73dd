"""Records of the simulated web: one :class:`Site` per company website and the ground truth behind it.

A site is plain data; :mod:`nightly_pipeline_sandbox.world_pages` turns it into HTML. The ground truth
(:class:`SiteTruth`) is derived from the same data the pages are rendered from, so tests and benchmarks can
score extraction against exactly what the pages contain.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from nightly_pipeline_sandbox import world_pages
from nightly_pipeline_sandbox.people import Person
from nightly_pipeline_sandbox.world_industries import Industry
from nightly_pipeline_sandbox.world_pages import FOOTER, Asset, Page

__all__ = ["Asset", "BlogPost", "EmailMention", "Page", "Person", "PhoneMention", "Plan", "Site", "SiteTruth",
           "TechStack", "FOOTER"]


@dataclasses.dataclass(frozen=True)
class EmailMention:
    """One address as printed on one page, and the form it is written in (see ``world_pages.EMAIL_FORMS``)."""

    path: str
    email: str
    form: str


@dataclasses.dataclass(frozen=True)
class PhoneMention:
    path: str       # a page path, or FOOTER
    e164: str       # "+6561234567"
    form: str       # see ``world_pages.PHONE_FORMS``


@dataclasses.dataclass(frozen=True)
class TechStack:
    """Technologies a site reveals, and the markup and headers that reveal them."""

    names: frozenset[str]
    scripts: tuple[str, ...]
    stylesheets: tuple[str, ...]
    generator: str | None
    headers: tuple[tuple[str, str], ...]   # sent with every page; Set-Cookie may repeat


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    monthly_sgd: int
    features: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BlogPost:
    slug: str
    title: str
    published: str   # ISO date
    summary: str


@dataclasses.dataclass(frozen=True)
class SiteTruth:
    """What an extractor should find on a site (as a browser renders it)."""

    emails_by_page: Mapping[str, frozenset[str]]
    people: tuple[Person, ...]
    personal_emails_shown: bool
    phones: frozenset[str]
    tech: frozenset[str]
    open_roles: tuple[str, ...]
    has_careers: bool
    has_pricing: bool
    has_case_studies: bool
    employee_count: int
    industry: str
    industry_words: tuple[str, ...]
    keywords: tuple[str, ...]
    team_markup: str = "cards"             # how /team lays out names and titles (world_pages.TEAM_MARKUPS)
    employees_published: str = "both"      # where the headcount is stated (world_pages.HEADCOUNT_FORMS)

    @property
    def headcount_stated(self) -> bool:
        return self.employees_published != "none"

    @property
    def emails(self) -> frozenset[str]:
        return frozenset().union(*self.emails_by_page.values())


@dataclasses.dataclass
class Site:
    """A company website: its facts, its pre-rendered pages and its hard-case behaviour, if any."""

    domain: str
    uen: str
    entity_name: str
    display_name: str
    industry: Industry
    address: str
    founded: int
    description: str
    keywords: tuple[str, ...]
    people: tuple[Person, ...]                 # listed on /team; empty when the site has no team page
    personal_emails_shown: bool
    email_mentions: tuple[EmailMention, ...]
    phone_mentions: tuple[PhoneMention, ...]
    primary_email: str                         # also in the JSON-LD Organization
    primary_phone: str                         # E.164
    tech: TechStack
    open_roles: tuple[str, ...] | None         # None: no careers page
    plans: tuple[Plan, ...]                    # empty: no pricing page
    customers: tuple[str, ...]                 # empty: no case-studies page
    blog_posts: tuple[BlogPost, ...]
    product_count: int
    employee_count: int
    robots_txt: str
    hard_case: str | None = None
    redirect_target: str | None = None         # the other company's domain, for the off-site redirect case
    team_markup: str = "cards"                 # see world_pages.TEAM_MARKUPS
    employees_published: str = "both"          # see world_pages.HEADCOUNT_FORMS
    pages: dict[str, Page] = dataclasses.field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.domain}/"

    @property
    def encoding(self) -> str:
        return "cp1252" if self.hard_case == "cp1252" else "utf-8"

    @property
    def js_only(self) -> bool:
        return self.hard_case == "js_only"

    @property
    def broken_markup(self) -> bool:
        return self.hard_case == "broken_html"

    def page(self, path: str, query: Mapping[str, str] | None = None) -> Page | None:
        """The page at ``path`` as a browser shows it (JavaScript run), or None when there is none."""
        static = self.pages.get(path)
        if static is not None:
            return static
        return world_pages.render_dynamic_page(self, path, dict(query or {}))

    def asset(self, path: str) -> Asset | None:
        return world_pages.render_asset(self, path)

    def mentions_on(self, path: str) -> tuple[EmailMention, ...]:
        return tuple(m for m in self.email_mentions if m.path == path)

    def phones_on(self, path: str) -> tuple[PhoneMention, ...]:
        return tuple(m for m in self.phone_mentions if m.path == path)

    @property
    def truth(self) -> SiteTruth:
        by_page: dict[str, set[str]] = {}
        for mention in self.email_mentions:
            by_page.setdefault(mention.path, set()).add(mention.email)
        by_page.setdefault("/", set()).add(self.primary_email)   # the JSON-LD Organization on the home page
        return SiteTruth(
            emails_by_page={path: frozenset(emails) for path, emails in sorted(by_page.items())},
            people=self.people,
            personal_emails_shown=self.personal_emails_shown,
            phones=frozenset(m.e164 for m in self.phone_mentions) | {self.primary_phone},
            tech=self.tech.names,
            open_roles=self.open_roles or (),
            has_careers=self.open_roles is not None,
            has_pricing=bool(self.plans),
            has_case_studies=bool(self.customers),
            employee_count=self.employee_count,
            industry=self.industry.key,
            industry_words=self.industry.words,
            keywords=self.keywords,
            team_markup=self.team_markup,
            employees_published=self.employees_published,
        )
