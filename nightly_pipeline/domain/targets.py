"""Choosing tonight's targets from a tenant's ICP candidates.

Order: companies this tenant has never targeted > incomplete ones (what the last visit left missing:
a crawl that failed or came out degraded, no contact, a primary contact whose address is not
verified) > stale ones (last targeted longer ago than the staleness window) > recently targeted,
complete ones; within a tier, stronger ICP matches first, then older last visits, then company id
so the choice is deterministic.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum


class Tier(enum.IntEnum):
    NEVER_SEEN = 0
    INCOMPLETE = 1
    STALE = 2
    RECENT = 3


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A candidate and what this tenant's last visit left of it (``None`` when never visited)."""

    company_id: int
    match_score: float
    last_targeted_on: dt.date | None
    crawl_incomplete: bool = False
    has_contact: bool = True
    primary_verified: bool = True

    def missing(self) -> tuple[str, ...]:
        """What the last visit left missing, in words."""
        if self.last_targeted_on is None:
            return ()
        gaps = []
        if self.crawl_incomplete:
            gaps.append("crawl failed or degraded")
        if not self.has_contact:
            gaps.append("no contact")
        elif not self.primary_verified:
            gaps.append("primary contact unverified")
        return tuple(gaps)


@dataclasses.dataclass(frozen=True)
class Target:
    company_id: int
    tier: Tier
    match_score: float
    last_targeted_on: dt.date | None
    missing: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        if self.tier is Tier.NEVER_SEEN:
            return "never targeted before"
        if self.tier is Tier.INCOMPLETE:
            return f"incomplete ({', '.join(self.missing)}): last targeted {self.last_targeted_on}"
        return f"{'stale' if self.tier is Tier.STALE else 'recent'}: last targeted {self.last_targeted_on}"


def tier_of(candidate: Candidate, run_date: dt.date, stale_after_days: int) -> Tier:
    if candidate.last_targeted_on is None:
        return Tier.NEVER_SEEN
    if candidate.missing():
        return Tier.INCOMPLETE
    if (run_date - candidate.last_targeted_on).days > stale_after_days:
        return Tier.STALE
    return Tier.RECENT


def choose_targets(candidates: list[Candidate], *, run_date: dt.date, cap: int,
                   stale_after_days: int = 30) -> list[Target]:
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    if stale_after_days < 0:
        raise ValueError(f"stale_after_days must be >= 0, got {stale_after_days}")
    ranked = sorted(
        (Target(c.company_id, tier_of(c, run_date, stale_after_days), c.match_score, c.last_targeted_on,
                c.missing()) for c in candidates),
        key=lambda t: (t.tier, -t.match_score, t.last_targeted_on or dt.date.min, t.company_id),
    )
    return ranked[:cap]
