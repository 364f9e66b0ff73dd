import datetime as dt

import pytest

from nightly_pipeline.domain.targets import Candidate, Tier, choose_targets

TODAY = dt.date(2026, 6, 2)


def test_never_seen_then_stale_then_recent():
    candidates = [
        Candidate(1, 0.9, TODAY - dt.timedelta(days=3)),    # recent
        Candidate(2, 0.5, None),                             # never seen, weak match
        Candidate(3, 0.9, TODAY - dt.timedelta(days=60)),   # stale
        Candidate(4, 0.9, None),                             # never seen, strong match
        Candidate(5, 0.9, TODAY - dt.timedelta(days=90)),   # staler
    ]
    chosen = choose_targets(candidates, run_date=TODAY, cap=10, stale_after_days=30)
    assert [t.company_id for t in chosen] == [4, 2, 5, 3, 1]
    assert [t.tier for t in chosen] == [Tier.NEVER_SEEN, Tier.NEVER_SEEN, Tier.STALE, Tier.STALE, Tier.RECENT]
    assert chosen[0].reason == "never targeted before"
    assert chosen[-1].reason == "recent: last targeted 2026-05-30"


@pytest.mark.parametrize("cap", [0, 1, 3, 20])
def test_cap_is_respected_and_choice_is_deterministic(cap):
    candidates = [Candidate(i, 0.7, None) for i in range(50, 0, -1)]
    chosen = choose_targets(candidates, run_date=TODAY, cap=cap)
    assert len(chosen) == min(cap, 50)
    assert [t.company_id for t in chosen] == list(range(1, min(cap, 50) + 1))


def test_negative_cap_is_refused():
    with pytest.raises(ValueError):
        choose_targets([], run_date=TODAY, cap=-1)
