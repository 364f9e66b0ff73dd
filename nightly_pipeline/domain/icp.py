"""A tenant's ideal customer profile (contract §3) and matching registry companies against it.

Only what the registry knows is matched here (industry, status, age, exclusions); employee range
and keywords need the crawl and count in scoring.
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_LIVE_STATUSES = ("Live", "Live Company")


class IcpError(ValueError):
    """An ICP payload that is not valid; the message names the offending key."""


class YearRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    min: int | None = Field(None, ge=1800, le=2100)
    max: int | None = Field(None, ge=1800, le=2100)

    @model_validator(mode="after")
    def _ordered(self) -> "YearRange":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class CountRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "CountRange":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class Icp(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    ssic_codes: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    entity_status: tuple[str, ...] = ()
    incorporation_year: YearRange | None = None
    employee_range: CountRange | None = None
    preferred_titles: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    exclude_uens: tuple[str, ...] = ()
    score_weights: dict[str, float] | None = None

    @field_validator("ssic_codes")
    @classmethod
    def _ssic_prefixes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            if not re.fullmatch(r"\d{1,5}", code):
                raise ValueError(f"{code!r} is not an SSIC code or prefix (1 to 5 digits)")
        return codes

    @field_validator("industries", "keywords", "preferred_titles", "entity_status")
    @classmethod
    def _non_empty_words(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        if any(not w.strip() for w in words):
            raise ValueError("entries must be non-empty strings")
        return tuple(w.strip() for w in words)

    @field_validator("exclude_uens")
    @classmethod
    def _upper_uens(cls, uens: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(u.strip().upper() for u in uens)


def _location(error: dict[str, Any]) -> str:
    parts = [str(p) for p in error["loc"] if not isinstance(p, int)]
    return ".".join(parts) or "ICP"


def parse_icp(payload: Any) -> Icp:
    """Validate an ICP document (a dict or JSON text); errors name the key, e.g. ``ssic_codes``."""
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise IcpError(f"ICP is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(payload, dict):
        raise IcpError(f"ICP must be a JSON object, got {type(payload).__name__}")
    # Strict mode keeps "2005" from passing as a year, but JSON has arrays, not tuples.
    payload = {k: tuple(v) if isinstance(v, list) else v for k, v in payload.items()}
    try:
        return Icp.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":
            raise IcpError(f"unknown key {_location(first)!r} in ICP") from None
        message = first["msg"].removeprefix("Value error, ").replace("valid tuple", "list")
        raise IcpError(f"ICP key {_location(first)!r}: {message}") from None


@dataclasses.dataclass(frozen=True)
class CompanyFacts:
    company_id: int
    uen: str
    ssic_code: str | None
    ssic_description: str | None
    entity_status: str | None
    is_live: bool
    incorporation_year: int | None


@dataclasses.dataclass(frozen=True)
class IcpMatch:
    company_id: int
    score: float
    reasons: tuple[dict[str, Any], ...]


def _industry_match(icp: Icp, company: CompanyFacts) -> tuple[float, dict[str, Any]] | None:
    if not icp.ssic_codes and not icp.industries:
        return 0.5, {"criterion": "industry", "detail": "ICP names no industry"}
    code = company.ssic_code or ""
    best: tuple[float, dict[str, Any]] | None = None
    for wanted in icp.ssic_codes:
        if code.startswith(wanted):
            strength = 1.0 if len(wanted) == 5 else 0.6 + 0.08 * len(wanted)
            candidate = (strength, {"criterion": "ssic_code", "value": code, "matched": wanted})
            best = max(best, candidate, key=lambda m: m[0]) if best else candidate
    description = (company.ssic_description or "").lower()
    for industry in icp.industries:
        if re.search(rf"\b{re.escape(industry.lower())}", description):
            candidate = (0.7, {"criterion": "industry", "value": company.ssic_description, "matched": industry})
            best = max(best, candidate, key=lambda m: m[0]) if best else candidate
    return best


def match_company(icp: Icp, company: CompanyFacts) -> IcpMatch | None:
    """The match and why, or None when a hard criterion fails."""
    if company.uen.upper() in icp.exclude_uens:
        return None
    if icp.entity_status:
        wanted = {s.lower() for s in icp.entity_status}
        if (company.entity_status or "").lower() not in wanted:
            return None
        status_reason = {"criterion": "entity_status", "value": company.entity_status}
    else:
        if not company.is_live:
            return None
        status_reason = {"criterion": "entity_status", "value": company.entity_status, "matched": "live"}
    years = icp.incorporation_year
    year_reason = None
    if years is not None:
        year = company.incorporation_year
        if year is None or (years.min is not None and year < years.min) or (years.max is not None and year > years.max):
            return None
        year_reason = {"criterion": "incorporation_year", "value": year,
                       "matched": f"{years.min or ''}..{years.max or ''}"}
    industry = _industry_match(icp, company)
    if industry is None:
        return None
    strength, industry_reason = industry
    reasons = [industry_reason, status_reason] + ([year_reason] if year_reason else [])
    return IcpMatch(company.company_id, round(strength, 4), tuple(reasons))


def match_companies(icp: Icp, companies: list[CompanyFacts]) -> list[IcpMatch]:
    return [m for c in companies if (m := match_company(icp, c)) is not None]
