"""Target choice: what the last visit left missing comes before what is merely stale."""
import datetime as dt

import pytest

from nightly_pipeline.domain.targets import Candidate, Tier, choose_targets, tier_of

TODAY = dt.date(2026, 6, 2)
YESTERDAY = TODAY - dt.timedelta(days=1)
LONG_AGO = TODAY - dt.timedelta(days=90)


@pytest.mark.parametrize(("candidate", "tier", "reason"), [
    (Candidate(1, 0.9, None), Tier.NEVER_SEEN, "never targeted before"),
    (Candidate(1, 0.9, None, crawl_incomplete=True, has_contact=False), Tier.NEVER_SEEN, "never targeted before"),
    (Candidate(1, 0.9, YESTERDAY, crawl_incomplete=True), Tier.INCOMPLETE,
     "incomplete (crawl failed or degraded): last targeted 2026-06-01"),
    (Candidate(1, 0.9, YESTERDAY, has_contact=False), Tier.INCOMPLETE,
     "incomplete (no contact): last targeted 2026-06-01"),
    (Candidate(1, 0.9, YESTERDAY, primary_verified=False), Tier.INCOMPLETE,
     "incomplete (primary contact unverified): last targeted 2026-06-01"),
    (Candidate(1, 0.9, YESTERDAY, has_contact=False, primary_verified=False), Tier.INCOMPLETE,
     "incomplete (no contact): last targeted 2026-06-01"),
    (Candidate(1, 0.9, LONG_AGO, crawl_incomplete=True, has_contact=False), Tier.INCOMPLETE,
     "incomplete (crawl failed or degraded, no contact): last targeted 2026-03-04"),
    (Candidate(1, 0.9, LONG_AGO), Tier.STALE, "stale: last targeted 2026-03-04"),
    (Candidate(1, 0.9, YESTERDAY), Tier.RECENT, "recent: last targeted 2026-06-01"),
])
def test_tier_and_reason(candidate, tier, reason):
    assert tier_of(candidate, TODAY, 30) is tier
    [target] = choose_targets([candidate], run_date=TODAY, cap=1)
    assert (target.tier, target.reason) == (tier, reason)


def test_incomplete_comes_after_new_and_before_stale_and_complete():
    candidates = [
        Candidate(1, 0.95, YESTERDAY),                              # complete, recent
        Candidate(2, 0.95, LONG_AGO),                               # complete, stale
        Candidate(3, 0.40, YESTERDAY, has_contact=False),           # incomplete, weak match
        Candidate(4, 0.80, YESTERDAY, crawl_incomplete=True),       # incomplete, strong match
        Candidate(5, 0.30, None),                                   # never seen
    ]
    assert [t.company_id for t in choose_targets(candidates, run_date=TODAY, cap=10)] == [5, 4, 3, 2, 1]
    assert [t.company_id for t in choose_targets(candidates, run_date=TODAY, cap=3)] == [5, 4, 3]


@pytest.mark.parametrize(("days", "tier"), [(0, Tier.RECENT), (7, Tier.RECENT), (8, Tier.STALE)])
def test_staleness_window_is_a_parameter(days, tier):
    candidate = Candidate(1, 0.5, TODAY - dt.timedelta(days=days))
    assert tier_of(candidate, TODAY, 7) is tier


def test_negative_staleness_is_refused():
    with pytest.raises(ValueError, match="stale_after_days"):
        choose_targets([], run_date=TODAY, cap=1, stale_after_days=-1)
