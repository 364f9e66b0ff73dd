import datetime as dt
import io

import pytest

from nightly_pipeline.domain.acra import (
    AcraFileError,
    core_name,
    display_name,
    normalize_company,
    parse_acra_csv,
    parse_acra_text,
)

HEADER = ("uen,entity_name,entity_type_description,entity_status_description,registration_incorporation_date,"
          "primary_ssic_code,primary_ssic_description,postal_code,street_name,website\n")
GOOD = "201912345K,ACME ROBOTICS PTE. LTD.,Local Company,Live Company,2019-05-01,62011,SOFTWARE,068914,ANSON ROAD,https://www.acme-robotics.com.sg/about\n"


@pytest.mark.parametrize("row, reason", [
    (",NO UEN PTE LTD,Local Company,Live,2019-01-01,62011,x,1,y,", "missing uen"),
    ("2019ABC,BAD UEN,Local Company,Live,2019-01-01,62011,x,1,y,", "malformed uen '2019ABC'"),
    ("201900001A,,Local Company,Live,2019-01-01,62011,x,1,y,", "missing entity_name"),
    ("201900002A,BAD DATE,Local Company,Live,31-31-2019,62011,x,1,y,", "unparseable registration_incorporation_date '31-31-2019'"),
    ("201900003A,BAD SSIC,Local Company,Live,2019-01-01,62O11,x,1,y,", "non-numeric primary_ssic_code '62O11'"),
    ("201900004A,LONG SSIC,Local Company,Live,2019-01-01,620111,x,1,y,", "primary_ssic_code '620111' has more than 5 digits"),
    ("201900005A," + "X" * 301 + ",Local Company,Live,2019-01-01,62011,x,1,y,", "entity_name is 301 characters long (at most 300)"),
    ("201900006A,EXTRA,Local Company,Live,2019-01-01,62011,x,1,y,,surplus", "more fields than the header has columns"),
])
def test_bad_rows_are_reported_by_line_and_good_rows_still_load(row, reason):
    result = parse_acra_text(HEADER + GOOD + row + "\n" + GOOD.replace("201912345K", "201912346L"))
    assert [r.uen for r in result.rows] == ["201912345K", "201912346L"]
    assert len(result.errors) == 1
    assert result.errors[0].line == 3
    assert result.errors[0].reason.startswith(reason)


def test_duplicate_uen_keeps_the_first_and_names_its_line():
    result = parse_acra_text(HEADER + GOOD + GOOD.replace("ACME", "OTHER"))
    assert len(result.rows) == 1 and result.rows[0].entity_name.startswith("ACME")
    assert str(result.errors[0]) == "line 3 (uen 201912345K): duplicate uen (first on line 2)"


def test_missing_required_columns_is_a_file_error():
    with pytest.raises(AcraFileError, match="missing required column\\(s\\): primary_ssic_code, postal_code"):
        parse_acra_text("uen,entity_name,entity_type_description,entity_status_description,"
                        "registration_incorporation_date,primary_ssic_description,street_name\n")
    with pytest.raises(AcraFileError, match="empty"):
        parse_acra_csv(io.StringIO(""))


def test_extra_dataset_columns_are_kept_and_header_case_is_ignored():
    text = HEADER.upper().replace("\n", ",BLOCK\n") + GOOD.replace("\n", ",12\n")
    row = parse_acra_text(text).rows[0]
    assert row.extra == {"block": "12"}


@pytest.mark.parametrize("field, value, expected", [
    ("registration_incorporation_date", "01/05/2019", dt.date(2019, 5, 1)),
    ("primary_ssic_code", "1111", "01111"),
])
def test_lenient_but_unambiguous_forms(field, value, expected):
    columns = HEADER.strip().split(",")
    values = GOOD.strip().split(",")
    values[columns.index(field)] = value
    row = parse_acra_text(HEADER + ",".join(values) + "\n").rows[0]
    assert getattr(row, field) == expected


@pytest.mark.parametrize("legal, shown, core", [
    ("ACME ROBOTICS PTE. LTD.", "Acme Robotics Pte. Ltd.", "ACME ROBOTICS"),
    ("NEXUS IT SERVICES PRIVATE LIMITED", "Nexus IT Services Private Limited", "NEXUS IT SERVICES"),
    ("KATONG DATA", "Katong Data", "KATONG DATA"),
    ("Lion-City Apps Pte Ltd", "Lion-City Apps Pte Ltd", "Lion-City Apps"),
    ("BANYAN  CAPITAL   PTE LTD", "Banyan Capital Pte. Ltd.", "BANYAN CAPITAL"),
])
def test_name_clean_up(legal, shown, core):
    assert display_name(legal) == shown
    assert core_name(" ".join(legal.split())) == core


@pytest.mark.parametrize("status, website, live, domain", [
    ("Live Company", "https://www.acme-robotics.com.sg/about", True, "acme-robotics.com.sg"),
    ("Live", "acme.sg", True, "acme.sg"),
    ("Struck Off", "http://shop.acme.com/", False, "acme.com"),
    ("Gazetted to be Struck Off", "n/a", False, None),
    ("Live Company", "info@acme.com", True, None),
    ("Live Company", "", True, None),
])
def test_normalization(status, website, live, domain):
    columns = HEADER.strip().split(",")
    values = GOOD.strip().split(",")
    values[columns.index("entity_status_description")] = status
    values[columns.index("website")] = website
    company = normalize_company(parse_acra_text(HEADER + ",".join(values) + "\n").rows[0])
    assert company.is_live is live
    assert company.website_domain == domain
    assert company.ssic_code == "62011"
    assert company.incorporation_year == 2019
    assert company.name == "Acme Robotics Pte. Ltd."


def test_row_hash_changes_with_content():
    a = parse_acra_text(HEADER + GOOD).rows[0]
    b = parse_acra_text(HEADER + GOOD.replace("ANSON ROAD", "CECIL STREET")).rows[0]
    assert a.row_hash != b.row_hash
    assert a.row_hash == parse_acra_text(HEADER + GOOD).rows[0].row_hash


def test_the_shipped_sample_is_clean():
    from importlib import resources

    text = (resources.files("nightly_pipeline") / "data" / "acra_sample.csv").read_text(encoding="utf-8")
    result = parse_acra_text(text)
    assert result.errors == []
    assert len(result.rows) >= 250
    assert len({r.primary_ssic_code for r in result.rows}) >= 10
