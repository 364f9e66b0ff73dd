import pytest

from nightly_pipeline.domain.icp import CompanyFacts, IcpError, match_company, parse_icp

CONTRACT_EXAMPLE = """{"ssic_codes": ["62011", "62021"], "industries": ["software"],
 "entity_status": ["Live", "Live Company"], "incorporation_year": {"min": 2005, "max": 2022},
 "employee_range": {"min": 10, "max": 500}, "preferred_titles": ["CEO", "Founder", "CTO"],
 "keywords": ["saas", "platform"], "exclude_uens": []}"""


def company(**overrides) -> CompanyFacts:
    base = dict(company_id=1, uen="201912345K", ssic_code="62011",
                ssic_description="DEVELOPMENT OF SOFTWARE AND APPLICATIONS", entity_status="Live Company",
                is_live=True, incorporation_year=2015)
    return CompanyFacts(**{**base, **overrides})


def test_the_contract_example_parses():
    icp = parse_icp(CONTRACT_EXAMPLE)
    assert icp.ssic_codes == ("62011", "62021")
    assert icp.incorporation_year.min == 2005 and icp.employee_range.max == 500


def test_every_key_is_optional():
    assert parse_icp({}) == parse_icp("{}")


@pytest.mark.parametrize("payload, message", [
    ({"ssic": ["62011"]}, "unknown key 'ssic' in ICP"),
    ({"incorporation_year": {"min": 2005, "maximum": 2010}}, "unknown key 'incorporation_year.maximum' in ICP"),
    ({"ssic_codes": "62011"}, "ICP key 'ssic_codes': Input should be a list"),
    ({"ssic_codes": [62011]}, "ICP key 'ssic_codes': Input should be a valid string"),
    ({"ssic_codes": ["62-011"]}, "ICP key 'ssic_codes': '62-011' is not an SSIC code or prefix"),
    ({"incorporation_year": {"min": "2005"}}, "ICP key 'incorporation_year.min': Input should be a valid integer"),
    ({"incorporation_year": {"min": 2020, "max": 2000}}, "ICP key 'incorporation_year': min 2020 is greater than max 2000"),
    ({"employee_range": {"min": -1}}, "ICP key 'employee_range.min'"),
    ({"keywords": ["saas", " "]}, "ICP key 'keywords': entries must be non-empty strings"),
    ("[1, 2]", "ICP must be a JSON object, got list"),
    ("{nope", "ICP is not valid JSON"),
])
def test_wrong_keys_and_types_are_named(payload, message):
    with pytest.raises(IcpError) as err:
        parse_icp(payload)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("icp, facts, matched, criterion", [
    ({"ssic_codes": ["62011"]}, {}, True, "ssic_code"),
    ({"ssic_codes": ["62"]}, {"ssic_code": "62090"}, True, "ssic_code"),
    ({"ssic_codes": ["62011"]}, {"ssic_code": "70201"}, False, None),
    ({"industries": ["software"]}, {"ssic_code": "99999"}, True, "industry"),
    ({"industries": ["logistics"]}, {}, False, None),
    ({}, {"is_live": False, "entity_status": "Struck Off"}, False, None),
    ({"entity_status": ["Struck Off"]}, {"is_live": False, "entity_status": "Struck Off"}, True, "industry"),
    ({"incorporation_year": {"min": 2016}}, {}, False, None),
    ({"incorporation_year": {"max": 2015}}, {}, True, "industry"),
    ({"incorporation_year": {"min": 2000}}, {"incorporation_year": None}, False, None),
    ({"exclude_uens": ["201912345k"]}, {}, False, None),
])
def test_matching(icp, facts, matched, criterion):
    result = match_company(parse_icp(icp), company(**facts))
    assert (result is not None) is matched
    if matched:
        assert result.reasons[0]["criterion"] == criterion


def test_exact_codes_outrank_prefixes_and_industry_words():
    icp = parse_icp({"ssic_codes": ["62011", "70"], "industries": ["consultancy"]})
    exact = match_company(icp, company())
    prefix = match_company(icp, company(ssic_code="70201", ssic_description="MANAGEMENT CONSULTANCY"))
    assert exact.score > prefix.score
    assert {"criterion": "entity_status", "value": "Live Company", "matched": "live"} in exact.reasons
