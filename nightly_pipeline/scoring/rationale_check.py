"""Does a model's rationale state only what the score's reasons state?

A rationale goes to salespeople as an explanation of the score, so everything it asserts must trace
to a reason. The check is lexical and errs on the side of rejecting: a number, a named technology,
a job title, an address or web link, a capitalised name, or a claim about funding, revenue or growth
that the reasons (with the company's name, score and bucket) do not contain makes the rationale
unfaithful, and the template sentence is used instead.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from nightly_pipeline.crawl.signals.tech import load_fingerprints
from nightly_pipeline.scoring.score import Score

# Software a model may name from its own knowledge, beyond what the crawl's fingerprints detect.
_KNOWN_PRODUCTS = (
    "Salesforce", "HubSpot", "SAP", "Oracle", "NetSuite", "Xero", "QuickBooks", "Odoo", "Microsoft Dynamics",
    "Microsoft 365", "Office 365", "Google Workspace", "AWS", "Amazon Web Services", "Azure", "Google Cloud",
    "Slack", "Zoom", "Jira", "Atlassian", "Workday", "ServiceNow", "Twilio", "Mailchimp", "Marketo", "Pardot",
    "Freshworks", "Freshdesk", "Zendesk", "Intercom", "Shopify", "Magento", "WooCommerce", "Lazada", "Shopee",
    "Stripe", "PayPal", "Adyen", "Kubernetes", "Docker", "Snowflake", "Databricks", "Tableau", "Power BI",
)
_TITLE_WORDS = ("ceo", "cto", "cfo", "coo", "cio", "cmo", "cpo", "cro", "vp", "founder", "co-founder", "cofounder",
                "director", "manager", "head", "chief", "president", "owner", "chairman", "chairwoman", "partner",
                "officer", "executive", "engineer")
# Claims a model adds from general knowledge; each must be in the reasons to be said.
_CLAIM_WORDS = ("funding", "funded", "raised", "investor", "investors", "series", "revenue", "revenues", "profit",
                "profitable", "turnover", "acquired", "acquisition", "award", "awards", "award-winning", "ipo",
                "listed", "expanding", "expansion", "growth", "growing", "fast-growing", "leading", "leader",
                "market", "partnership", "partnered", "clients", "customers", "employs", "employees", "staff",
                "headcount", "people", "team", "office", "offices", "headquartered", "founded", "established")
# Context every rationale may name: the registry, the tenant's profile and the buckets.
_CONTEXT_WORDS = frozenset({"singapore", "icp", "ssic", "acra", "high", "medium", "low", "lead", "score"})
_SPELLED_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "dozen": 12,
}
_NUMBER = re.compile(r"(?<![\w.])[+-]?\d+(?:[.,]\d+)*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’&.-]*[A-Za-z]|[A-Za-z]")
_EMAIL_OR_LINK = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|https?://\S+|\bwww\.\S+|\b[\w-]+\.(?:com|sg|net|org|io|co)"
                            r"(?:\.[a-z]{2})?\b", re.IGNORECASE)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n)\W*$")


@functools.lru_cache(maxsize=1)
def _technologies() -> tuple[str, ...]:
    names = {fingerprint.name for fingerprint in load_fingerprints()} | set(_KNOWN_PRODUCTS)
    # Longest first, so "Google Tag Manager" is seen before "Google".
    return tuple(sorted(names, key=lambda name: (-len(name), name)))


def _numbers(text: str) -> set[str]:
    found = set()
    for match in _NUMBER.finditer(text):
        value = match.group(0).lstrip("+-").replace(",", "")
        found.add(value.rstrip("0").rstrip(".") if "." in value else value)
    return found


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text, re.IGNORECASE) is not None


def allowed_text(company_name: str, score: Score) -> str:
    """Everything a rationale may draw on: the reasons in words, their effects, name, score, bucket."""
    parts = [company_name, score.bucket, f"{score.value:.2f}", f"{score.value:.3f}", f"{round(score.value * 100)}"]
    for reason in score.reasons:
        parts.append(str(reason.get("text") or ""))
        contribution = float(reason.get("contribution") or 0.0)
        parts += [f"{contribution:+.2f}", f"{contribution:+.3f}", f"{abs(contribution):.2f}"]
    return "\n".join(parts)


def unsupported_claims(rationale: str, company_name: str, score: Score) -> list[str]:
    """What ``rationale`` asserts that the reasons do not state (empty when it is faithful)."""
    allowed = allowed_text(company_name, score)
    allowed_numbers = _numbers(allowed)
    allowed_lower = allowed.casefold()
    claims: list[str] = []

    for match in _EMAIL_OR_LINK.finditer(rationale):
        if match.group(0).casefold() not in allowed_lower:
            claims.append("an address or web link")  # the value itself stays out of logs and run records
    for number in sorted(_numbers(_EMAIL_OR_LINK.sub(" ", rationale)) - allowed_numbers):
        claims.append(f"number {number}")
    for word, value in _SPELLED_NUMBERS.items():
        if _mentions(rationale, word) and str(value) not in allowed_numbers and not _mentions(allowed, word):
            claims.append(f"number {word}")
    for technology in _technologies():
        if _mentions(rationale, technology) and not _mentions(allowed, technology):
            claims.append(f"technology {technology}")
    for title in _TITLE_WORDS:
        if _mentions(rationale, title) and not _mentions(allowed, title):
            claims.append(f"title {title}")
    for word in _CLAIM_WORDS:
        if _mentions(rationale, word) and not _mentions(allowed, word):
            claims.append(f"claim {word!r}")
    claims += [f"name {name!r}" for name in _unknown_names(rationale, allowed)]
    return list(dict.fromkeys(claims))


def _unknown_names(rationale: str, allowed: str) -> Iterable[str]:
    """Capitalised words inside a sentence (names of people, places, products) the reasons lack."""
    for match in _WORD.finditer(rationale):
        word = match.group(0).strip(".'’-")
        if not word or not word[0].isupper() or word.casefold() in _CONTEXT_WORDS:
            continue
        if _SENTENCE_START.search(rationale[:match.start()]):
            continue
        if not _mentions(allowed, word):
            yield word
