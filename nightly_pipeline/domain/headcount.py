"""How many people a company employs, and how much that number can be trusted.

A headcount carries its source: ``structured`` (the site's JSON-LD ``numberOfEmployees``), ``stated``
(the site's own words, "a team of 42"), ``vendor`` (a data vendor's record) or ``inferred`` (a
language model's reading of the site). What the company says about itself always wins over a
model's reading; an inferred headcount is kept only as a size range ("11–50"), never as a number
more precise than the guess behind it.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

HeadcountSource = Literal["structured", "stated", "vendor", "inferred"]
SOURCES: tuple[HeadcountSource, ...] = ("structured", "stated", "vendor", "inferred")
# Which source may replace which: the company's own statement beats a vendor's record, which beats a guess.
SOURCE_RANK: Mapping[str, int] = {"structured": 3, "stated": 3, "vendor": 2, "inferred": 1}
SOURCE_WORDS: Mapping[str, str] = {
    "structured": "in the site's structured data",
    "stated": "stated on the site",
    "vendor": "per vendor data",
    "inferred": "estimated from the site text",
}
# The usual company-size bands (upper bound inclusive; the last band is open).
SIZE_RANGES: tuple[tuple[int, int | None], ...] = (
    (1, 10), (11, 50), (51, 200), (201, 500), (501, 1_000), (1_001, 5_000), (5_001, 10_000), (10_001, None))
# A model's headcount below this confidence is no estimate at all.
MIN_INFERRED_CONFIDENCE = 0.5


@dataclasses.dataclass(frozen=True)
class Headcount:
    """``exact`` when a number is known; else ``low``..``high`` (``high`` None: open-ended)."""

    source: HeadcountSource | None = None
    exact: int | None = None
    low: int | None = None
    high: int | None = None

    def __post_init__(self) -> None:
        if self.source == "inferred" and self.exact is not None:
            raise ValueError("an inferred headcount is a range, never an exact number")
        if self.source is not None and self.source not in SOURCES:
            raise ValueError(f"unknown headcount source {self.source!r}; expected one of {', '.join(SOURCES)}")

    @property
    def known(self) -> bool:
        return self.source is not None and (self.exact is not None or self.low is not None)

    @property
    def is_range(self) -> bool:
        return self.exact is None and self.low is not None

    @property
    def label(self) -> str:
        """``"42"``, ``"11–50"``, ``"200+"`` or ``"unknown"``."""
        if self.exact is not None:
            return f"{self.exact:,}"
        if self.low is None:
            return "unknown"
        if self.high is None:
            return f"{self.low:,}+"
        return f"{self.low:,}–{self.high:,}" if self.high != self.low else f"{self.low:,}"

    @property
    def source_words(self) -> str:
        return SOURCE_WORDS.get(self.source or "", "")

    def representative(self) -> float | None:
        """One number to compare with a range: the exact value, a range's geometric middle, an
        open range's floor."""
        if self.exact is not None:
            return float(self.exact)
        if self.low is None:
            return None
        if self.high is None:
            return float(self.low)
        return math.sqrt(max(self.low, 1) * max(self.high, 1))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "exact": self.exact, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Headcount:
        if not data:
            return UNKNOWN
        return cls(source=data.get("source"), exact=_int(data.get("exact")), low=_int(data.get("low")),
                   high=_int(data.get("high")))


UNKNOWN = Headcount()


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def size_range(count: int) -> tuple[int, int | None]:
    """The size band that holds ``count`` (0 counts as the smallest band)."""
    for low, high in SIZE_RANGES:
        if high is None or count <= high:
            return low, high
    raise AssertionError("the last size band is open-ended")


def exact(count: int, source: HeadcountSource) -> Headcount:
    if source == "inferred":
        return inferred(count)
    return Headcount(source=source, exact=count, low=count, high=count)


def at_least(count: int, source: HeadcountSource) -> Headcount:
    """"Over 200 staff": a floor the company vouches for, not a number."""
    return Headcount(source=source, low=count, high=None)


def inferred(count: int) -> Headcount:
    low, high = size_range(count)
    return Headcount(source="inferred", low=low, high=high)


def resolve(*, structured: int | None = None, stated: Headcount | None = None, vendor: int | None = None,
            model_estimate: int | None = None, model_confidence: float = 0.0) -> Headcount:
    """The headcount to keep from tonight's evidence, best source first.

    ``stated`` is what the site's text says (see ``crawl.signals.people.stated_headcount``);
    ``model_estimate`` is a language model's number, kept only as its size band and only when the
    model was at least :data:`MIN_INFERRED_CONFIDENCE` sure of it.
    """
    if structured is not None and structured > 0:
        return exact(structured, "structured")
    if stated is not None and stated.known:
        return stated
    if vendor is not None and vendor > 0:
        return exact(vendor, "vendor")
    if model_estimate is not None and model_estimate > 0 and model_confidence >= MIN_INFERRED_CONFIDENCE:
        return inferred(model_estimate)
    return UNKNOWN


def from_company(company: Mapping[str, Any]) -> Headcount:
    """The headcount a ``companies`` row holds; a number stored without its source counts as inferred."""
    source = company.get("employees_source")
    count = _int(company.get("employees_estimate"))
    low, high = _int(company.get("employees_min")), _int(company.get("employees_max"))
    if source in SOURCES:
        if source == "inferred":
            if low is None and count is not None:
                return inferred(count)
            return Headcount(source="inferred", low=low, high=high) if low is not None else UNKNOWN
        if count is not None:
            return exact(count, source)
        return Headcount(source=source, low=low, high=high) if low is not None else UNKNOWN
    return inferred(count) if count is not None else UNKNOWN


def range_fit(headcount: Headcount, minimum: int | None, maximum: int | None) -> float:
    """How well the headcount sits in the ICP's range: 1 inside, falling off in proportion outside,
    0 when unknown."""
    value = headcount.representative()
    if value is None:
        return 0.0
    if minimum is not None and value < minimum:
        return value / minimum if minimum else 1.0
    if maximum is not None and value > maximum:
        return maximum / value
    return 1.0
