"""Choosing tonight's targets from a tenant's ICP candidates (PRD 7, step 3).

Order: companies this tenant has never targeted > stale ones (last targeted longer ago than the
staleness window) > recently targeted ones; within a tier, stronger ICP matches first, then older
last visits, then company id so the choice is deterministic.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum


class Tier(enum.IntEnum):
    NEVER_SEEN = 0
    STALE = 1
    RECENT = 2


@dataclasses.dataclass(frozen=True)
class Candidate:
    company_id: int
    match_score: float
    last_targeted_on: dt.date | None


@dataclasses.dataclass(frozen=True)
class Target:
    company_id: int
    tier: Tier
    match_score: float
    last_targeted_on: dt.date | None

    @property
    def reason(self) -> str:
        if self.tier is Tier.NEVER_SEEN:
            return "never targeted before"
        return f"{'stale' if self.tier is Tier.STALE else 'recent'}: last targeted {self.last_targeted_on}"


def tier_of(candidate: Candidate, run_date: dt.date, stale_after_days: int) -> Tier:
    if candidate.last_targeted_on is None:
        return Tier.NEVER_SEEN
    if (run_date - candidate.last_targeted_on).days > stale_after_days:
        return Tier.STALE
    return Tier.RECENT


def choose_targets(candidates: list[Candidate], *, run_date: dt.date, cap: int,
                   stale_after_days: int = 30) -> list[Target]:
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    ranked = sorted(
        (Target(c.company_id, tier_of(c, run_date, stale_after_days), c.match_score, c.last_targeted_on)
         for c in candidates),
        key=lambda t: (t.tier, -t.match_score, t.last_targeted_on or dt.date.min, t.company_id),
    )
    return ranked[:cap]
