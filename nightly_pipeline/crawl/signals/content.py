"""Buying-intent signals in page content: hiring, published pricing, case studies."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from nightly_pipeline.crawl.pages import page_kind, parse_html
from nightly_pipeline.crawl.signals.html import visible_text_from_tree
from nightly_pipeline.crawl.signals.jsonld import job_posting_count, jsonld_values

# A careers page lists far fewer roles; more entries under a "jobs" heading is a mis-read.
MAX_OPEN_ROLES = 500

_CAREERS_WORDS = re.compile(
    r"\b(?:careers?|jobs?|vacanc(?:y|ies)|open (?:positions|roles)|current openings|job openings"
    r"|join (?:our|the) team|join us|work with us|we(?:'|’)?re hiring|now hiring)\b",
    re.IGNORECASE,
)
# Headings that introduce a list of roles; a bare "Careers" heading tops the whole page.
_JOB_LIST_HEADING = re.compile(
    r"\b(?:open (?:positions|roles|jobs)|current (?:openings|vacancies|positions|jobs)"
    r"|job (?:openings|listings|vacancies)|(?:available|open) (?:positions|vacancies)|vacancies"
    r"|career opportunities|we(?:'|’)?re hiring|now hiring|join (?:our|the) team)\b",
    re.IGNORECASE,
)
_PRICING_HEADING = re.compile(
    r"\b(?:pricing|prices|price list|our plans|plans (?:&|and) pricing|choose (?:a|your) plan"
    r"|packages|rates)\b",
    re.IGNORECASE,
)
_PRICE_PER_PERIOD = re.compile(
    r"(?:S\$|US\$|SGD|USD|\$|€|£)\s?\d[\d,]*(?:\.\d{1,2})?\s*(?:/|per\s+|a\s+)"
    r"(?:mo\b|month|yr\b|year|annum|user|seat|person|pax|hour|hr\b|session|license)",
    re.IGNORECASE,
)
_CASE_STUDIES_HEADING = re.compile(
    r"\b(?:case stud(?:y|ies)|success stor(?:y|ies)|our (?:clients|customers|work|portfolio)"
    r"|clients|customers|testimonials|trusted by|who we work with|portfolio)\b",
    re.IGNORECASE,
)
_PRICING_BLOCKS = 'div[class*="pricing" i], section[class*="pricing" i], table[class*="pricing" i], [id*="pricing" i]'
_CASE_STUDY_BLOCKS = (
    '[class*="case-stud" i], [id*="case-stud" i], [class*="testimonial" i], [id*="testimonial" i],'
    ' [class*="client-logo" i], [class*="customer-logo" i]'
)
_HEADINGS = "h1, h2, h3, h4, h5, h6"
_HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


@dataclass(frozen=True, slots=True)
class CareersSignals:
    has_careers: bool
    open_roles: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _heading_level(node: LexborNode) -> int | None:
    return int(node.tag[1]) if node.tag in _HEADING_TAGS else None


def _heading_texts(tree: LexborHTMLParser, selector: str = _HEADINGS) -> list[str]:
    return [" ".join(node.text().split()) for node in tree.css(selector)]


def _following_elements(node: LexborNode) -> Iterator[LexborNode]:
    sibling = node.next
    while sibling is not None:
        if sibling.is_element_node:
            yield sibling
        sibling = sibling.next


def _section_after(heading: LexborNode, level: int) -> list[LexborNode]:
    """Elements after a heading up to the next heading of the same or a higher rank.

    A heading alone in a wrapper (``<div><h2>Jobs</h2></div><ul>…``) takes the wrapper's
    following elements instead.
    """
    anchor: LexborNode | None = heading
    for _ in range(3):
        if anchor is None:
            break
        section: list[LexborNode] = []
        for element in _following_elements(anchor):
            if _starts_new_section(element, level):
                break
            section.append(element)
        if section:
            return section
        anchor = anchor.parent
    return []


def _starts_new_section(element: LexborNode, level: int) -> bool:
    own_level = _heading_level(element)
    if own_level is not None:
        return own_level <= level
    return any((_heading_level(inner) or 7) <= level for inner in element.css(_HEADINGS))


def _job_entries(section: list[LexborNode], level: int) -> int:
    subheadings = 0
    list_items = 0
    for element in section:
        for node in element.css(f"{_HEADINGS}, li"):
            node_level = _heading_level(node)
            if node_level is not None and node_level > level and node.text(strip=True):
                subheadings += 1
            # node.css() matches the node itself, so a leaf item finds exactly one "li".
            elif node.tag == "li" and len(node.css("li")) == 1 and node.text(strip=True):
                list_items += 1
    # Job cards usually carry their title as a heading and details as list items.
    return subheadings or list_items


def _listed_roles(tree: LexborHTMLParser) -> int:
    # The deepest matching heading is the most specific ("Open positions" under "Join our
    # team"); an outer one would also count the page's other sub-sections as roles.
    best_level, best_count = 0, 0
    for heading in tree.css(_HEADINGS):
        level = _heading_level(heading)
        if level is None or not _JOB_LIST_HEADING.search(heading.text()):
            continue
        count = _job_entries(_section_after(heading, level), level)
        if count and (level > best_level or (level == best_level and count > best_count)):
            best_level, best_count = level, count
    return min(best_count, MAX_OPEN_ROLES)


def careers_from_parsed(tree: LexborHTMLParser, jsonld: list[Any]) -> CareersSignals:
    open_roles = max(job_posting_count(jsonld), _listed_roles(tree))
    mentions_careers = any(_CAREERS_WORDS.search(text) for text in _heading_texts(tree, f"title, {_HEADINGS}"))
    return CareersSignals(has_careers=open_roles > 0 or mentions_careers, open_roles=open_roles)


def careers_signals(html: str) -> CareersSignals:
    """Whether the page is about careers and how many open roles it lists.

    Roles are JSON-LD ``JobPosting`` entries, or the headings / list items in the section
    under a "Open positions"-like heading, whichever is larger.
    """
    tree = parse_html(html)
    return careers_from_parsed(tree, jsonld_values(tree))


def pricing_from_parsed(url: str, tree: LexborHTMLParser, visible_text: str) -> bool:
    return (
        page_kind(url) == "pricing"
        or any(_PRICING_HEADING.search(text) for text in _heading_texts(tree, "h1, h2, h3"))
        or tree.css_first(_PRICING_BLOCKS) is not None
        or _PRICE_PER_PERIOD.search(visible_text) is not None
    )


def has_pricing(html: str, url: str) -> bool:
    """True when the page publishes prices: a pricing URL, a pricing heading or block, or a
    price per period ("S$49/month", "$15 per user")."""
    tree = parse_html(html)
    return pricing_from_parsed(url, tree, visible_text_from_tree(tree.clone()))


def case_studies_from_parsed(url: str, tree: LexborHTMLParser) -> bool:
    return (
        page_kind(url) == "case_studies"
        or any(_CASE_STUDIES_HEADING.search(text) for text in _heading_texts(tree, "h1, h2, h3"))
        or tree.css_first(_CASE_STUDY_BLOCKS) is not None
    )


def has_case_studies(html: str, url: str) -> bool:
    """True when the page shows customer proof: a case-studies/clients URL, a heading such as
    "Case studies" or "Our clients", or testimonial / client-logo blocks."""
    return case_studies_from_parsed(url, parse_html(html))
