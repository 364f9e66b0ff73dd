"""ACRA staging rows and the shared ``companies`` table."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import psycopg

from nightly_pipeline.db.rows import MappingRow
from nightly_pipeline.domain.acra import CompanyRecord, StagingRow
from nightly_pipeline.domain.icp import CompanyFacts

COMPANIES_WATERMARK = "companies_from_staging"


@dataclasses.dataclass(frozen=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _counts(flags: list[bool], total: int) -> UpsertCounts:
    inserted = sum(1 for f in flags if f)
    updated = len(flags) - inserted
    return UpsertCounts(inserted, updated, total - inserted - updated)


def upsert_staging(conn: psycopg.Connection, rows: list[StagingRow]) -> UpsertCounts:
    """Insert new UENs, update changed ones (by row hash), leave identical ones untouched."""
    if not rows:
        return UpsertCounts()
    conn.execute("""CREATE TEMP TABLE incoming_staging (LIKE staging_acra_companies INCLUDING DEFAULTS)
                    ON COMMIT DROP""")
    columns = ("uen", "entity_name", "entity_type_description", "entity_status_description",
               "registration_incorporation_date", "primary_ssic_code", "primary_ssic_description",
               "postal_code", "street_name", "website", "extra", "row_hash")
    with conn.cursor().copy(f"COPY incoming_staging ({', '.join(columns)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row((r.uen, r.entity_name, r.entity_type_description, r.entity_status_description,
                            r.registration_incorporation_date, r.primary_ssic_code, r.primary_ssic_description,
                            r.postal_code, r.street_name, r.website, json.dumps(r.extra), r.row_hash))
    assignments = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "uen")
    flags = conn.execute(f"""
        INSERT INTO staging_acra_companies AS s ({', '.join(columns)})
        SELECT {', '.join(columns)} FROM incoming_staging
        ON CONFLICT (uen) DO UPDATE SET {assignments}, updated_at = clock_timestamp()
        WHERE s.row_hash IS DISTINCT FROM excluded.row_hash
        RETURNING (xmax = 0) AS inserted""").fetchall()
    return _counts([f["inserted"] for f in flags], len(rows))


def get_watermark(conn: psycopg.Connection, name: str) -> dt.datetime | None:
    row = conn.execute("SELECT value FROM pipeline_watermarks WHERE name = %s", (name,)).fetchone()
    return row["value"] if row else None


def set_watermark(conn: psycopg.Connection, name: str, value: dt.datetime) -> None:
    conn.execute("""INSERT INTO pipeline_watermarks (name, value) VALUES (%s, %s)
                    ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now()""", (name, value))


def staging_rows_since(conn: psycopg.Connection, since: dt.datetime | None) -> tuple[list[StagingRow], dt.datetime | None]:
    """Rows new or changed after ``since`` and the newest change time among them."""
    records = conn.execute(
        """SELECT * FROM staging_acra_companies WHERE %(since)s::timestamptz IS NULL OR updated_at > %(since)s
           ORDER BY updated_at, uen""", {"since": since}).fetchall()
    rows = [StagingRow(
        uen=r["uen"], entity_name=r["entity_name"], entity_type_description=r["entity_type_description"],
        entity_status_description=r["entity_status_description"],
        registration_incorporation_date=r["registration_incorporation_date"],
        primary_ssic_code=r["primary_ssic_code"], primary_ssic_description=r["primary_ssic_description"],
        postal_code=r["postal_code"], street_name=r["street_name"], website=r["website"], extra=r["extra"],
    ) for r in records]
    newest = records[-1]["updated_at"] if records else None
    return rows, newest


def upsert_companies(conn: psycopg.Connection, records: list[CompanyRecord],
                     source_updated_at: dt.datetime) -> UpsertCounts:
    """Normalized registry facts into ``companies``; a website found later is kept when ACRA has none."""
    if not records:
        return UpsertCounts()
    columns = ("uen", "name", "legal_name", "entity_type", "entity_status", "is_live", "ssic_code",
               "ssic_description", "incorporation_date", "incorporation_year", "postal_code", "street_name",
               "website_domain", "website_source", "website_confidence", "source_row_hash", "source_updated_at")
    conn.execute(f"""CREATE TEMP TABLE incoming_companies ON COMMIT DROP AS
                     SELECT {', '.join(columns)} FROM companies WITH NO DATA""")
    with conn.cursor().copy(f"COPY incoming_companies ({', '.join(columns)}) FROM STDIN") as copy:
        for r in records:
            copy.write_row((r.uen, r.name, r.legal_name, r.entity_type, r.entity_status, r.is_live, r.ssic_code,
                            r.ssic_description, r.incorporation_date, r.incorporation_year, r.postal_code,
                            r.street_name, r.website_domain, "acra" if r.website_domain else None,
                            1.0 if r.website_domain else None, r.source_row_hash, source_updated_at))
    registry_columns = [c for c in columns if c not in ("uen", "website_domain", "website_source",
                                                        "website_confidence")]
    assignments = ", ".join(f"{c} = excluded.{c}" for c in registry_columns)
    flags = conn.execute(f"""
        INSERT INTO companies AS c ({', '.join(columns)})
        SELECT {', '.join(columns)} FROM incoming_companies
        ON CONFLICT (uen) DO UPDATE SET {assignments},
            website_domain = coalesce(excluded.website_domain, c.website_domain),
            website_source = CASE WHEN excluded.website_domain IS NOT NULL THEN 'acra' ELSE c.website_source END,
            website_confidence = CASE WHEN excluded.website_domain IS NOT NULL THEN 1.0
                                      ELSE c.website_confidence END,
            updated_at = now()
        WHERE c.source_row_hash IS DISTINCT FROM excluded.source_row_hash
        RETURNING (xmax = 0) AS inserted""").fetchall()
    return _counts([f["inserted"] for f in flags], len(records))


def company_facts(conn: psycopg.Connection) -> list[CompanyFacts]:
    rows = conn.execute("""SELECT company_id, uen, ssic_code, ssic_description, entity_status, is_live,
                                  incorporation_year FROM companies ORDER BY company_id""").fetchall()
    return [CompanyFacts(**r) for r in rows]


@dataclasses.dataclass(frozen=True)
class CompanyRow(MappingRow):
    """A ``companies`` row: the registry's facts and the website found for it."""

    company_id: int
    uen: str
    name: str
    legal_name: str
    entity_type: str | None
    entity_status: str | None
    is_live: bool
    ssic_code: str | None
    ssic_description: str | None
    incorporation_date: dt.date | None
    incorporation_year: int | None
    postal_code: str | None
    street_name: str | None
    website_domain: str | None
    website_source: str | None
    website_confidence: float | None


_COMPANY_ROW_COLUMNS = ", ".join(field.name for field in dataclasses.fields(CompanyRow))


def companies_by_id(conn: psycopg.Connection, company_ids: list[int]) -> dict[int, CompanyRow]:
    rows = conn.execute(f"SELECT {_COMPANY_ROW_COLUMNS} FROM companies WHERE company_id = ANY(%s)",
                        (company_ids,)).fetchall()
    return {r["company_id"]: CompanyRow(**r) for r in rows}


def count_companies(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) AS n FROM companies").fetchone()["n"]
