"""Headcounts that say where they came from: what a site states is kept exactly with its source; a
model's reading is only ever a size band; a better source is never replaced by a worse one."""
from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from nightly_pipeline.crawl.signals import merge_site_signals, page_signals
from nightly_pipeline.db import Database
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.domain import headcount
from nightly_pipeline.domain.headcount import SOURCE_RANK, Headcount
from nightly_pipeline.stages.crawl import resolve_headcount
from nightly_pipeline.stages.extraction import ExtractionResult
from nightly_pipeline.stages.extraction_profile import CompanyProfile
from nightly_pipeline_tests.kit.scoring import company_row, insert_company

NOW = dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.timezone.utc)


def site(*pages: tuple[str, str]):
    return merge_site_signals([page_signals(url, html, {}, "acme.com.sg") for url, html in pages])


def model_said(employees: int | None, confidence: float = 0.9, source: str = "llm") -> ExtractionResult:
    profile = CompanyProfile(employees_estimate=employees, employees_estimate_confidence=confidence)
    return ExtractionResult(profile, source, False, None, 10, "hash")


JSON_LD = ('<script type="application/ld+json">{"@type":"Organization","name":"Acme",'
           '"numberOfEmployees":{"@type":"QuantitativeValue","value":42}}</script>')
ABOUT = ("<html><body><main><p>Founded in 2012, Acme is a freight forwarder with a team of 37 people.</p>"
         "</main></body></html>")
QUIET = "<html><body><main><p>Acme moves freight across Asia for manufacturers and retailers.</p></main></body></html>"


def test_structured_data_is_kept_exactly_and_beats_the_model() -> None:
    found = resolve_headcount(site(("https://acme.com.sg/", f"<html><head>{JSON_LD}</head><body></body></html>")),
                              model_said(100))
    assert found == Headcount(source="structured", exact=42, low=42, high=42)
    assert found.label == "42" and found.source_words == "in the site's structured data"


def test_the_sites_words_are_kept_exactly_and_beat_the_model() -> None:
    found = resolve_headcount(site(("https://acme.com.sg/about", ABOUT)), model_said(100))
    assert found == headcount.exact(37, "stated") and found.source_words == "stated on the site"


def test_a_stated_range_stays_a_range() -> None:
    ranged = ('<script type="application/ld+json">{"@type":"Organization","name":"Acme",'
              '"numberOfEmployees":{"@type":"QuantitativeValue","minValue":11,"maxValue":50}}</script>')
    found = resolve_headcount(site(("https://acme.com.sg/", f"<html><head>{ranged}</head></html>")), model_said(30))
    assert (found.source, found.exact, found.label) == ("structured", None, "11–50")


@pytest.mark.parametrize(("guess", "band"), [(1, "1–10"), (12, "11–50"), (50, "11–50"), (180, "51–200"),
                                             (999, "501–1,000"), (25_000, "10,001+")])
def test_without_a_statement_the_models_number_becomes_a_size_band(guess: int, band: str) -> None:
    found = resolve_headcount(site(("https://acme.com.sg/about", QUIET)), model_said(guess))
    assert found.source == "inferred" and found.exact is None and found.label == band


@pytest.mark.parametrize("extraction", [model_said(None), model_said(120, confidence=0.3),
                                        model_said(120, source="deterministic")])
def test_no_statement_and_no_confident_model_reading_is_no_headcount(extraction: ExtractionResult) -> None:
    assert resolve_headcount(site(("https://acme.com.sg/about", QUIET)), extraction) == headcount.UNKNOWN


def test_an_inferred_headcount_can_never_hold_an_exact_number() -> None:
    with pytest.raises(ValueError, match="range"):
        Headcount(source="inferred", exact=120, low=51, high=200)


def stored_headcount(db: Database, company_id: int) -> dict:
    with db.shared() as conn:
        return conn.execute("""SELECT employees_estimate, employees_min, employees_max, employees_source
                               FROM companies WHERE company_id = %s""", (company_id,)).fetchone()


@pytest.mark.database
def test_a_better_source_is_never_replaced_by_a_worse_one(db: Database) -> None:
    company_id = insert_company(db, company_row(employees_estimate=None, employees_source=None))

    def record(found: Headcount) -> bool:
        with db.shared() as conn:
            return enrichment_db.record_headcount(conn, company_id, found.to_dict(), SOURCE_RANK[found.source],
                                                  crawled_at=NOW)

    assert record(headcount.inferred(120))
    assert stored_headcount(db, company_id) == {"employees_estimate": None, "employees_min": 51,
                                                "employees_max": 200, "employees_source": "inferred"}
    assert record(headcount.exact(37, "stated"))
    assert not record(headcount.inferred(900))
    assert stored_headcount(db, company_id) == {"employees_estimate": 37, "employees_min": 37, "employees_max": 37,
                                                "employees_source": "stated"}
    assert record(headcount.exact(42, "structured"))
    assert stored_headcount(db, company_id)["employees_estimate"] == 42


@pytest.mark.database
def test_the_table_refuses_an_exact_inferred_headcount(db: Database) -> None:
    company_id = insert_company(db, company_row(employees_estimate=None, employees_source=None))
    with pytest.raises(psycopg.errors.CheckViolation), db.shared() as conn:
        conn.execute("UPDATE companies SET employees_source = 'inferred', employees_estimate = 120 "
                     "WHERE company_id = %s", (company_id,))
