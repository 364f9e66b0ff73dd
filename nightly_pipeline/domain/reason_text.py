"""The reasons behind a lead score, written for the people who read them.

Every applicable feature gets one short phrase that states the fact behind it in plain words
("no tech stack seen on the site", "42 employees stated on the site, inside the ICP's 10–500"),
never a raw value such as ``[]`` or ``False``. Whether the fact raised or lowered the score is
told by the reason's contribution, so the same phrase reads right after "on the strength of" and
after "held back by". The template rationale, the model's prompt, the shortlist page and the CRM
notes all use these phrases, so a salesperson reads the same words everywhere.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from nightly_pipeline.domain.headcount import Headcount
from nightly_pipeline.domain.icp import Icp

# Crawl outcomes in words (company_enrichment_runs.outcome and the crawler's own outcomes).
CRAWL_OUTCOME_WORDS: Mapping[str, str] = {
    "ok": "crawled", "crawled": "crawled", "thin": "crawled, but its pages say little",
    "fallback": "read through a search engine's copy", "no_website": "no website found",
    "blocked": "blocked the crawler", "robots_disallowed": "disallows crawlers in robots.txt",
    "blocked_robots": "disallows crawlers in robots.txt",
    "unreachable": "could not be reached", "error": "could not be crawled", "timeout": "timed out",
    "not_html": "serves no readable pages", "too_large": "pages too large to read",
    "offsite_redirect": "redirects to another company's site", "skipped": "not crawled",
}
# Enrichment steps that can fall back (discovery, crawl, fallback, extraction), as scoring counts them.
ENRICHMENT_STEPS = 4
_KEY_PAGE_NAMES = {"about": "about", "contact": "contact", "products": "products", "team": "team"}
_INDUSTRY_CODE = re.compile(r"^SSIC (?P<code>\S+) matches (?P<wanted>\S+)$")
_INDUSTRY_NAME = re.compile(r"^industry (?P<industry>.+)$")
_INDUSTRY_OUTSIDE = re.compile(r"^SSIC (?P<code>\S+) outside the ICP$")
_YEAR = re.compile(r"(\d{4})")
_DEGRADED = re.compile(r"^(\d+) degraded stages?$")
_CONFIDENCE = re.compile(r"mean confidence ([0-9.]+)")
_EMAIL_EXPLANATION = re.compile(r"^(?P<kind>personal|junior|role) address, (?P<policy>\w+)$")
_POLICY_WORDS = {"deliverable": "verified deliverable", "risky": "risky (catch-all or unknown)",
                 "unverified": "not verified yet", "suppressed": "suppressed (undeliverable)"}


def join_words(items: Sequence[str], conjunction: str = "and") -> str:
    items = [item for item in items if item]
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def join_phrases(phrases: Sequence[str]) -> str:
    """Phrases in one list; semicolons between them when a phrase has commas of its own."""
    phrases = [phrase for phrase in phrases if phrase]
    if not any("," in phrase for phrase in phrases):
        return join_words(phrases)
    if len(phrases) <= 1:
        return "".join(phrases)
    return "; ".join(phrases[:-1]) + "; and " + phrases[-1]


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{low:,}\u2013{high:,}"
    if low is not None:
        return f"{low:,} or more"
    if high is not None:
        return f"up to {high:,}"
    return "any"


def _year_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{low}\u2013{high}"
    if low is not None:
        return f"{low} or later"
    return f"{high} or earlier" if high is not None else "any year"


def reason_details(signals: Mapping[str, Any], headcount: Headcount) -> dict[str, Any]:
    """The facts beyond ``LeadFeatures.raw`` that the phrases need, taken from the stored signals."""
    crawl = signals.get("crawl") or {}
    return {
        "tech_seen": sorted({str(hit.get("name")) for hit in signals.get("tech") or [] if hit.get("name")}),
        "open_roles": int(signals.get("open_roles") or 0),
        "has_careers": bool(signals.get("has_careers")),
        "pages_fetched": int(crawl.get("pages_fetched") or 0),
        "headcount": headcount.to_dict(),
    }


def feature_phrase(name: str, value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    """The plain-words fact behind one feature's value."""
    writer = _WRITERS.get(name)
    return writer(value, raw, icp, details) if writer is not None else name.replace("_", " ")


def _industry(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    text = str(raw or "")
    if match := _INDUSTRY_CODE.match(text):
        code, wanted = match["code"], match["wanted"]
        return (f"industry code {code}, one of the ICP's codes" if code == wanted
                else f"industry code {code}, within the ICP's {wanted} codes")
    if match := _INDUSTRY_NAME.match(text):
        return f"{match['industry']} industry, as the ICP asks"
    if match := _INDUSTRY_OUTSIDE.match(text):
        code = match["code"]
        return "no industry code in the registry" if code == "unknown" else f"industry code {code}, outside the ICP"
    return "industry outside the ICP"


def _age(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    match = _YEAR.search(str(raw or ""))
    if match is None:
        return "incorporation year unknown"
    year = int(match.group(1))
    years = icp.incorporation_year
    wanted = _year_range(years.min if years else None, years.max if years else None)
    if years is not None and years.min is not None and year < years.min:
        return f"incorporated in {year}, before the ICP's {wanted}"
    if years is not None and years.max is not None and year > years.max:
        return f"incorporated in {year}, after the ICP's {wanted}"
    return f"incorporated in {year}, inside the ICP's {wanted}"


def _employees(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    headcount = Headcount.from_dict(details.get("headcount"))
    if not headcount.known:
        return "headcount not stated anywhere we looked"
    wanted = icp.employee_range
    low, high = (wanted.min, wanted.max) if wanted else (None, None)
    span = _range(low, high)
    count = headcount.representative() or 0.0
    where = ("inside" if (low is None or count >= low) and (high is None or count <= high)
             else "below" if low is not None and count < low else "above")
    if headcount.source == "inferred":
        return f"an estimated {headcount.label} employees (inferred, so it counts half), {where} the ICP's {span}"
    amount = headcount.label if headcount.exact is not None else f"{headcount.label}"
    return f"{amount} employees {headcount.source_words}, {where} the ICP's {span}"


def _live(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    status = str(raw or "").strip()
    if not status or status == "unknown":
        return "registry status unknown"
    if value:
        return f"registry status {status}"
    return f"registry status {status}, " + ("not one the ICP accepts" if icp.entity_status else "not a live company")


def _keywords(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    found = [str(word) for word in raw or []] if isinstance(raw, list) else []
    wanted = join_words(list(icp.keywords), "or")
    if found and value >= 0.5:
        return f"the ICP's keywords {join_words(found)} on the site"
    if found:
        return f"only {join_words(found)} of the ICP's keywords ({join_words(list(icp.keywords))}) on the site"
    return f"no mention of the ICP's keywords ({wanted}) on the site"


def _reachable(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    outcome = str(raw or "")
    if value:
        pages = int(details.get("pages_fetched") or 0)
        return f"website crawled ({pages} page{'s' if pages != 1 else ''} read)" if pages else "website crawled"
    if outcome in ("", "no website crawled", "no_website"):
        return "no website to crawl"
    return f"website {CRAWL_OUTCOME_WORDS.get(outcome, 'could not be crawled')}"


def _key_pages(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    present = [_KEY_PAGE_NAMES.get(str(kind), str(kind)) for kind in raw or []] if isinstance(raw, list) else []
    missing = [name for kind, name in _KEY_PAGE_NAMES.items() if kind not in (raw or [])]
    if not present:
        return "no about, contact, products or team page"
    if not missing:
        return "about, contact, products and team pages"
    return f"{join_words(present)} page{'s' if len(present) > 1 else ''}, but no {join_words(missing, 'or')} page"


def _pricing(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    return "a published pricing page" if value else "no pricing page"


def _case_studies(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    return "case studies or customer stories on the site" if value else "no case studies page"


def _hiring(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    roles = int(details.get("open_roles") or 0)
    if roles:
        return f"{roles} open role{'s' if roles != 1 else ''} on the careers page"
    if details.get("has_careers"):
        return "a careers page, with no open roles listed"
    return "no careers page or open roles"


def _tech(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    matched = [str(name) for name in raw or []] if isinstance(raw, list) else []
    seen = [str(name) for name in details.get("tech_seen") or []]
    if matched:
        return f"{join_words(matched)} on the site, named in the ICP's keywords"
    if not seen:
        return "no tech stack seen on the site"
    shown = seen[:4] + (["others"] if len(seen) > 4 else [])
    return f"site technologies ({join_words(shown)}) that match none of the ICP's keywords"


def _decision_maker(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    match = _EMAIL_EXPLANATION.match(str(raw or ""))
    if match is None:
        return "no email address found"
    policy = _POLICY_WORDS.get(match["policy"], match["policy"])
    kind = match["kind"]
    if kind == "role":
        return f"only a shared mailbox such as info@, {policy}"
    if kind == "junior":
        return f"a personal address of someone junior, {policy}"
    return f"a decision-maker's personal address, {policy}"


def _title(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    if value:
        return f"a contact titled {raw}, one of the ICP's buyer titles"
    return f"no contact titled {join_words(list(icp.preferred_titles), 'or')}"


def _phone(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    if raw == "contact phone":
        return "a direct phone number for a contact"
    if raw == "website phone":
        return "a phone number on the website"
    return "no phone number found"


def _stages(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    match = _DEGRADED.match(str(raw or ""))
    if match is None:
        return "the company could not be enriched tonight"
    degraded = min(int(match.group(1)), ENRICHMENT_STEPS)
    if degraded == 0:
        return "every enrichment step completed"
    # Worded as what completed, so it reads right whether it raised or lowered the score.
    return f"{ENRICHMENT_STEPS - degraded} of {ENRICHMENT_STEPS} enrichment steps completed in full"


def _confidence(value: float | bool, raw: Any, icp: Icp, details: Mapping[str, Any]) -> str:
    match = _CONFIDENCE.search(str(raw or ""))
    if match is None:
        return "no company profile could be read from the site"
    return f"company profile read with {round(float(match.group(1)) * 100)}% confidence"


_WRITERS = {
    "industry_match": _industry, "company_age_fit": _age, "employee_fit": _employees, "live_status": _live,
    "keyword_match": _keywords, "website_reachable": _reachable, "key_pages": _key_pages,
    "pricing_page": _pricing, "case_studies": _case_studies, "hiring": _hiring, "tech_match": _tech,
    "decision_maker_email": _decision_maker, "preferred_title": _title, "phone": _phone,
    "stages_complete": _stages, "extraction_confidence": _confidence,
}


def effect_words(contribution: float) -> str:
    """``+0.150`` → "raises the score by 0.15"; for people, not for parsing."""
    amount = f"{abs(contribution):.2f}"
    if contribution > 0:
        return f"raises the score by {amount}"
    if contribution < 0:
        return f"lowers the score by {amount}"
    return "no effect"


# When a feature's phrase was not recorded (features stored before phrases existed, or built by
# hand): a phrase for each side that is still true whatever the exact value was.
_FALLBACK_PHRASES: Mapping[str, tuple[str, str]] = {
    "industry_match": ("an industry in the ICP", "an industry outside the ICP"),
    "company_age_fit": ("a company age inside the ICP's years", "a company age outside the ICP's years"),
    "employee_fit": ("a headcount inside the ICP's range", "a headcount outside the ICP's range, or unknown"),
    "live_status": ("a live registry status", "a registry status that is not live"),
    "keyword_match": ("the ICP's keywords on the site", "few or none of the ICP's keywords on the site"),
    "website_reachable": ("a website that could be crawled", "no website that could be crawled"),
    "key_pages": ("most key website pages", "few key website pages"),
    "pricing_page": ("a published pricing page", "no pricing page"),
    "case_studies": ("case studies or customer stories on the site", "no case studies page"),
    "hiring": ("signs of hiring", "no signs of hiring"),
    "tech_match": ("technology named in the ICP's keywords", "no technology named in the ICP's keywords"),
    "decision_maker_email": ("a decision-maker's address", "no good decision-maker address"),
    "preferred_title": ("a contact with one of the ICP's buyer titles", "no contact with a buyer title"),
    "phone": ("a phone number", "no phone number found"),
    "stages_complete": ("every enrichment step completed", "enrichment steps that fell back or failed"),
    "extraction_confidence": ("a company profile read with confidence", "a company profile read with low confidence"),
}


def fallback_phrase(name: str, value: float) -> str:
    strong, weak = _FALLBACK_PHRASES.get(name, (name.replace("_", " "), f"weak {name.replace('_', ' ')}"))
    return strong if value >= 0.5 else weak
