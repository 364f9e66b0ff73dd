"""The company profile that AI extraction fills, and the coarse revenue mapping both paths share.

The schema is flat on purpose: nested objects and unions are where smaller models and strict
structured-output modes disagree, and a flat list of scalars is what every model fills reliably.
Length limits are enforced by clipping validators rather than schema keywords, so a model that
writes a sentence too many costs a trimmed field instead of a failed (and already billed) call.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

RevenueBucket = Literal["<1M", "1M-10M", "10M-50M", "50M-250M", ">250M", "unknown"]
BusinessModel = Literal["B2B", "B2C", "B2B2C", "unknown"]

MAX_PRODUCTS = 10
MAX_PRODUCT_CHARS = 80
MAX_ABOUT_CHARS = 400

# Singapore SMEs turn over very roughly S$200k per employee, so headcount orders companies into
# revenue buckets well enough for lead scoring; the upper bound (exclusive) of each bucket's headcount.
REVENUE_PER_EMPLOYEE_SGD = 200_000
_REVENUE_BUCKET_BY_HEADCOUNT: tuple[tuple[int, RevenueBucket], ...] = (
    (5, "<1M"),
    (50, "1M-10M"),
    (250, "10M-50M"),
    (1_250, "50M-250M"),
)

_CONFIDENCE_HELP = ("Confidence in {field}, 0 to 1: 0.9 or more when the text states it outright, 0.5-0.8 when "
                    "it follows from clear evidence, below 0.5 when it is a weak guess, 0 when {field} is unknown.")


def _confidence(field: str) -> Any:
    return Field(0.0, ge=0.0, le=1.0, description=_CONFIDENCE_HELP.format(field=field))


def revenue_bucket_for_employees(employees: int | None) -> RevenueBucket:
    """The annual revenue bucket (SGD) a headcount suggests; "unknown" without a headcount."""
    if employees is None:
        return "unknown"
    for upper_bound, bucket in _REVENUE_BUCKET_BY_HEADCOUNT:
        if employees < upper_bound:
            return bucket
    return ">250M"


def _clip_words(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]).rstrip(" ,;:-")


class CompanyProfile(BaseModel):
    """Firmographics of one Singapore company, taken only from its registry facts and website text.

    Leave a field null ("unknown" for categories, an empty list for products and services) when the
    text does not support it, and give that field a confidence of 0.
    """

    industry: str | None = Field(
        None, description="The company's main industry in two to five plain words, e.g. 'freight forwarding' "
                          "or 'accounting services'; null when unclear.")
    employees_estimate: int | None = Field(
        None, ge=0, description="Number of employees the text states or clearly implies (a range gives its "
                                "midpoint); null when the text does not say.")
    revenue_bucket: RevenueBucket = Field(
        "unknown", description="Annual revenue in Singapore dollars: '<1M', '1M-10M', '10M-50M', '50M-250M' or "
                               "'>250M'; 'unknown' unless revenue or a headcount is stated.")
    hq: str | None = Field(
        None, description="Headquarters address in Singapore as one line (street, building, postal code); "
                          "null when not given.")
    products_services: list[str] = Field(
        default_factory=list, description=f"Up to {MAX_PRODUCTS} main products or services the company sells, "
                                          "each a short noun phrase of a few words; empty when not described.")
    business_model: BusinessModel = Field(
        "unknown", description="Who the company sells to: 'B2B' (businesses), 'B2C' (consumers), 'B2B2C' (through "
                               "businesses to consumers) or 'unknown'.")
    about: str | None = Field(
        None, description=f"One or two neutral sentences on what the company does, at most {MAX_ABOUT_CHARS} "
                          "characters; null when the text says too little.")
    industry_confidence: float = _confidence("industry")
    employees_estimate_confidence: float = _confidence("employees_estimate")
    revenue_bucket_confidence: float = _confidence("revenue_bucket")
    hq_confidence: float = _confidence("hq")
    products_services_confidence: float = _confidence("products_services")
    business_model_confidence: float = _confidence("business_model")
    about_confidence: float = _confidence("about")

    @field_validator("industry", "hq", "about", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.split()) or None
        return value

    @field_validator("about")
    @classmethod
    def _clip_about(cls, value: str | None) -> str | None:
        return _clip_words(value, MAX_ABOUT_CHARS) if value is not None else None

    @field_validator("products_services", mode="before")
    @classmethod
    def _clip_products(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        items: dict[str, str] = {}
        for item in value:
            if not isinstance(item, str):
                return value  # let pydantic report the wrong type
            text = _clip_words(" ".join(item.split()), MAX_PRODUCT_CHARS)
            if text:
                items.setdefault(text.casefold(), text)
        return list(items.values())[:MAX_PRODUCTS]
