"""The profile the crawl stage can vouch for without a language model.

Used when there is no OpenAI key, no token budget or no usable reply. Every field comes from a
deterministic signal (the ACRA registry row, schema.org JSON-LD, page metadata, page kinds,
detected technologies, keywords of the site text), and confidences stay at 0.3-0.6 so that an
LLM answer, when one arrives later, ranks above them.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nightly_pipeline.crawl.signals import SiteSignals
from nightly_pipeline.stages.extraction_profile import (
    MAX_ABOUT_CHARS,
    BusinessModel,
    CompanyProfile,
    revenue_bucket_for_employees,
)

# Stated by the company itself in structured data (JSON-LD) or the registry.
STATED_CONFIDENCE = 0.6
# The registry's code agrees with what the site is about only in general terms.
REGISTRY_INDUSTRY_CONFIDENCE = 0.5
REGISTERED_ADDRESS_CONFIDENCE = 0.5
PAGE_DESCRIPTION_CONFIDENCE = 0.5
PAGE_DERIVED_CONFIDENCE = 0.4
KEYWORD_INDUSTRY_CONFIDENCE = 0.35
# A headcount-based revenue bucket is a rule of thumb, not a fact about the company.
REVENUE_RULE_CONFIDENCE = 0.3

# Canonical industry -> phrases in site text or an SSIC description that point at it.
INDUSTRY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "logistics": ("logistics", "freight", "shipping", "warehousing", "warehouse", "courier", "supply chain",
                  "forwarding", "transport"),
    "software": ("software", "saas", "app development", "applications", "mobile apps", "web development"),
    "it services": ("it services", "information technology", "managed services", "cloud", "data processing",
                    "computer", "cybersecurity"),
    "construction": ("construction", "contractor", "renovation", "civil engineering", "building works"),
    "manufacturing": ("manufacturing", "manufacturer", "factory", "fabrication"),
    "wholesale trade": ("wholesale", "trading", "distributor", "distribution", "import", "export"),
    "retail": ("retail", "retailer", "boutique"),
    "food and beverage": ("food and beverage", "f&b", "restaurant", "cafe", "catering", "bakery"),
    "healthcare": ("healthcare", "clinic", "medical", "dental", "pharmaceutical"),
    "education": ("education", "tuition", "training", "school", "enrichment"),
    "financial services": ("financial", "fintech", "accounting", "bookkeeping", "insurance", "wealth management"),
    "real estate": ("real estate", "property"),
    "marketing and advertising": ("marketing", "advertising", "branding", "creative agency"),
    "consulting": ("consulting", "consultancy", "advisory"),
    "engineering": ("engineering",),
    "hospitality": ("hotel", "hospitality", "tourism", "travel agency"),
}
_INDUSTRY_PATTERNS = {
    industry: re.compile(r"\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b", re.IGNORECASE)
    for industry, phrases in INDUSTRY_KEYWORDS.items()
}
# Kept upper-case when an all-caps SSIC description is made readable.
_ACRONYMS = frozenset({"IT", "ICT", "F&B", "HVAC", "ACMV", "ATM", "CCTV", "LED", "LPG", "MRO", "PCB", "PR"})
_SSIC_NOISE = re.compile(r"\s*\([^)]*\)|\s*\bn\.e\.c\.?", re.IGNORECASE)

_B2B_WORDS = re.compile(r"\b(?:b2b|enterprises?|businesses|corporate clients|clients|smes?)\b", re.IGNORECASE)
_B2C_WORDS = re.compile(r"\b(?:b2c|consumers?|shop now|online shop|add to cart|shopping cart|cart|checkout)\b",
                        re.IGNORECASE)
_ECOMMERCE_CATEGORY = "e-commerce"

# Between a page title and the site name: | - : :: and the en and em dashes.
_TITLE_SEPARATOR = re.compile(r"\s+(?:[|:\u2013\u2014-]|::)\s+")
_GENERIC_OFFER_TITLE = re.compile(
    r"^(?:our\s+)?(?:products?|services?|solutions?|offerings?|capabilities|what we do)"
    r"(?:\s+(?:and|&)\s+(?:products?|services?|solutions?))?$", re.IGNORECASE)
_CORPUS_HEADER_LINE = re.compile(r"^(?:###\s|URL:\s)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_ABOUT_SENTENCES = 2
_MIN_SENTENCE_WORDS = 4


def deterministic_profile(signals: SiteSignals | None, company: Mapping[str, Any], *,
                          corpus: str | None = None) -> CompanyProfile:
    """A profile from the crawl signals and the company's registry row alone.

    ``company`` is a ``companies`` row (``ssic_description``, ``street_name``, ``postal_code``, …);
    ``corpus`` replaces ``signals.corpus`` when the text came from elsewhere (a Tavily fallback).
    """
    text = corpus if corpus is not None else (signals.corpus if signals is not None else "")
    industry, industry_confidence = _industry(company, signals, text)
    employees = _employees(signals)
    hq, hq_confidence = _headquarters(signals, company)
    products = _products(signals)
    business_model, business_model_confidence = _business_model(signals, text)
    about, about_confidence = _about(signals, text)
    return CompanyProfile(
        industry=industry,
        industry_confidence=industry_confidence,
        employees_estimate=employees,
        employees_estimate_confidence=STATED_CONFIDENCE if employees is not None else 0.0,
        revenue_bucket=revenue_bucket_for_employees(employees),
        revenue_bucket_confidence=REVENUE_RULE_CONFIDENCE if employees is not None else 0.0,
        hq=hq,
        hq_confidence=hq_confidence,
        products_services=products,
        products_services_confidence=PAGE_DERIVED_CONFIDENCE if products else 0.0,
        business_model=business_model,
        business_model_confidence=business_model_confidence,
        about=about,
        about_confidence=about_confidence,
    )


def readable_ssic(description: str) -> str:
    """``"FREIGHT TRANSPORT ARRANGEMENT (INCLUDING ...)"`` -> ``"Freight transport arrangement"``."""
    text = " ".join(_SSIC_NOISE.sub("", description).split()).strip(" ,;.")
    if text != text.upper():
        return text
    words = [word if word in _ACRONYMS else word.lower() for word in text.split()]
    sentence = " ".join(words)
    return sentence[:1].upper() + sentence[1:]


def keyword_industry(text: str) -> str | None:
    """The canonical industry whose phrases the text mentions most (earliest wins a tie)."""
    scored = []
    for industry, pattern in _INDUSTRY_PATTERNS.items():
        hits = [match.start() for match in pattern.finditer(text)]
        if hits:
            scored.append((-len(hits), hits[0], industry))
    return min(scored)[2] if scored else None


def _site_text(signals: SiteSignals | None, text: str) -> str:
    if signals is None:
        return text
    return "\n".join(part for part in (signals.meta.title, signals.meta.description, text) if part)


def _industry(company: Mapping[str, Any], signals: SiteSignals | None, text: str) -> tuple[str | None, float]:
    ssic = (company.get("ssic_description") or "").strip()
    site_industry = keyword_industry(_site_text(signals, text))
    if ssic:
        corroborated = site_industry is not None and site_industry == keyword_industry(ssic)
        return readable_ssic(ssic), STATED_CONFIDENCE if corroborated else REGISTRY_INDUSTRY_CONFIDENCE
    if site_industry is not None:
        return site_industry, KEYWORD_INDUSTRY_CONFIDENCE
    return None, 0.0


def _employees(signals: SiteSignals | None) -> int | None:
    count = signals.organization.get("numberOfEmployees") if signals is not None else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None


def _headquarters(signals: SiteSignals | None, company: Mapping[str, Any]) -> tuple[str | None, float]:
    stated = signals.organization.get("address") if signals is not None else None
    if isinstance(stated, str) and stated.strip():
        return stated.strip(), STATED_CONFIDENCE
    registered = _registered_address(company)
    return (registered, REGISTERED_ADDRESS_CONFIDENCE) if registered else (None, 0.0)


def _registered_address(company: Mapping[str, Any]) -> str | None:
    def part(key: str) -> str:
        return " ".join(str(company.get(key) or "").split())

    street = " ".join(filter(None, (part("block"), part("street_name"))))
    postal_code = part("postal_code")
    if not street and not postal_code:
        return None
    parts = [street, part("building_name"), f"Singapore {postal_code}" if postal_code else ""]
    return ", ".join(p for p in parts if p)


def _products(signals: SiteSignals | None) -> list[str]:
    """Titles of the site's product and service pages (the signals keep no in-page headings)."""
    if signals is None:
        return []
    names = []
    for page in signals.pages:
        if page.kind != "products" or not page.title:
            continue
        name = _TITLE_SEPARATOR.split(page.title.strip(), maxsplit=1)[0].strip()
        if name and not _GENERIC_OFFER_TITLE.match(name):
            names.append(name)
    return names


def _business_model(signals: SiteSignals | None, text: str) -> tuple[BusinessModel, float]:
    """B2B or B2C when the evidence leans one way; a published price list backs B2B wording."""
    b2b_words = bool(_B2B_WORDS.search(text))
    has_pricing = signals is not None and signals.has_pricing
    b2b_points = sum((signals is not None and signals.has_case_studies, b2b_words, has_pricing and b2b_words))
    ecommerce = signals is not None and any(hit.category == _ECOMMERCE_CATEGORY for hit in signals.tech)
    b2c_points = sum((ecommerce, bool(_B2C_WORDS.search(text))))
    if b2b_points == b2c_points:
        return "unknown", 0.0
    margin = abs(b2b_points - b2c_points)
    return ("B2B" if b2b_points > b2c_points else "B2C"), min(STATED_CONFIDENCE, 0.3 + 0.1 * margin)


def _about(signals: SiteSignals | None, text: str) -> tuple[str | None, float]:
    description = signals.meta.description if signals is not None else None
    if description and description.strip():
        return description.strip(), PAGE_DESCRIPTION_CONFIDENCE
    opening = first_sentences(text, _ABOUT_SENTENCES)
    return (opening, PAGE_DERIVED_CONFIDENCE) if opening else (None, 0.0)


def first_sentences(corpus: str, count: int) -> str | None:
    """The first ``count`` full sentences of the corpus prose, within the about-field limit."""
    prose = " ".join(line.strip() for line in corpus.splitlines()
                     if line.strip() and not _CORPUS_HEADER_LINE.match(line.strip()))
    chosen: list[str] = []
    for sentence in _SENTENCE_END.split(prose):
        if len(sentence.split()) < _MIN_SENTENCE_WORDS:
            continue
        if chosen and len(" ".join([*chosen, sentence])) > MAX_ABOUT_CHARS:
            break
        chosen.append(sentence.strip())
        if len(chosen) == count:
            break
    return " ".join(chosen) or None
