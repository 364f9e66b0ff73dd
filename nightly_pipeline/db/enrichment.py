"""Per-company results of a tenant's night (``company_enrichment_runs``) and what they teach the
shared ``companies`` table (website, firmographics, with per-field provenance).

The tenant's functions run in its transaction (``Database.tenant``) and read the tenant from it.

What may enter ``companies`` (shared, no row-level security), field by field:

- ``website_domain``/``_source``/``_confidence``: a website the registry gives, or one confirmed by a
  home page we read ourselves (a name guess, or a search hit whose page we fetched). A site confirmed
  only by a search engine's snippet, bought by one tenant's Tavily search, stays in that tenant's
  run record.
- firmographics (industry, revenue band, HQ, products, business model, about) and the headcount
  with its source: read from the company's own public pages, by the deterministic reader or the
  model; the same pages give the same reading whichever tenant asked.
- ``field_provenance``: per field the source, its confidence and when, never the tenant or the run
  that enriched it. Judgements of a tenant (ICP match, scores, rationales, contacts, primaries)
  live only in tenant tables.

Every value is cleaned and bounded (``domain/sanitize.py``) before it is written here.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from nightly_pipeline.db.rows import MappingRow
from nightly_pipeline.domain import sanitize

FIRMOGRAPHIC_FIELDS = ("industry", "employees_estimate", "revenue_bucket", "hq", "products_services",
                       "business_model", "about")
MAX_FIELD_CHARS = 2_000
MAX_REASON_CHARS = 500


@dataclasses.dataclass(frozen=True)
class CompanyRunRecord:
    company_id: int
    outcome: str
    degraded: bool
    reasons: list[str]
    signals: dict[str, Any]
    extraction: dict[str, Any]
    corpus_hash: str | None
    corpus: str | None


def done_company_ids(conn: psycopg.Connection, run_id: uuid.UUID) -> set[int]:
    """Companies this run already finished: a re-run resumes instead of paying again. A company that
    failed, or was degraded by something passing (a vendor's 429 or 5xx, a site that did not answer),
    is not finished, so the re-run tries it again; one degraded for good (no website, robots.txt)
    stays finished."""
    rows = conn.execute("""SELECT company_id FROM company_enrichment_runs
                           WHERE tenant_id = current_tenant_id() AND run_id = %s AND outcome <> 'error'
                             AND NOT coalesce((signals ->> 'retry_next_run')::boolean, false)""",
                        (run_id,)).fetchall()
    return {r["company_id"] for r in rows}


def save_company_run(conn: psycopg.Connection, run_id: uuid.UUID, record: CompanyRunRecord) -> None:
    conn.execute(
        """INSERT INTO company_enrichment_runs (run_id, company_id, outcome, degraded, reasons, signals, extraction,
                                                corpus_hash, corpus)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (tenant_id, run_id, company_id) DO UPDATE SET outcome = excluded.outcome,
               degraded = excluded.degraded, reasons = excluded.reasons, signals = excluded.signals,
               extraction = excluded.extraction, corpus_hash = excluded.corpus_hash, corpus = excluded.corpus,
               updated_at = now()""",
        (run_id, record.company_id, sanitize.clean_text(record.outcome, 100), record.degraded,
         Jsonb([sanitize.clean_text(str(reason), MAX_REASON_CHARS) for reason in record.reasons]),
         Jsonb(sanitize.clean_json(record.signals)), Jsonb(sanitize.clean_json(record.extraction)),
         sanitize.clean_optional_text(record.corpus_hash, 200),
         None if record.corpus is None else sanitize.clean_text(record.corpus, 1_000_000)))


@dataclasses.dataclass(frozen=True)
class RunRecord(MappingRow):
    """What tonight's crawl stage recorded about one company, with the company's names and domain."""

    company_id: int
    name: str
    legal_name: str
    uen: str
    website_domain: str | None
    outcome: str
    degraded: bool
    reasons: list[str]
    signals: dict[str, Any]
    extraction: dict[str, Any]
    corpus_hash: str | None


def run_records(conn: psycopg.Connection, run_id: uuid.UUID) -> list[RunRecord]:
    rows = conn.execute(
        """SELECT r.company_id, c.name, c.legal_name, c.uen, c.website_domain, r.outcome, r.degraded, r.reasons,
                  r.signals, r.extraction, r.corpus_hash
           FROM company_enrichment_runs r JOIN companies c USING (company_id)
           WHERE r.tenant_id = current_tenant_id() AND r.run_id = %s ORDER BY r.company_id""", (run_id,)).fetchall()
    return [RunRecord(**row) for row in rows]


def record_website(conn: psycopg.Connection, company_id: int, domain: str, source: str, confidence: float) -> None:
    """A discovered website; never replaces one the registry gave or a more confident find."""
    conn.execute(
        """UPDATE companies SET website_domain = %s, website_source = %s, website_confidence = %s,
                  updated_at = now()
           WHERE company_id = %s AND (website_domain IS NULL OR
                 (website_source IS DISTINCT FROM 'acra' AND coalesce(website_confidence, 0) < %s))""",
        (sanitize.clean_text(domain, 253), sanitize.clean_text(source, 50), sanitize.finite_float(confidence),
         company_id, sanitize.finite_float(confidence) or 0.0))


def _firmographic(field: str, value: Any) -> Any:
    """The value bounded to its column, or None when nothing storable is left."""
    if field == "employees_estimate":
        return sanitize.bounded_int(value, 0)
    if field == "products_services":
        cleaned = sanitize.clean_json(value, max_depth=2, max_items=50, max_chars=300)
        return Jsonb(cleaned) if isinstance(cleaned, list) and cleaned else None
    return sanitize.clean_optional_text(value, MAX_FIELD_CHARS)


def record_firmographics(conn: psycopg.Connection, company_id: int, profile: dict[str, Any], *, source: str,
                         crawled_at: dt.datetime) -> list[str]:
    """Write the known fields of an extracted profile; each field's provenance says where it came from
    (the source, its confidence and when), never which tenant or run asked."""
    updates: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    for field in FIRMOGRAPHIC_FIELDS:
        value = profile.get(field)
        if value in (None, "", [], "unknown"):
            continue
        stored = _firmographic(field, value)
        if stored is None:
            continue
        updates[field] = stored
        provenance[field] = {"source": sanitize.clean_text(source, 50),
                             "confidence": sanitize.finite_float(profile.get(f"{field}_confidence")),
                             "at": crawled_at.isoformat()}
    assignments = ", ".join(f"{field} = %({field})s" for field in updates)
    conn.execute(
        f"""UPDATE companies SET {assignments + ', ' if assignments else ''}
                   field_provenance = field_provenance || %(provenance)s, last_crawled_at = %(at)s,
                   updated_at = now()
            WHERE company_id = %(company_id)s""",
        {**updates, "provenance": Jsonb(provenance), "at": crawled_at, "company_id": company_id})
    return sorted(updates)


def record_headcount(conn: psycopg.Connection, company_id: int, headcount: dict[str, Any], source_rank: int, *,
                     crawled_at: dt.datetime) -> bool:
    """Store a headcount with its source unless the stored one has a better source (``source_rank``
    against the same ranking: structured and stated 3, vendor 2, inferred 1); True when written.

    This is the only writer of the headcount columns: an inferred headcount is a range with no exact
    number, which the table's check constraint holds to. A number beyond the columns' range is
    not a headcount: nothing is written (False)."""
    bounded = {key: sanitize.bounded_int(headcount.get(key), 0) for key in ("exact", "low", "high")}
    if any(headcount.get(key) is not None and bounded[key] is None for key in bounded):
        return False
    provenance = {"employees_estimate": {"source": headcount["source"], "at": crawled_at.isoformat()}}
    return conn.execute(
        """UPDATE companies SET employees_source = %(source)s, employees_estimate = %(exact)s,
                  employees_min = %(low)s, employees_max = %(high)s,
                  field_provenance = field_provenance || %(provenance)s, updated_at = now()
           WHERE company_id = %(company_id)s
             AND CASE employees_source WHEN 'structured' THEN 3 WHEN 'stated' THEN 3 WHEN 'vendor' THEN 2
                                       WHEN 'inferred' THEN 1 ELSE 0 END <= %(rank)s""",
        {**headcount, **bounded, "provenance": Jsonb(provenance), "company_id": company_id,
         "rank": source_rank}).rowcount > 0
