"""Explainable lead scores: features of one company for one tenant, a weighted score in [0, 1],
one bucket function, and the reasons behind every score.

Everything here is pure. A feature is a number in [0, 1] or a bool; ``None`` means the tenant's ICP
does not ask for it (no employee range, no keywords …), and such a feature drops out of the score
with its weight shared among the rest, so a sparse ICP can still reach the top bucket. A feature the
ICP asks for but the data does not show (no headcount found) counts as 0: missing, not neutral.

The score is ``sum(w_i * f_i) / sum(w_i)`` over the applicable features, so it is non-decreasing in
every feature and needs no calibration step; there is one scale (0..1) and one bucket function
(the earlier system re-bucketed a 0..100 score with 0..1 thresholds).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nightly_pipeline.domain import headcount as headcount_domain
from nightly_pipeline.domain.headcount import Headcount
from nightly_pipeline.domain.icp import Icp
from nightly_pipeline.domain.reason_text import fallback_phrase, feature_phrase, reason_details

Bucket = Literal["High", "Medium", "Low"]
# Lowest first, so a bucket's index says how good it is.
BUCKET_ORDER: tuple[Bucket, ...] = ("Low", "Medium", "High")
HIGH_THRESHOLD = 0.66
MEDIUM_THRESHOLD = 0.33
SCORE_DIGITS = 5  # lead_scores.score is numeric(6, 5)
TOP_REASONS = 3

# Default weights by group: ICP fit 0.45, web signals 0.25, contactability 0.22, data quality 0.08.
# A tenant overrides any of them in its ICP (``score_weights``); weights need not sum to 1 there,
# since the score divides by the sum of the weights that apply.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({
    # ICP fit: does the company look like the tenant's customers?
    "industry_match": 0.15,        # SSIC code or industry against the ICP's
    "company_age_fit": 0.05,       # incorporation year within the ICP's years
    "employee_fit": 0.08,          # headcount within the ICP's employee range
    "live_status": 0.05,           # registry status is live (or one the ICP names)
    "keyword_match": 0.12,         # the ICP's keywords in what the site says
    # Web signals: is there a business worth talking to, and is it moving?
    "website_reachable": 0.05,     # our crawl got the site
    "key_pages": 0.04,             # about, contact, products, team pages present
    "pricing_page": 0.03,
    "case_studies": 0.04,
    "hiring": 0.04,                # careers page, open roles
    "tech_match": 0.05,            # detected technologies named in the ICP's keywords
    # Contactability: can sales reach a buyer?
    "decision_maker_email": 0.12,  # a personal address, by its verification policy
    "preferred_title": 0.06,       # a contact with one of the ICP's buyer titles
    "phone": 0.04,
    # Data quality: how much to trust the rest.
    "stages_complete": 0.04,       # enrichment stages that did not degrade
    "extraction_confidence": 0.04,  # mean confidence of the extracted profile's fields
})
FEATURE_NAMES: tuple[str, ...] = tuple(DEFAULT_WEIGHTS)
FEATURE_LABELS: Mapping[str, str] = MappingProxyType({
    "industry_match": "industry match", "company_age_fit": "company age", "employee_fit": "company size",
    "live_status": "live registry status", "keyword_match": "ICP keywords on the website",
    "website_reachable": "reachable website", "key_pages": "key website pages", "pricing_page": "a pricing page",
    "case_studies": "case studies", "hiring": "hiring activity", "tech_match": "matching technology",
    "decision_maker_email": "a decision-maker email", "preferred_title": "a contact with a buyer title",
    "phone": "a phone number", "stages_complete": "complete enrichment",
    "extraction_confidence": "confident profile extraction",
})

KEY_PAGE_KINDS = ("about", "contact", "products", "team")
# Enough matched keywords for full marks: a site rarely uses every word of a long ICP list.
KEYWORDS_FOR_FULL_MATCH = 3
# Open roles for full hiring marks; a careers page alone earns half.
OPEN_ROLES_FOR_FULL_HIRING = 5
# Years outside the ICP's incorporation range at which the age fit reaches 0.
AGE_FIT_TOLERANCE_YEARS = 5
# Enrichment stages that can degrade (discovery, crawl, fallback, extraction).
ENRICHMENT_STAGES = 4
# ZeroBounce policy of a decision-maker's address → how reachable it makes them. An unverified
# address is worth less than a risky (catch-all) one, which at least has a live mail server.
EMAIL_POLICY_VALUE: Mapping[str | None, float] = MappingProxyType(
    {"deliverable": 1.0, "risky": 0.5, None: 0.3, "suppressed": 0.0})
# A role address (info@, sales@) reaches a company, not a buyer; a person known to be junior (a
# seniority of 1-3 on the contacts' 0-6 scale, 0 unknown) reaches someone who can refer us upwards.
ROLE_ADDRESS_FACTOR = 0.25
JUNIOR_ADDRESS_FACTOR = 0.6
DECISION_MAKER_SENIORITY = 4  # director and above
# A headcount a model inferred (a size band) counts for half of one the company states.
INFERRED_HEADCOUNT_FACTOR = 0.5
PROFILE_CONFIDENCE_FIELDS = ("industry_confidence", "employees_estimate_confidence", "revenue_bucket_confidence",
                             "hq_confidence", "products_services_confidence", "business_model_confidence",
                             "about_confidence")

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ScoringError(ValueError):
    """A scoring configuration that cannot work (unknown weight name, negative weight …)."""


class LeadFeatures(BaseModel):
    """One company's features for one tenant; ``raw`` holds what each value was computed from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uen: str
    company_name: str
    industry_match: Fraction | None
    company_age_fit: Fraction | None
    employee_fit: Fraction | None
    live_status: bool
    keyword_match: Fraction | None
    website_reachable: bool
    key_pages: Fraction
    pricing_page: bool
    case_studies: bool
    hiring: Fraction
    tech_match: Fraction | None
    decision_maker_email: Fraction
    preferred_title: bool | None
    phone: bool
    stages_complete: Fraction
    extraction_confidence: Fraction
    raw: dict[str, str | int | float | bool | list[str] | None] = Field(default_factory=dict)
    # Each applicable feature's fact in plain words (see ``domain.reason_text``).
    phrases: dict[str, str] = Field(default_factory=dict)

    def values(self) -> dict[str, float | None]:
        """Every feature as a number in [0, 1] (bools as 0/1), ``None`` where it does not apply."""
        result: dict[str, float | None] = {}
        for name in FEATURE_NAMES:
            value = getattr(self, name)
            result[name] = None if value is None else float(value)
        return result

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


@dataclasses.dataclass(frozen=True)
class Score:
    value: float
    bucket: Bucket
    # Strengths first (positive contributions, points earned), then weaknesses (negative: points
    # left on the table by a missing or weak feature); each {feature, value, contribution}.
    reasons: tuple[dict[str, Any], ...]
    features_hash: str
    # Every applicable feature's signed share of the score, largest gain first: {feature, text, contribution}.
    contributions: tuple[dict[str, Any], ...] = ()

    @property
    def strengths(self) -> list[dict[str, Any]]:
        return [r for r in self.reasons if r["contribution"] > 0]

    @property
    def weaknesses(self) -> list[dict[str, Any]]:
        return [r for r in self.reasons if r["contribution"] < 0]


# -- buckets and weights ---------------------------------------------------------------------------
def bucket_of(value: float, high: float = HIGH_THRESHOLD, medium: float = MEDIUM_THRESHOLD) -> Bucket:
    """The bucket of a score on the one 0..1 scale: High ≥ ``high``, Medium ≥ ``medium``, else Low."""
    if not 0.0 <= medium <= high <= 1.0:
        raise ScoringError(f"bucket thresholds must satisfy 0 <= medium <= high <= 1, got {medium} and {high}")
    if not 0.0 <= value <= 1.0:
        raise ScoringError(f"a score is in [0, 1], got {value}")
    if value >= high:
        return "High"
    return "Medium" if value >= medium else "Low"


def buckets_at_or_above(minimum: str) -> tuple[Bucket, ...]:
    """``"Medium"`` → ``("Medium", "High")``."""
    if minimum not in BUCKET_ORDER:
        raise ScoringError(f"unknown bucket {minimum!r}; expected one of {', '.join(BUCKET_ORDER)}")
    return BUCKET_ORDER[BUCKET_ORDER.index(minimum):]


def resolve_weights(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The default weights with a tenant's overrides applied; errors name the offending key."""
    weights = dict(DEFAULT_WEIGHTS)
    for name, weight in (overrides or {}).items():
        if name not in DEFAULT_WEIGHTS:
            raise ScoringError(f"score_weights: unknown feature {name!r}; known: {', '.join(FEATURE_NAMES)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise ScoringError(f"score_weights: {name!r} must be a number >= 0, got {weight!r}")
        weights[name] = float(weight)
    if sum(weights.values()) <= 0:
        raise ScoringError("score_weights: at least one weight must be greater than 0")
    return weights


# -- scoring ---------------------------------------------------------------------------------------
def score(features: LeadFeatures, weights: Mapping[str, float] | None = None, *, tenant_id: int,
          high: float = HIGH_THRESHOLD, medium: float = MEDIUM_THRESHOLD) -> Score:
    """Score ``features`` with ``weights`` (defaults plus overrides, see :func:`resolve_weights`)."""
    resolved = resolve_weights(weights)
    applicable = {name: value for name, value in features.values().items()
                  if value is not None and resolved[name] > 0}
    total_weight = sum(resolved[name] for name in applicable)
    shares = {name: resolved[name] / total_weight for name in applicable} if total_weight else {}
    value = round(min(1.0, max(0.0, sum(shares[name] * v for name, v in applicable.items()))), SCORE_DIGITS)
    reasons = _reasons(features, applicable, shares)
    return Score(value=value, bucket=bucket_of(value, high, medium), reasons=reasons,
                 features_hash=features_hash(tenant_id, features, reasons),
                 contributions=_contributions(features, applicable, shares))


def _signed_points(value: float, share: float) -> float:
    """Points earned by a strength (value ≥ 0.5), points missed (negative) by a weakness."""
    return share * value if value >= 0.5 else -share * (1 - value)


def _contributions(features: LeadFeatures, values: Mapping[str, float],
                   shares: Mapping[str, float]) -> tuple[dict[str, Any], ...]:
    rows = [{"feature": name, "text": reason_phrase(features, name),
             "contribution": round(_signed_points(value, shares[name]), 4)} for name, value in values.items()]
    return tuple(sorted(rows, key=lambda row: (-row["contribution"], row["feature"])))


def reason_phrase(features: LeadFeatures, name: str) -> str:
    """The words for one feature's fact: the phrase recorded with the features, else a safe one."""
    value = features.values().get(name)
    return features.phrases.get(name) or fallback_phrase(name, value if value is not None else 0.0)


def _reasons(features: LeadFeatures, values: Mapping[str, float],
             shares: Mapping[str, float]) -> tuple[dict[str, Any], ...]:
    """The top strengths by points earned and the top weaknesses by points missed.

    A feature at 0.5 or more counts as a strength, below as a weakness, so none appears twice.
    """
    strengths = sorted(((shares[n] * v, n) for n, v in values.items() if v >= 0.5 and shares[n] * v > 0),
                       key=lambda item: (-item[0], item[1]))
    weaknesses = sorted(((shares[n] * (1 - v), n) for n, v in values.items() if v < 0.5),
                        key=lambda item: (-item[0], item[1]))
    return (tuple(_reason(features, name, points) for points, name in strengths[:TOP_REASONS])
            + tuple(_reason(features, name, -points) for points, name in weaknesses[:TOP_REASONS]))


def _reason(features: LeadFeatures, name: str, contribution: float) -> dict[str, Any]:
    value = features.raw.get(name, getattr(features, name))
    return {"feature": name, "value": value, "contribution": round(contribution, 4),
            "text": reason_phrase(features, name)}


def features_hash(tenant_id: int, features: LeadFeatures, reasons: Sequence[Mapping[str, Any]]) -> str:
    """A stable key for "the same company looks the same to the same tenant" (sorted JSON, sha256).

    Features carry the company's identity, so two companies with equal signals never share a
    rationale that names the other.
    """
    payload = {"tenant_id": tenant_id, "features": features.to_dict(), "reasons": [dict(r) for r in reasons]}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -- features --------------------------------------------------------------------------------------
Raw = dict[str, Any]


def build_features(company: Mapping[str, Any], icp: Icp, crawl: Mapping[str, Any] | None,
                   contacts: Sequence[Mapping[str, Any]], verification: Mapping[str, str]) -> LeadFeatures:
    """Features of ``company`` (a ``companies`` row) for a tenant with ``icp``.

    ``crawl`` is the night's ``company_enrichment_runs`` row (``signals``, ``extraction``,
    ``degraded``, ``reasons`` and, when kept, ``corpus``) or None; ``contacts`` are ``contacts`` rows;
    ``verification`` maps a lower-case email to its policy (deliverable, risky, suppressed).
    """
    signals: Mapping[str, Any] = (crawl or {}).get("signals") or {}
    profile: Mapping[str, Any] = ((crawl or {}).get("extraction") or {}).get("profile") or {}
    site_text = _site_text(company, crawl, signals, profile)
    headcount = headcount_of(company, crawl)
    raw: Raw = {}
    values: dict[str, Any] = {
        "industry_match": _industry_match(company, profile, icp, raw),
        "company_age_fit": _company_age_fit(company, icp, raw),
        "employee_fit": _employee_fit(headcount, icp, raw),
        "live_status": _live_status(company, icp, raw),
        "keyword_match": _keyword_match(site_text, icp, raw),
        "website_reachable": _website_reachable(signals, raw),
        "key_pages": _key_pages(signals, raw),
        "pricing_page": bool(signals.get("has_pricing")),
        "case_studies": bool(signals.get("has_case_studies")),
        "hiring": _hiring(signals, raw),
        "tech_match": _tech_match(signals, icp, raw),
        "decision_maker_email": _decision_maker_email(contacts, verification, raw),
        # A buyer whose address must never be mailed is no buyer to count on.
        "preferred_title": _preferred_title([c for c in contacts if verification.get(
            str(c.get("email") or "").strip().lower()) != "suppressed"], icp, raw),
        "phone": _phone(contacts, signals, raw),
        "stages_complete": _stages_complete(crawl, raw),
        "extraction_confidence": _extraction_confidence(profile, raw),
    }
    details = reason_details(signals, headcount)
    phrases = {name: feature_phrase(name, value, raw.get(name), icp, details)
               for name, value in values.items() if value is not None}
    return LeadFeatures(uen=str(company["uen"]), company_name=str(company.get("name") or company["uen"]),
                        raw=raw, phrases=phrases, **values)


def headcount_of(company: Mapping[str, Any], crawl: Mapping[str, Any] | None) -> Headcount:
    """The company's headcount with its source; tonight's crawl when the company row has none."""
    stored = headcount_domain.from_company(company)
    if stored.known:
        return stored
    return Headcount.from_dict(((crawl or {}).get("extraction") or {}).get("headcount"))


def _contains_word(text: str, word: str) -> bool:
    # A prefix match, so "platform" also finds "platforms" (as the ICP's industry matching does).
    return re.search(rf"\b{re.escape(word.casefold())}", text) is not None


def _site_text(company: Mapping[str, Any], crawl: Mapping[str, Any] | None, signals: Mapping[str, Any],
               profile: Mapping[str, Any]) -> str:
    """What the company says about itself, lower-cased: the corpus when it was kept, else what the
    crawl stored about the pages and the extracted profile."""
    parts: list[str] = [str((crawl or {}).get("corpus") or ""), str(company.get("ssic_description") or "")]
    meta = signals.get("meta") or {}
    parts += [str(meta.get("title") or ""), str(meta.get("description") or "")]
    parts += [str(page.get("title") or "") for page in signals.get("pages") or []]
    parts += [str(profile.get("industry") or ""), str(profile.get("about") or "")]
    parts += [str(item) for item in profile.get("products_services") or []]
    return "\n".join(p for p in parts if p).casefold()


def _industry_match(company: Mapping[str, Any], profile: Mapping[str, Any], icp: Icp, raw: Raw) -> float | None:
    if not icp.ssic_codes and not icp.industries:
        return None
    code = str(company.get("ssic_code") or "").strip()
    best, explanation = 0.0, f"SSIC {code or 'unknown'} outside the ICP"
    for wanted in icp.ssic_codes:
        if code and code.startswith(wanted):
            # Same strengths as candidate matching: a full 5-digit code 1.0, a 2-digit division 0.76.
            strength = 1.0 if len(wanted) == 5 else 0.6 + 0.08 * len(wanted)
            if strength > best:
                best, explanation = strength, f"SSIC {code} matches {wanted}"
    described = f"{company.get('ssic_description') or ''} {profile.get('industry') or ''}".casefold()
    for industry in icp.industries:
        if best < 0.7 and _contains_word(described, industry):
            best, explanation = 0.7, f"industry {industry}"
    raw["industry_match"] = explanation
    return best


def _company_age_fit(company: Mapping[str, Any], icp: Icp, raw: Raw) -> float | None:
    years = icp.incorporation_year
    if years is None:
        return None
    year = company.get("incorporation_year")
    if year is None:
        raw["company_age_fit"] = "incorporation year unknown"
        return 0.0
    raw["company_age_fit"] = f"incorporated {year}"
    below = (years.min - year) if years.min is not None and year < years.min else 0
    above = (year - years.max) if years.max is not None and year > years.max else 0
    return max(0.0, 1.0 - (below + above) / AGE_FIT_TOLERANCE_YEARS)


def _employee_fit(headcount: Headcount, icp: Icp, raw: Raw) -> float | None:
    wanted = icp.employee_range
    if wanted is None:
        return None
    if not headcount.known:
        raw["employee_fit"] = "headcount unknown"
        return 0.0
    raw["employee_fit"] = f"{headcount.label} employees ({headcount.source})"
    fit = headcount_domain.range_fit(headcount, wanted.min, wanted.max)
    return fit * INFERRED_HEADCOUNT_FACTOR if headcount.source == "inferred" else fit


def _live_status(company: Mapping[str, Any], icp: Icp, raw: Raw) -> bool:
    status = company.get("entity_status")
    raw["live_status"] = status or "unknown"
    if icp.entity_status:
        return (status or "").casefold() in {s.casefold() for s in icp.entity_status}
    return bool(company.get("is_live"))


def _keyword_match(site_text: str, icp: Icp, raw: Raw) -> float | None:
    if not icp.keywords:
        return None
    found = [keyword for keyword in icp.keywords if _contains_word(site_text, keyword)]
    raw["keyword_match"] = found
    return min(1.0, len(found) / min(KEYWORDS_FOR_FULL_MATCH, len(icp.keywords)))


def _website_reachable(signals: Mapping[str, Any], raw: Raw) -> bool:
    crawl = signals.get("crawl") or {}
    outcome = crawl.get("outcome")
    raw["website_reachable"] = outcome or "no website crawled"
    return outcome == "ok" and int(crawl.get("pages_fetched") or 0) > 0


def _key_pages(signals: Mapping[str, Any], raw: Raw) -> float:
    kinds = {page.get("kind") for page in signals.get("pages") or []}
    present = [kind for kind in KEY_PAGE_KINDS if kind in kinds]
    raw["key_pages"] = present
    return len(present) / len(KEY_PAGE_KINDS)


def _hiring(signals: Mapping[str, Any], raw: Raw) -> float:
    roles = int(signals.get("open_roles") or 0)
    raw["hiring"] = f"{roles} open roles" if roles else ("careers page" if signals.get("has_careers") else "none seen")
    if roles:
        return 0.5 + 0.5 * min(1.0, roles / OPEN_ROLES_FOR_FULL_HIRING)
    return 0.5 if signals.get("has_careers") else 0.0


def _tech_match(signals: Mapping[str, Any], icp: Icp, raw: Raw) -> float | None:
    if not icp.keywords:
        return None
    matched = sorted({str(hit.get("name")) for hit in signals.get("tech") or []
                      for keyword in icp.keywords
                      if re.search(rf"\b{re.escape(keyword.casefold())}\b",
                                   f"{hit.get('name') or ''} {hit.get('category') or ''}".casefold())})
    raw["tech_match"] = matched
    return 1.0 if matched else 0.0


def _address_kind(contact: Mapping[str, Any]) -> tuple[str, float]:
    """How directly an address reaches a buyer: its kind and its weight."""
    kind = contact.get("email_kind")
    personal = kind == "personal" if kind else bool(contact.get("full_name"))
    if not personal:
        return "role", ROLE_ADDRESS_FACTOR
    seniority = int(contact.get("seniority") or 0)
    if 0 < seniority < DECISION_MAKER_SENIORITY:
        return "junior", JUNIOR_ADDRESS_FACTOR
    return "personal", 1.0


def _decision_maker_email(contacts: Sequence[Mapping[str, Any]], verification: Mapping[str, str],
                          raw: Raw) -> float:
    # Addresses themselves stay out of raw: reasons travel to the model and into the CRM notes.
    candidates: list[tuple[float, str]] = []
    for contact in contacts:
        email = str(contact.get("email") or "").strip().lower()
        if not email:
            continue
        policy = verification.get(email)
        kind, factor = _address_kind(contact)
        candidates.append((EMAIL_POLICY_VALUE.get(policy, 0.0) * factor,
                           f"{kind} address, {policy or 'unverified'}"))
    if not candidates:
        raw["decision_maker_email"] = "no email address"
        return 0.0
    best, explanation = max(candidates, key=lambda candidate: candidate[0])
    raw["decision_maker_email"] = explanation
    return best


def _preferred_title(contacts: Sequence[Mapping[str, Any]], icp: Icp, raw: Raw) -> bool | None:
    if not icp.preferred_titles:
        return None
    for contact in contacts:
        title = str(contact.get("title") or "")
        if any(re.search(rf"\b{re.escape(wanted.casefold())}\b", title.casefold()) for wanted in icp.preferred_titles):
            raw["preferred_title"] = title
            return True
    raw["preferred_title"] = f"none of {', '.join(icp.preferred_titles)}"
    return False


def _phone(contacts: Sequence[Mapping[str, Any]], signals: Mapping[str, Any], raw: Raw) -> bool:
    if any(contact.get("phone") for contact in contacts):
        raw["phone"] = "contact phone"
        return True
    if signals.get("phones") or (signals.get("organization") or {}).get("telephone"):
        raw["phone"] = "website phone"
        return True
    raw["phone"] = "none found"
    return False


def _stages_complete(crawl: Mapping[str, Any] | None, raw: Raw) -> float:
    if crawl is None or crawl.get("outcome") == "error":
        raw["stages_complete"] = "not enriched"
        return 0.0
    degraded = len(crawl.get("reasons") or [])
    if crawl.get("degraded"):
        degraded = max(degraded, 1)
    raw["stages_complete"] = f"{degraded} degraded stage{'s' if degraded != 1 else ''}"
    return max(0.0, 1.0 - degraded / ENRICHMENT_STAGES)


def _extraction_confidence(profile: Mapping[str, Any], raw: Raw) -> float:
    if not profile:
        raw["extraction_confidence"] = "no profile"
        return 0.0
    confidences = [float(profile.get(name) or 0.0) for name in PROFILE_CONFIDENCE_FIELDS]
    mean = min(1.0, max(0.0, sum(confidences) / len(confidences)))
    # Not the extraction's source: a profile read from the cache must hash like the night it was extracted.
    raw["extraction_confidence"] = f"mean confidence {mean:.2f}"
    return mean
