"""Lead features, the weighted score, buckets and reasons (pure), and the night's scoring tables."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nightly_pipeline.db import Database
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.domain.icp import parse_icp
from nightly_pipeline.scoring.score import (
    DEFAULT_WEIGHTS,
    FEATURE_NAMES,
    LeadFeatures,
    ScoringError,
    bucket_of,
    buckets_at_or_above,
    build_features,
    features_hash,
    resolve_weights,
    score,
)
from nightly_pipeline_tests.kit.scoring import (
    CEO,
    INFO,
    SOFTWARE_ICP,
    company_row,
    crawl_row,
    create_run,
    insert_company,
    insert_contact,
    insert_verification,
    profile,
    save_crawl,
    signals,
)
from nightly_pipeline_tests.kit.tenants import register_tenant

TENANT = 7
BOOL_FEATURES = {"live_status", "website_reachable", "pricing_page", "case_studies", "phone", "preferred_title"}
OPTIONAL_FEATURES = {"industry_match", "company_age_fit", "employee_fit", "keyword_match", "tech_match",
                     "preferred_title"}


def strong_features() -> LeadFeatures:
    return build_features(company_row(), SOFTWARE_ICP, crawl_row(), [CEO, INFO], {"mei@nimbus.sg": "deliverable"})


def weak_features() -> LeadFeatures:
    company = company_row(ssic_code="47711", ssic_description="RETAIL SALE OF CLOTHING", incorporation_year=1990,
                          employees_estimate=None, entity_status="Struck Off", is_live=False, website_domain=None)
    return build_features(company, SOFTWARE_ICP, None, [], {})


# -- weights and buckets -------------------------------------------------------------------------
def test_default_weights_cover_every_feature_and_sum_to_one() -> None:
    assert set(DEFAULT_WEIGHTS) == set(FEATURE_NAMES)
    assert sum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)
    assert all(weight > 0 for weight in DEFAULT_WEIGHTS.values())


@pytest.mark.parametrize(("value", "bucket"), [(1.0, "High"), (0.66, "High"), (0.65999, "Medium"), (0.33, "Medium"),
                                               (0.32999, "Low"), (0.0, "Low")])
def test_bucket_thresholds_on_the_one_zero_to_one_scale(value: float, bucket: str) -> None:
    assert bucket_of(value) == bucket


def test_bucket_thresholds_are_configurable_and_checked() -> None:
    assert bucket_of(0.5, high=0.5, medium=0.2) == "High"
    assert bucket_of(0.1, high=0.5, medium=0.2) == "Low"
    with pytest.raises(ScoringError, match="medium <= high"):
        bucket_of(0.5, high=0.3, medium=0.6)
    with pytest.raises(ScoringError, match=r"\[0, 1\]"):
        bucket_of(72.0)  # the earlier system's 0..100 scale
    assert buckets_at_or_above("Medium") == ("Medium", "High")
    with pytest.raises(ScoringError, match="unknown bucket"):
        buckets_at_or_above("A")


def test_weight_overrides_are_validated_by_name() -> None:
    assert resolve_weights({"phone": 0.5})["phone"] == 0.5
    with pytest.raises(ScoringError, match="'revenue'"):
        resolve_weights({"revenue": 0.2})
    with pytest.raises(ScoringError, match="'phone' must be a number >= 0"):
        resolve_weights({"phone": -0.1})
    with pytest.raises(ScoringError, match="greater than 0"):
        resolve_weights({name: 0 for name in FEATURE_NAMES})


# -- scores and reasons --------------------------------------------------------------------------
def test_a_company_that_fits_scores_high_and_one_that_does_not_scores_low() -> None:
    strong = score(strong_features(), tenant_id=TENANT)
    weak = score(weak_features(), tenant_id=TENANT)
    assert strong.bucket == "High" and strong.value > 0.85
    assert weak.bucket == "Low" and weak.value < 0.1
    assert 0.0 <= weak.value < strong.value <= 1.0


def test_reasons_are_the_top_strengths_and_weaknesses_with_their_contributions() -> None:
    features = build_features(company_row(employees_estimate=None), SOFTWARE_ICP,
                              crawl_row(profile_data=profile(employees_estimate=None)), [INFO], {})
    result = score(features, tenant_id=TENANT)

    assert len(result.strengths) == 3 and 1 <= len(result.weaknesses) <= 3
    assert result.strengths[0]["feature"] == "industry_match"
    earned = [r["contribution"] for r in result.strengths]
    assert earned == sorted(earned, reverse=True) and all(c > 0 for c in earned)
    missed = [r["feature"] for r in result.weaknesses]
    assert missed[:2] == ["decision_maker_email", "employee_fit"]
    assert result.weaknesses[0]["value"] == "role address, unverified"
    assert result.weaknesses[1]["value"] == "headcount unknown"
    assert len({r["feature"] for r in result.reasons}) == len(result.reasons)
    assert sum(earned) <= result.value + 1e-9


def test_a_criterion_the_icp_does_not_name_drops_out_instead_of_counting_as_missing() -> None:
    sparse_icp = parse_icp({"ssic_codes": ["62011"]})
    features = build_features(company_row(), sparse_icp, crawl_row(), [CEO], {"mei@nimbus.sg": "deliverable"})
    assert features.employee_fit is None and features.keyword_match is None and features.preferred_title is None
    result = score(features, tenant_id=TENANT)
    applicable = {n: v for n, v in features.values().items() if v is not None}
    expected = sum(DEFAULT_WEIGHTS[n] * v for n, v in applicable.items()) / sum(DEFAULT_WEIGHTS[n] for n in applicable)
    assert result.value == pytest.approx(expected, abs=1e-5)
    assert not {"employee_fit", "keyword_match"} & {r["feature"] for r in result.reasons}


def test_tenant_weights_from_the_icp_change_the_score() -> None:
    features = build_features(company_row(), SOFTWARE_ICP, crawl_row(), [INFO], {})
    baseline = score(features, tenant_id=TENANT)
    icp = parse_icp({**SOFTWARE_ICP.model_dump(mode="json", exclude_none=True),
                     "score_weights": {"decision_maker_email": 0.0, "preferred_title": 0.0}})
    reweighted = score(features, icp.score_weights, tenant_id=TENANT)
    assert reweighted.value > baseline.value
    assert "decision_maker_email" not in {r["feature"] for r in reweighted.reasons}
    assert reweighted.features_hash != baseline.features_hash


def test_features_hash_is_stable_and_specific_to_tenant_and_company() -> None:
    features = strong_features()
    result = score(features, tenant_id=TENANT)
    reordered = LeadFeatures.model_validate(dict(reversed(list(features.to_dict().items()))))
    assert features_hash(TENANT, reordered, result.reasons) == result.features_hash
    assert score(features, tenant_id=TENANT + 1).features_hash != result.features_hash
    twin = build_features(company_row(2), SOFTWARE_ICP, crawl_row(), [CEO, INFO], {"mei@nimbus.sg": "deliverable"})
    assert twin.values() == features.values()
    assert score(twin, tenant_id=TENANT).features_hash != result.features_hash


def test_features_are_json_and_come_back_equal() -> None:
    features = strong_features()
    assert LeadFeatures.model_validate(json.loads(json.dumps(features.to_dict()))) == features


# -- features ------------------------------------------------------------------------------------
def test_icp_fit_features() -> None:
    features = strong_features()
    assert features.industry_match == 1.0 and features.raw["industry_match"] == "SSIC 62011 matches 62011"
    assert features.company_age_fit == 1.0 and features.employee_fit == 1.0 and features.live_status is True
    # "saas", "platform", "cloud" from the page titles and meta description: 3 keywords are full marks.
    assert features.keyword_match == 1.0 and features.raw["keyword_match"] == ["saas", "platform", "cloud"]

    division = build_features(company_row(ssic_code="62090"), SOFTWARE_ICP, None, [], {})
    assert division.industry_match == pytest.approx(0.84) and division.raw["industry_match"] == "SSIC 62090 matches 620"
    older = build_features(company_row(incorporation_year=2002, employees_estimate=1000), SOFTWARE_ICP, None, [], {})
    assert older.company_age_fit == pytest.approx(0.4) and older.employee_fit == pytest.approx(0.5)
    small = build_features(company_row(employees_estimate=4, employees_source="stated"), SOFTWARE_ICP, None, [], {})
    assert small.employee_fit == pytest.approx(0.4)


def test_a_headcount_the_model_inferred_is_a_range_and_counts_half() -> None:
    crawl = crawl_row(profile_data=profile(employees_estimate=80))
    crawl["extraction"]["headcount"] = {"source": "inferred", "exact": None, "low": 51, "high": 200}
    guessed = build_features(company_row(employees_estimate=None, employees_source=None), SOFTWARE_ICP, crawl, [], {})
    assert guessed.employee_fit == pytest.approx(0.5)
    assert guessed.raw["employee_fit"] == "51–200 employees (inferred)"
    assert guessed.phrases["employee_fit"] == ("an estimated 51–200 employees (inferred, so it counts half), "
                                               "inside the ICP's 10–500")
    stated = build_features(company_row(employees_estimate=42, employees_source="stated"), SOFTWARE_ICP, None, [], {})
    assert stated.employee_fit == 1.0
    assert stated.phrases["employee_fit"] == "42 employees stated on the site, inside the ICP's 10–500"
    # The model's own number in the profile is never read as a headcount.
    nothing = build_features(company_row(employees_estimate=None, employees_source=None), SOFTWARE_ICP,
                             crawl_row(profile_data=profile(employees_estimate=80)), [], {})
    assert nothing.employee_fit == 0.0 and nothing.phrases["employee_fit"] == "headcount not stated anywhere we looked"
    # A number stored before headcounts carried their source is treated as the guess it may have been.
    legacy = build_features(company_row(employees_estimate=80, employees_source=None), SOFTWARE_ICP, None, [], {})
    assert legacy.employee_fit == pytest.approx(0.5)


def test_keywords_are_read_from_the_stored_corpus_when_there_is_one() -> None:
    bare = signals(pages=[], meta={})
    without = build_features(company_row(), SOFTWARE_ICP, crawl_row(signals_data=bare, profile_data={}), [], {})
    with_corpus = build_features(company_row(), SOFTWARE_ICP,
                                 crawl_row(signals_data=bare, profile_data={}, corpus="Our SaaS platform runs..."),
                                 [], {})
    assert without.keyword_match == 0.0
    assert with_corpus.keyword_match == pytest.approx(2 / 3)


def test_web_signal_features() -> None:
    features = strong_features()
    assert features.website_reachable and features.pricing_page and features.case_studies
    assert features.key_pages == 0.75 and features.raw["key_pages"] == ["about", "contact", "products"]
    assert features.hiring == pytest.approx(0.8)
    assert features.tech_match == 1.0 and features.raw["tech_match"] == ["Stripe"]
    blocked = build_features(company_row(), SOFTWARE_ICP,
                             crawl_row(signals_data=signals(crawl={"outcome": "blocked", "pages_fetched": 0},
                                                            tech=[], has_careers=False, open_roles=0)), [], {})
    assert not blocked.website_reachable and blocked.tech_match == 0.0 and blocked.hiring == 0.0


@pytest.mark.parametrize(("contacts", "verification", "expected"), [
    ([CEO], {"mei@nimbus.sg": "deliverable"}, 1.0),
    ([CEO], {"mei@nimbus.sg": "risky"}, 0.5),
    ([CEO], {}, 0.3),
    ([CEO], {"mei@nimbus.sg": "suppressed"}, 0.0),
    ([INFO], {"info@nimbus.sg": "deliverable"}, 0.25),
    ([INFO, CEO], {"info@nimbus.sg": "deliverable", "mei@nimbus.sg": "risky"}, 0.5),
    ([{**CEO, "title": "Sales Executive", "seniority": 2}], {"mei@nimbus.sg": "deliverable"}, 0.6),
    ([{**CEO, "seniority": 6}], {"mei@nimbus.sg": "deliverable"}, 1.0),
    ([], {}, 0.0),
])
def test_decision_maker_email_follows_the_verification_policy(contacts: list[dict[str, Any]],
                                                              verification: dict[str, str], expected: float) -> None:
    features = build_features(company_row(), SOFTWARE_ICP, None, contacts, verification)
    assert features.decision_maker_email == pytest.approx(expected)
    assert "@" not in str(features.raw["decision_maker_email"])


def test_contactability_and_data_quality_features() -> None:
    features = build_features(company_row(), SOFTWARE_ICP,
                              crawl_row(degraded_reasons=["crawl thin"], profile_data=profile(confidence=0.6)),
                              [INFO, {**CEO, "title": "Co-Founder & CTO"}], {})
    assert features.preferred_title is True and features.raw["preferred_title"] == "Co-Founder & CTO"
    assert features.phone is True and features.raw["phone"] == "website phone"
    assert features.stages_complete == 0.75 and features.extraction_confidence == pytest.approx(0.6)
    nothing = build_features(company_row(), SOFTWARE_ICP, None, [INFO], {})
    assert nothing.preferred_title is False and nothing.phone is False
    assert nothing.stages_complete == 0.0 and nothing.extraction_confidence == 0.0


# -- properties ----------------------------------------------------------------------------------
def _feature_value(name: str) -> st.SearchStrategy[Any]:
    value: st.SearchStrategy[Any] = st.booleans() if name in BOOL_FEATURES else st.floats(0.0, 1.0)
    return st.one_of(st.none(), value) if name in OPTIONAL_FEATURES else value


feature_sets = st.fixed_dictionaries({name: _feature_value(name) for name in FEATURE_NAMES}).map(
    lambda values: LeadFeatures(uen="201900001K", company_name="Nimbus", **values))
weight_sets = st.one_of(st.none(), st.dictionaries(st.sampled_from(FEATURE_NAMES), st.floats(0.0, 5.0)).filter(
    lambda overrides: sum({**DEFAULT_WEIGHTS, **overrides}.values()) > 0))


@settings(max_examples=300, deadline=None)
@given(features=feature_sets, weights=weight_sets, data=st.data())
def test_score_is_monotonic_in_every_feature(features: LeadFeatures, weights: dict[str, float] | None,
                                             data: st.DataObject) -> None:
    present = [n for n, v in features.values().items() if v is not None]
    name = data.draw(st.sampled_from(present))
    current = getattr(features, name)
    better = True if isinstance(current, bool) else data.draw(st.floats(current, 1.0))
    improved = features.model_copy(update={name: better})
    assert score(improved, weights, tenant_id=TENANT).value >= score(features, weights, tenant_id=TENANT).value


@settings(max_examples=300, deadline=None)
@given(features=feature_sets, weights=weight_sets)
def test_score_stays_in_range_and_its_bucket_is_the_bucket_function(features: LeadFeatures,
                                                                    weights: dict[str, float] | None) -> None:
    result = score(features, weights, tenant_id=TENANT)
    assert 0.0 <= result.value <= 1.0
    assert result.bucket == bucket_of(result.value)
    assert len(result.strengths) <= 3 and len(result.weaknesses) <= 3


# -- the night's tables --------------------------------------------------------------------------
@pytest.mark.database
def test_scoring_inputs_store_and_shortlist(db: Database) -> None:
    tenant = register_tenant(db)
    ids = [insert_company(db, company_row(n)) for n in (1, 2, 3)]
    run_date = dt.date(2026, 6, 1)
    run_id = create_run(db, tenant, [ids[2], ids[0], ids[1]], run_date)
    save_crawl(db, tenant, run_id, ids[0], crawl_row())
    insert_contact(db, tenant, ids[0], CEO)
    insert_contact(db, tenant, ids[0], INFO)
    insert_verification(db, tenant, "mei@nimbus.sg", "deliverable")
    insert_verification(db, tenant, "info@nimbus.sg", "risky", expired=True)

    with db.tenant(tenant) as conn:
        inputs = scores_db.scoring_inputs(conn, run_id)
    assert [i.company_id for i in inputs] == [ids[2], ids[0], ids[1]]
    first = next(i for i in inputs if i.company_id == ids[0])
    assert first.crawl is not None and first.crawl["signals"]["open_roles"] == 3
    assert [c["email"] for c in first.contacts] == ["mei@nimbus.sg", "info@nimbus.sg"]
    assert first.verification == {"mei@nimbus.sg": "deliverable"}
    assert inputs[0].crawl is None and inputs[0].contacts == []

    results = {}
    with db.tenant(tenant) as conn:
        for item in inputs:
            features = build_features(item.company, SOFTWARE_ICP, item.crawl, item.contacts, item.verification)
            result = score(features, tenant_id=tenant)
            results[item.company_id] = result
            scores_db.upsert_features(conn, item.company_id, run_date, features.to_dict(), result.features_hash)
        scores_db.upsert_scores(conn, run_date, [
            scores_db.ScoreRow(cid, r.value, r.bucket, r.reasons, "because", "template", r.features_hash)
            for cid, r in results.items()])
        shortlisted = scores_db.mark_shortlist(conn, run_date, 2)
        stored = scores_db.scores_for(conn, run_date)
        stored_features = conn.execute("SELECT company_id, features FROM lead_features").fetchall()

    best = sorted(results, key=lambda cid: (-results[cid].value, cid))
    assert shortlisted == best[:2]
    assert [row["company_id"] for row in stored] == best
    assert [row["shortlisted"] for row in stored] == [True, True, False]
    assert float(stored[0]["score"]) == pytest.approx(results[best[0]].value)
    assert {row["company_id"]: LeadFeatures.model_validate(row["features"]).values()
            for row in stored_features}[ids[0]]["tech_match"] == 1.0

    with db.tenant(tenant) as conn:
        assert scores_db.mark_shortlist(conn, run_date, 1) == best[:1]
        assert [row["shortlisted"] for row in scores_db.scores_for(conn, run_date)] == [True, False, False]


def test_a_buyer_title_behind_a_suppressed_address_does_not_count() -> None:
    reachable = build_features(company_row(), SOFTWARE_ICP, None, [CEO, INFO], {"mei@nimbus.sg": "risky"})
    suppressed = build_features(company_row(), SOFTWARE_ICP, None, [CEO, INFO], {"mei@nimbus.sg": "suppressed"})
    assert reachable.preferred_title is True and suppressed.preferred_title is False
    assert suppressed.phrases["preferred_title"] == "no contact titled CEO, Founder or CTO"
