"""Company signals from already-fetched pages: the pure half of the crawler.

:func:`page_signals` runs every extractor on one page (parsing it once);
:func:`merge_site_signals` folds a company's pages into one :class:`SiteSignals`, whose
``to_dict()`` is what the ``crawl_corpus`` asset stores as JSONB. The single extractors are
re-exported here so callers and tests need one import.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nightly_pipeline.crawl.pages import page_kind, parse_html
from nightly_pipeline.crawl.signals.content import (
    CareersSignals,
    careers_from_parsed,
    careers_signals,
    case_studies_from_parsed,
    has_case_studies,
    has_pricing,
    pricing_from_parsed,
)
from nightly_pipeline.crawl.signals.emails import EmailHit, emails_from_parsed, extract_emails, prefer_richest
from nightly_pipeline.crawl.signals.html import (
    PageMeta,
    decode_html,
    extract_page_meta,
    extract_social_links,
    main_text,
    page_meta_from_tree,
    social_links_from_tree,
    visible_and_main_text,
)
from nightly_pipeline.crawl.signals.jsonld import (
    extract_jsonld_organization,
    jsonld_telephones,
    jsonld_values,
    organization_from_values,
)
from nightly_pipeline.crawl.signals.phones import extract_phones, phones_from_parsed, tel_link_numbers, unique
from nightly_pipeline.crawl.signals.tech import TechHit, extract_tech, gather_evidence, tech_from_evidence
from nightly_pipeline.crawl.signals.people import (
    PersonHit,
    merge_people,
    people_from_parsed,
    site_headcount,
    stated_headcount,
)
from nightly_pipeline.domain.headcount import Headcount
from nightly_pipeline.domain.web import normalize_phone

__all__ = [
    "CareersSignals",
    "EmailHit",
    "PageMeta",
    "PageSignals",
    "PageSummary",
    "PersonHit",
    "SiteSignals",
    "TechHit",
    "THIN_PAGE_CHARS",
    "careers_signals",
    "decode_html",
    "extract_emails",
    "extract_jsonld_organization",
    "extract_page_meta",
    "extract_phones",
    "extract_social_links",
    "extract_tech",
    "has_case_studies",
    "has_pricing",
    "main_text",
    "merge_site_signals",
    "page_signals",
]

# Below this much readable text a page (or a whole site) says too little to score on.
THIN_PAGE_CHARS = 250

_T = TypeVar("_T")


def _found_on_pages(signals: PageSignals | SiteSignals) -> dict[str, Any]:
    """The fields a page and a whole site share, as JSON."""
    return {
        "meta": signals.meta.to_dict(),
        "organization": dict(signals.organization),
        "emails": [hit.to_dict() for hit in signals.emails],
        "phones": list(signals.phones),
        "social": dict(signals.social),
        "tech": [hit.to_dict() for hit in signals.tech],
    }


@dataclass(frozen=True, slots=True)
class PageSignals:
    """Everything extracted from one fetched page."""

    url: str
    kind: str | None
    meta: PageMeta
    organization: dict[str, Any]
    emails: tuple[EmailHit, ...]
    phones: tuple[str, ...]
    social: dict[str, str]
    tech: tuple[TechHit, ...]
    careers: CareersSignals
    has_pricing: bool
    has_case_studies: bool
    text: str
    people: tuple[PersonHit, ...] = ()
    headcount: Headcount | None = None

    @property
    def text_chars(self) -> int:
        return len(self.text)

    @property
    def is_thin(self) -> bool:
        return self.text_chars < THIN_PAGE_CHARS

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "kind": self.kind,
            **_found_on_pages(self),
            "careers": self.careers.to_dict(),
            "has_pricing": self.has_pricing,
            "has_case_studies": self.has_case_studies,
            "text": self.text,
            "text_chars": self.text_chars,
            "is_thin": self.is_thin,
            "people": [person.to_dict() for person in self.people],
            "headcount": self.headcount.to_dict() if self.headcount else None,
        }


@dataclass(frozen=True, slots=True)
class PageSummary:
    url: str
    kind: str | None
    title: str | None
    text_chars: int

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "kind": self.kind, "title": self.title, "text_chars": self.text_chars}


@dataclass(frozen=True, slots=True)
class SiteSignals:
    """A company's pages folded into one record."""

    pages: tuple[PageSummary, ...] = ()
    meta: PageMeta = field(default_factory=lambda: PageMeta(None, None, None))
    organization: dict[str, Any] = field(default_factory=dict)
    emails: tuple[EmailHit, ...] = ()
    phones: tuple[str, ...] = ()
    social: dict[str, str] = field(default_factory=dict)
    tech: tuple[TechHit, ...] = ()
    has_careers: bool = False
    open_roles: int = 0
    has_pricing: bool = False
    has_case_studies: bool = False
    corpus: str = ""
    people: tuple[PersonHit, ...] = ()
    headcount: Headcount | None = None

    @property
    def text_chars(self) -> int:
        return sum(page.text_chars for page in self.pages)

    @property
    def is_thin(self) -> bool:
        return self.text_chars < THIN_PAGE_CHARS

    def to_dict(self) -> dict[str, Any]:
        return {
            "pages": [page.to_dict() for page in self.pages],
            **_found_on_pages(self),
            "has_careers": self.has_careers,
            "open_roles": self.open_roles,
            "has_pricing": self.has_pricing,
            "has_case_studies": self.has_case_studies,
            "corpus": self.corpus,
            "text_chars": self.text_chars,
            "is_thin": self.is_thin,
            "people": [person.to_dict() for person in self.people],
            "headcount": self.headcount.to_dict() if self.headcount else None,
        }


def page_signals(url: str, html: str, headers: Mapping[str, str], company_domain: str | None) -> PageSignals:
    """Run every extractor on one page, parsing the HTML once."""
    tree = parse_html(html)
    jsonld = jsonld_values(tree)
    visible_text, text = visible_and_main_text(tree.clone())
    contact_numbers = [*tel_link_numbers(tree), *filter(None, map(normalize_phone, jsonld_telephones(jsonld)))]
    kind = page_kind(url)
    careers = careers_from_parsed(tree, jsonld)
    if kind == "careers" and not careers.has_careers:
        careers = CareersSignals(has_careers=True, open_roles=careers.open_roles)
    return PageSignals(
        url=url,
        kind=kind,
        meta=page_meta_from_tree(tree),
        organization=organization_from_values(jsonld),
        emails=tuple(emails_from_parsed(html, tree, jsonld, company_domain)),
        phones=tuple(phones_from_parsed(contact_numbers, visible_text)),
        social=social_links_from_tree(url, tree),
        tech=tuple(tech_from_evidence(gather_evidence(html, tree, headers))),
        careers=careers,
        has_pricing=pricing_from_parsed(url, tree, visible_text),
        has_case_studies=case_studies_from_parsed(url, tree),
        text=text,
        people=tuple(people_from_parsed(url, kind, tree, jsonld)),
        headcount=stated_headcount(visible_text),
    )


def _first_non_empty(values: Iterable[_T | None]) -> _T | None:
    return next((value for value in values if value), None)


def _merge_meta(pages: Sequence[PageSignals]) -> PageMeta:
    return PageMeta(
        title=_first_non_empty(page.meta.title for page in pages),
        description=_first_non_empty(page.meta.description for page in pages),
        language=_first_non_empty(page.meta.language for page in pages),
    )


def _merge_first_wins(mappings: Iterable[Mapping[str, _T]]) -> dict[str, _T]:
    merged: dict[str, _T] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            if value and key not in merged:
                merged[key] = value
    return merged


def _merge_tech(pages: Sequence[PageSignals]) -> tuple[TechHit, ...]:
    by_name: dict[str, TechHit] = {}
    for hit in (hit for page in pages for hit in page.tech):
        by_name.setdefault(hit.name, hit)
    return tuple(by_name.values())


def _page_header(page: PageSignals) -> str:
    title = page.meta.title or page.url
    return f"### {page.kind or 'page'}: {title}\nURL: {page.url}"


def build_corpus(pages: Sequence[PageSignals], char_limit: int | None = None) -> str:
    """Main texts under a header per page; pages repeating an earlier text are left out."""
    seen_texts: set[str] = set()
    sections = []
    for page in pages:
        if not page.text or page.text in seen_texts:
            continue
        seen_texts.add(page.text)
        sections.append(f"{_page_header(page)}\n{page.text}")
    corpus = "\n\n".join(sections)
    return corpus if char_limit is None else corpus[:char_limit]


def merge_site_signals(pages: Sequence[PageSignals], *, corpus_char_limit: int | None = None) -> SiteSignals:
    """Fold a company's pages (home page first) into one :class:`SiteSignals`.

    Emails are deduplicated keeping each address's richest source; phones, social links,
    tech and organisation fields keep their first occurrence; open roles take the largest
    count; page metadata takes the first non-empty value of each field.
    """
    return SiteSignals(
        pages=tuple(PageSummary(page.url, page.kind, page.meta.title, page.text_chars) for page in pages),
        meta=_merge_meta(pages),
        organization=_merge_first_wins(page.organization for page in pages),
        emails=tuple(prefer_richest(hit for page in pages for hit in page.emails)),
        phones=tuple(unique(phone for page in pages for phone in page.phones)),
        social=_merge_first_wins(page.social for page in pages),
        tech=_merge_tech(pages),
        has_careers=any(page.careers.has_careers for page in pages),
        open_roles=max((page.careers.open_roles for page in pages), default=0),
        has_pricing=any(page.has_pricing for page in pages),
        has_case_studies=any(page.has_case_studies for page in pages),
        corpus=build_corpus(pages, corpus_char_limit),
        people=tuple(merge_people(person for page in pages for person in page.people)),
        headcount=site_headcount([(page.kind, page.headcount) for page in pages]),
    )
