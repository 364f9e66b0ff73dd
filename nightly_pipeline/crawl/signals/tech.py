"""Technologies a site uses, matched against the pinned ``fingerprints.json``.

Only what the crawler already has is used: response headers, Set-Cookie names, ``<meta>``
tags, script ``src`` attributes and the raw HTML. The fingerprint file follows the
enthec/webappanalyzer layout (see its ``schema`` entry) and is never updated at run time.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.crawl.pages import MAX_PARSE_CHARS, parse_html

FINGERPRINTS_RESOURCE = "fingerprints.json"
TECH_CATEGORIES = frozenset(
    {
        "analytics", "tag manager", "crm", "marketing automation", "cms", "e-commerce",
        "live chat", "payments", "js framework", "cdn/hosting",
    }
)
_EVIDENCE_CHARS = 120
_COOKIE_NAME = re.compile(r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)=(.*)")


@dataclass(frozen=True, slots=True)
class TechHit:
    """A detected technology and the first piece of evidence for it."""

    name: str
    category: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    name: str
    category: str
    headers: tuple[tuple[str, re.Pattern[str]], ...]
    meta: tuple[tuple[str, re.Pattern[str]], ...]
    script_src: tuple[re.Pattern[str], ...]
    cookies: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...]
    html: tuple[re.Pattern[str], ...]
    implies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PageEvidence:
    """What one fetched page offers to the fingerprints, gathered once."""

    headers: Mapping[str, tuple[str, ...]]
    cookies: Mapping[str, str]
    meta: Mapping[str, tuple[str, ...]]
    script_srcs: tuple[str, ...]
    html: str


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _fingerprint(name: str, spec: Mapping[str, Any]) -> Fingerprint:
    return Fingerprint(
        name=name,
        category=spec["category"],
        headers=tuple((header.lower(), _compile(p)) for header, p in spec.get("headers", {}).items()),
        meta=tuple((meta_name.lower(), _compile(p)) for meta_name, p in spec.get("meta", {}).items()),
        script_src=tuple(_compile(p) for p in spec.get("scriptSrc", [])),
        cookies=tuple(
            (re.compile(cookie, re.IGNORECASE), _compile(p)) for cookie, p in spec.get("cookies", {}).items()
        ),
        # Case-sensitive on purpose: see the "schema" note in the fingerprint file.
        html=tuple(re.compile(p) for p in spec.get("html", [])),
        implies=tuple(spec.get("implies", [])),
    )


@functools.cache
def load_fingerprints() -> tuple[Fingerprint, ...]:
    """The pinned fingerprints shipped next to this module, compiled once per process."""
    text = resources.files(__package__).joinpath(FINGERPRINTS_RESOURCE).read_text(encoding="utf-8")
    technologies = json.loads(text)["technologies"]
    return tuple(_fingerprint(name, spec) for name, spec in technologies.items())


def _header_values(headers: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    # items() keeps repeated headers apart for multi-dicts (aiohttp) and joins them for httpx.
    collected: dict[str, list[str]] = {}
    for name, value in headers.items():
        collected.setdefault(name.lower(), []).append(value)
    return {name: tuple(values) for name, values in collected.items()}


def set_cookie_pairs(set_cookie_values: Iterable[str]) -> dict[str, str]:
    """Cookie names and values from Set-Cookie headers, also when several are comma-joined."""
    pairs: dict[str, str] = {}
    for header in set_cookie_values:
        # A joined header splits on commas; pieces of an Expires date carry no "name=".
        for piece in header.split(","):
            match = _COOKIE_NAME.match(piece.split(";", 1)[0])
            if match:
                pairs.setdefault(match.group(1), match.group(2).strip())
    return pairs


def _meta_values(tree: LexborHTMLParser) -> dict[str, tuple[str, ...]]:
    collected: dict[str, list[str]] = {}
    for node in tree.css("meta[name][content]"):
        name = (node.attributes.get("name") or "").strip().lower()
        collected.setdefault(name, []).append(node.attributes.get("content") or "")
    return {name: tuple(values) for name, values in collected.items()}


def gather_evidence(html: str, tree: LexborHTMLParser, headers: Mapping[str, str]) -> PageEvidence:
    header_values = _header_values(headers)
    return PageEvidence(
        headers=header_values,
        cookies=set_cookie_pairs(header_values.get("set-cookie", ())),
        meta=_meta_values(tree),
        script_srcs=tuple(node.attributes.get("src") or "" for node in tree.css("script[src]")),
        html=html[:MAX_PARSE_CHARS],
    )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EVIDENCE_CHARS else f"{text[:_EVIDENCE_CHARS - 1]}…"


def _header_evidence(fingerprint: Fingerprint, page: PageEvidence) -> str | None:
    for header, pattern in fingerprint.headers:
        for value in page.headers.get(header, ()):
            if pattern.search(value):
                return _clip(f"header {header}: {value}")
    return None


def _meta_evidence(fingerprint: Fingerprint, page: PageEvidence) -> str | None:
    for meta_name, pattern in fingerprint.meta:
        for content in page.meta.get(meta_name, ()):
            if pattern.search(content):
                return _clip(f"meta {meta_name}: {content}")
    return None


def _script_evidence(fingerprint: Fingerprint, page: PageEvidence) -> str | None:
    for pattern in fingerprint.script_src:
        for src in page.script_srcs:
            if pattern.search(src):
                return _clip(f"script src: {src}")
    return None


def _cookie_evidence(fingerprint: Fingerprint, page: PageEvidence) -> str | None:
    for name_pattern, value_pattern in fingerprint.cookies:
        for name, value in page.cookies.items():
            if name_pattern.fullmatch(name) and value_pattern.search(value):
                return _clip(f"cookie {name}")
    return None


def _html_evidence(fingerprint: Fingerprint, page: PageEvidence) -> str | None:
    for pattern in fingerprint.html:
        match = pattern.search(page.html)
        if match:
            return _clip(f"html: {match.group(0)}")
    return None


_EVIDENCE_FINDERS = (_header_evidence, _meta_evidence, _script_evidence, _cookie_evidence, _html_evidence)


def _evidence(fingerprint: Fingerprint, page: PageEvidence) -> str | None:
    for finder in _EVIDENCE_FINDERS:
        evidence = finder(fingerprint, page)
        if evidence is not None:
            return evidence
    return None


def tech_from_evidence(page: PageEvidence) -> list[TechHit]:
    fingerprints = load_fingerprints()
    by_name = {fingerprint.name: fingerprint for fingerprint in fingerprints}
    hits: dict[str, TechHit] = {}
    for fingerprint in fingerprints:
        evidence = _evidence(fingerprint, page)
        if evidence is not None:
            hits[fingerprint.name] = TechHit(fingerprint.name, fingerprint.category, evidence)
    for hit in list(hits.values()):
        for implied in by_name[hit.name].implies:
            if implied not in hits and implied in by_name:
                hits[implied] = TechHit(implied, by_name[implied].category, f"implied by {hit.name}")
    return [hits[fingerprint.name] for fingerprint in fingerprints if fingerprint.name in hits]


def extract_tech(html: str, headers: Mapping[str, str]) -> list[TechHit]:
    """Technologies seen in the page and its response headers, in fingerprint-file order.

    ``headers`` may be any mapping (httpx and aiohttp headers included); Set-Cookie names are
    matched as cookies.
    """
    return tech_from_evidence(gather_evidence(html, parse_html(html), headers))
