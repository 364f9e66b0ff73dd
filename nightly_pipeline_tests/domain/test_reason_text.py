"""Reasons and rationales read as words for people, over many combinations of features, and a
model's rationale is held to the facts in the reasons."""
from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nightly_pipeline.domain.icp import parse_icp
from nightly_pipeline.scoring.score import FEATURE_NAMES, LeadFeatures, build_features, score
from nightly_pipeline.scoring.rationale import build_messages, template_rationale
from nightly_pipeline.scoring.rationale_check import unsupported_claims
from nightly_pipeline_tests.kit.scoring import CEO, INFO, SOFTWARE_ICP, company_row, crawl_row, profile, \
    signals

TENANT = 3
# What a raw value looks like when it leaks into a sentence.
RAW_LEAKS = re.compile(r"\bTrue\b|\bFalse\b|\bNone\b|\[\]|\{\}|\[\s*'|\bnan\b|_[a-z]+_|\b[a-z]+_[a-z]+\b")

icps = st.fixed_dictionaries({}, optional={
    "ssic_codes": st.sampled_from([["62011"], ["620", "631"], ["46"]]),
    "industries": st.sampled_from([["software"], ["logistics", "freight"]]),
    "incorporation_year": st.sampled_from([{"min": 2005, "max": 2022}, {"min": 2015}, {"max": 2000}]),
    "employee_range": st.sampled_from([{"min": 10, "max": 500}, {"min": 50}, {"max": 20}]),
    "preferred_titles": st.sampled_from([["CEO"], ["CEO", "Founder", "CTO"]]),
    "keywords": st.sampled_from([["saas"], ["saas", "cloud", "stripe", "platform"], ["hubspot"]]),
}).map(parse_icp)

headcounts = st.sampled_from([
    {"employees_estimate": 42, "employees_source": "stated"},
    {"employees_estimate": 900, "employees_source": "structured"},
    {"employees_estimate": None, "employees_source": "inferred", "employees_min": 11, "employees_max": 50},
    {"employees_estimate": None, "employees_source": "stated", "employees_min": 200, "employees_max": None},
    {"employees_estimate": None, "employees_source": None},
    {"employees_estimate": 7, "employees_source": None},
])
companies = st.builds(
    lambda base, count, ssic, year, status: company_row(**{**base, **count, **ssic, **status,
                                                           "incorporation_year": year}),
    st.just({}), headcounts,
    st.sampled_from([{"ssic_code": "62011"}, {"ssic_code": "46900", "ssic_description": "WHOLESALE TRADE"},
                     {"ssic_code": None, "ssic_description": None}]),
    st.one_of(st.none(), st.integers(1970, 2030)),
    st.sampled_from([{"entity_status": "Live Company", "is_live": True},
                     {"entity_status": "Struck Off", "is_live": False}, {"entity_status": None, "is_live": False}]))

page_sets = st.lists(st.sampled_from(["home", "about", "contact", "products", "team", "news"]), unique=True)
tech_sets = st.lists(st.sampled_from([{"name": "Stripe", "category": "payments"},
                                      {"name": "HubSpot", "category": "crm"},
                                      {"name": "WordPress", "category": "cms"}]), unique_by=lambda t: t["name"])
crawls = st.one_of(st.none(), st.builds(
    lambda kinds, tech, careers, roles, pricing, cases, outcome, phones, reasons, confidence, extraction: crawl_row(
        degraded_reasons=reasons,
        signals_data=signals(pages=[{"url": f"http://nimbus.sg/{k}", "kind": k, "title": k, "text_chars": 300}
                                    for k in kinds], tech=tech, has_careers=careers, open_roles=roles,
                             has_pricing=pricing, has_case_studies=cases, phones=phones,
                             crawl={"outcome": outcome, "pages_fetched": len(kinds)}),
        profile_data=profile(confidence=confidence) if extraction else {}),
    page_sets, tech_sets, st.booleans(), st.integers(0, 8), st.booleans(), st.booleans(),
    st.sampled_from(["ok", "blocked", "unreachable", "robots_disallowed", None]),
    st.sampled_from([[], ["+6561234567"]]), st.lists(st.sampled_from(["crawl thin", "no fallback"]), max_size=2),
    st.floats(0.0, 1.0), st.booleans()))
contact_sets = st.lists(st.sampled_from([
    CEO, INFO, {**CEO, "email": "lim@nimbus.sg", "title": "Sales Executive", "seniority": 1, "phone": "+6591234567"},
    {**CEO, "email": "x@gmail.com", "title": None, "full_name": None}]), unique_by=lambda c: c["email"], max_size=3)
policies = st.sampled_from(["deliverable", "risky", "suppressed"])


def texts_of(features: LeadFeatures) -> list[str]:
    result = score(features, tenant_id=TENANT)
    return ([r["text"] for r in result.reasons] + [c["text"] for c in result.contributions]
            + [template_rationale(features.company_name, result), str(build_messages(features.company_name,
                                                                                     result)[1].content)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(company=companies, icp=icps, crawl=crawls, contacts=contact_sets, data=st.data())
def test_reasons_and_rationales_never_show_raw_values(company: dict[str, Any], icp, crawl, contacts,
                                                      data: st.DataObject) -> None:
    verification = {c["email"]: data.draw(policies) for c in contacts if data.draw(st.booleans())}
    features = build_features(company, icp, crawl, contacts, verification)
    assert set(features.phrases) == {n for n, v in features.values().items() if v is not None}
    for text in texts_of(features):
        assert RAW_LEAKS.search(text) is None, text
    result = score(features, tenant_id=TENANT)
    # The template says nothing the reasons do not: the faithfulness check never rejects it.
    assert unsupported_claims(template_rationale(features.company_name, result), features.company_name, result) == []


@settings(max_examples=200, deadline=None)
@given(values=st.fixed_dictionaries({name: st.floats(0.0, 1.0) for name in FEATURE_NAMES
                                     if name not in {"live_status", "website_reachable", "pricing_page",
                                                     "case_studies", "phone", "preferred_title"}}),
       flags=st.fixed_dictionaries({name: st.one_of(st.none(), st.booleans()) if name == "preferred_title"
                                    else st.booleans()
                                    for name in ("live_status", "website_reachable", "pricing_page", "case_studies",
                                                 "phone", "preferred_title")}))
def test_features_without_recorded_phrases_still_read_as_words(values: dict[str, float],
                                                               flags: dict[str, bool | None]) -> None:
    features = LeadFeatures(uen="201900001K", company_name="Nimbus", **values, **flags)
    for text in texts_of(features):
        assert RAW_LEAKS.search(text) is None, text


@pytest.mark.parametrize(("changes", "crawl", "feature", "expected"), [
    ({}, crawl_row(signals_data=signals(tech=[])), "tech_match", "no tech stack seen on the site"),
    ({}, crawl_row(signals_data=signals(has_case_studies=False)), "case_studies", "no case studies page"),
    ({"employees_estimate": 42, "employees_source": "stated"}, None, "employee_fit",
     "42 employees stated on the site, inside the ICP's 10–500"),
    ({"employees_estimate": 900, "employees_source": "structured"}, None, "employee_fit",
     "900 employees in the site's structured data, above the ICP's 10–500"),
    ({}, crawl_row(), "tech_match", "Stripe on the site, named in the ICP's keywords"),
    ({}, crawl_row(signals_data=signals(tech=[{"name": "React", "category": "js framework"}])), "tech_match",
     "site technologies (React) that match none of the ICP's keywords"),
    ({}, crawl_row(), "hiring", "3 open roles on the careers page"),
    ({}, crawl_row(), "key_pages", "about, contact and products pages, but no team page"),
    ({"incorporation_year": 1998}, None, "company_age_fit", "incorporated in 1998, before the ICP's 2005–2024"),
    ({"entity_status": "Struck Off", "is_live": False}, None, "live_status",
     "registry status Struck Off, not a live company"),
    ({}, None, "website_reachable", "no website to crawl"),
    ({}, crawl_row(signals_data=signals(crawl={"outcome": "robots_disallowed", "pages_fetched": 0})),
     "website_reachable", "website disallows crawlers in robots.txt"),
    ({}, None, "decision_maker_email", "only a shared mailbox such as info@, not verified yet"),
    ({}, None, "preferred_title", "no contact titled CEO, Founder or CTO"),
    ({}, crawl_row(degraded_reasons=["crawl thin"]), "stages_complete",
     "3 of 4 enrichment steps completed in full"),
])
def test_reason_phrases(changes: dict[str, Any], crawl: dict[str, Any] | None, feature: str, expected: str) -> None:
    features = build_features(company_row(**changes), SOFTWARE_ICP, crawl, [INFO], {})
    assert features.phrases[feature] == expected


def nimbus():
    features = build_features(company_row(employees_estimate=42, employees_source="stated"), SOFTWARE_ICP,
                              crawl_row(signals_data=signals(tech=[])), [CEO, INFO], {"mei@nimbus.sg": "risky"})
    return features, score(features, tenant_id=TENANT)


@pytest.mark.parametrize("rationale", [
    "Nimbus Apps 1 is a strong fit thanks to its industry code 62011 and 42 employees stated on the site.",
    "A High lead: a published pricing page and case studies, held back by no tech stack seen on the site.",
    "The company's industry code is one of the ICP's codes, though no tech stack was seen on the site.",
])
def test_a_rationale_that_sticks_to_the_reasons_passes(rationale: str) -> None:
    features, result = nimbus()
    assert unsupported_claims(rationale, features.company_name, result) == []


@pytest.mark.parametrize(("rationale", "claim"), [
    ("Nimbus Apps 1 has 250 employees in the ICP's range.", "number 250"),
    ("Nimbus Apps 1 uses Salesforce and Stripe.", "technology Salesforce"),
    ("The CFO is reachable and the industry code fits.", "title cfo"),
    ("Reach Mei at mei@nimbus.sg about its industry code.", "an address or web link"),
    ("A fast-growing platform that recently raised funding.", "claim 'funding'"),
    ("A High lead, like its sister company Harbourline.", "name 'Harbourline'"),
    ("Only two decision makers were found for its industry code.", "number two"),
])
def test_a_rationale_stating_a_fact_missing_from_the_reasons_is_caught(rationale: str, claim: str) -> None:
    features, result = nimbus()
    assert claim in unsupported_claims(rationale, features.company_name, result)
