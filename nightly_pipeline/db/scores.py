"""Lead features and scores, the rationale cache, and the Odoo sync log (all tenant data).

Every function runs in the tenant's transaction (``Database.tenant``) and reads the tenant from it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


# -- scoring inputs --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScoringInput:
    """What scoring needs about one target of a night (see ``scoring.score.build_features``)."""

    company: dict[str, Any]
    crawl: dict[str, Any] | None
    contacts: list[dict[str, Any]]
    verification: dict[str, str]

    @property
    def company_id(self) -> int:
        return int(self.company["company_id"])


def scoring_inputs(conn: psycopg.Connection, run_id: uuid.UUID) -> list[ScoringInput]:
    """The run manifest's targets with their company row, this run's enrichment result, contacts
    and current (unexpired) verification policies, in manifest order."""
    companies = conn.execute(
        """SELECT c.* FROM enrichment_runs r
               CROSS JOIN LATERAL unnest(r.selected_company_ids) WITH ORDINALITY AS t(company_id, position)
               JOIN companies c ON c.company_id = t.company_id
           WHERE r.tenant_id = current_tenant_id() AND r.run_id = %s ORDER BY t.position""", (run_id,)).fetchall()
    ids = [row["company_id"] for row in companies]
    crawls = {row["company_id"]: row for row in conn.execute(
        """SELECT company_id, outcome, degraded, reasons, signals, extraction, corpus
           FROM company_enrichment_runs WHERE tenant_id = current_tenant_id() AND run_id = %s""", (run_id,))}
    contacts: dict[int, list[dict[str, Any]]] = {company_id: [] for company_id in ids}
    for row in conn.execute(
            """SELECT company_id, email, full_name, title, email_kind, on_company_domain, phone, is_primary,
                      seniority, linkedin
               FROM contacts WHERE tenant_id = current_tenant_id() AND company_id = ANY(%s)
               ORDER BY company_id, is_primary DESC, email""", (ids,)):
        contacts[row["company_id"]].append(row)
    emails = [contact["email"] for rows in contacts.values() for contact in rows]
    policies = {row["email"]: row["policy"] for row in conn.execute(
        """SELECT email, policy FROM email_verification_cache
           WHERE tenant_id = current_tenant_id() AND email = ANY(%s) AND expires_at > now()""", (emails,))}
    return [ScoringInput(company=row, crawl=crawls.get(row["company_id"]), contacts=contacts[row["company_id"]],
                         verification={c["email"]: policies[c["email"]] for c in contacts[row["company_id"]]
                                       if c["email"] in policies})
            for row in companies]


# -- features and scores ---------------------------------------------------------------------------
def upsert_features(conn: psycopg.Connection, company_id: int, feature_date: dt.date, features: Mapping[str, Any],
                    feature_hash: str) -> None:
    conn.execute(
        """INSERT INTO lead_features (company_id, feature_date, features, feature_hash)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (tenant_id, company_id, feature_date) DO UPDATE
               SET features = excluded.features, feature_hash = excluded.feature_hash, created_at = now()""",
        (company_id, feature_date, Jsonb(dict(features)), feature_hash))


@dataclasses.dataclass(frozen=True)
class ScoreRow:
    company_id: int
    score: float
    bucket: str
    reasons: Sequence[Mapping[str, Any]]
    rationale: str
    rationale_source: str
    features_hash: str


def upsert_scores(conn: psycopg.Connection, score_date: dt.date, rows: Sequence[ScoreRow]) -> None:
    """Store the night's scores; the shortlist flag and the Odoo ids of earlier syncs stay as they are."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO lead_scores (company_id, score_date, score, bucket, reasons, rationale, rationale_source,
                                        features_hash)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (tenant_id, company_id, score_date) DO UPDATE
                   SET score = excluded.score, bucket = excluded.bucket, reasons = excluded.reasons,
                       rationale = excluded.rationale, rationale_source = excluded.rationale_source,
                       features_hash = excluded.features_hash""",
            [(r.company_id, score_date, r.score, r.bucket, Jsonb([dict(x) for x in r.reasons]),
              r.rationale, r.rationale_source, r.features_hash) for r in rows])


def record_contributions(conn: psycopg.Connection, score_date: dt.date,
                         contributions: Mapping[int, Sequence[Mapping[str, Any]]]) -> None:
    """Each score's full breakdown ({feature, text, contribution} per applicable feature)."""
    if not contributions:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """UPDATE lead_scores SET contributions = %s
               WHERE company_id = %s AND score_date = %s""",
            [(Jsonb([dict(c) for c in rows]), company_id, score_date)
             for company_id, rows in contributions.items()])


def mark_shortlist(conn: psycopg.Connection, score_date: dt.date, cap: int) -> list[int]:
    """Flag the night's ``cap`` best scores as shortlisted (ties: lower company id) and unflag the
    rest; returns the shortlisted company ids, best first."""
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    rows = conn.execute(
        """WITH ranked AS (
               SELECT company_id, row_number() OVER (ORDER BY score DESC, company_id) AS position
               FROM lead_scores WHERE tenant_id = current_tenant_id() AND score_date = %(d)s)
           UPDATE lead_scores s SET shortlisted = (r.position <= %(cap)s)
           FROM ranked r
           WHERE s.tenant_id = current_tenant_id() AND s.score_date = %(d)s AND s.company_id = r.company_id
           RETURNING s.company_id, s.shortlisted, r.position""",
        {"d": score_date, "cap": cap}).fetchall()
    return [r["company_id"] for r in sorted(rows, key=lambda r: r["position"]) if r["shortlisted"]]


def scores_for(conn: psycopg.Connection, score_date: dt.date) -> list[dict[str, Any]]:
    """The night's scores, best first (for reports and asset metadata)."""
    return conn.execute(
        """SELECT s.company_id, c.uen, c.name, s.score, s.bucket, s.reasons, s.rationale, s.rationale_source,
                  s.shortlisted, s.features_hash, s.odoo_partner_id, s.odoo_lead_id
           FROM lead_scores s JOIN companies c USING (company_id)
           WHERE s.tenant_id = current_tenant_id() AND s.score_date = %s ORDER BY s.score DESC, s.company_id""",
        (score_date,)).fetchall()


# -- rationale cache -------------------------------------------------------------------------------
def get_rationale(conn: psycopg.Connection, feature_hash: str) -> str | None:
    row = conn.execute("""SELECT rationale FROM rationale_cache
                          WHERE tenant_id = current_tenant_id() AND feature_hash = %s""", (feature_hash,)).fetchone()
    return row["rationale"] if row is not None else None


def put_rationale(conn: psycopg.Connection, feature_hash: str, rationale: str, source: str, tokens_used: int) -> None:
    conn.execute(
        """INSERT INTO rationale_cache (feature_hash, rationale, source, tokens_used)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (tenant_id, feature_hash) DO UPDATE
               SET rationale = excluded.rationale, source = excluded.source, tokens_used = excluded.tokens_used,
                   created_at = now()""",
        (feature_hash, rationale, source, tokens_used))


# -- Odoo sync -------------------------------------------------------------------------------------
def records_to_sync(conn: psycopg.Connection, score_date: dt.date, buckets: Sequence[str], *,
                    include_unverified: bool) -> list[dict[str, Any]]:
    """The night's scores in ``buckets``, plus companies whose last sync failed on an earlier night,
    plus companies synced on an earlier night with an address verified deliverable since (a night
    whose verification was delayed catches up here), each with its latest score, company facts and
    contacts, best first.

    Contacts go with them when their address was verified deliverable, or, when the tenant allows
    it (``include_unverified``), when it was not verified or came back risky. Suppressed addresses
    never reach the CRM.
    """
    return conn.execute(
        """WITH tonight AS (
               SELECT * FROM lead_scores WHERE tenant_id = current_tenant_id() AND score_date = %(d)s),
           last_sync AS (
               SELECT DISTINCT ON (company_id) company_id, error, created_at FROM odoo_sync_log
               WHERE tenant_id = current_tenant_id() ORDER BY company_id, log_id DESC),
           retry AS (
               SELECT DISTINCT ON (s.company_id) s.* FROM lead_scores s JOIN last_sync l USING (company_id)
               WHERE s.tenant_id = current_tenant_id() AND s.score_date < %(d)s
                 AND (l.error IS NOT NULL
                      OR EXISTS (SELECT 1 FROM contacts ct JOIN email_verification_cache v
                                        ON v.tenant_id = ct.tenant_id AND v.email = ct.email
                                 WHERE ct.tenant_id = current_tenant_id() AND ct.company_id = s.company_id
                                   AND v.policy = 'deliverable' AND v.verified_at > l.created_at))
                 AND s.company_id NOT IN (SELECT company_id FROM tonight)
               ORDER BY s.company_id, s.score_date DESC),
           chosen AS (SELECT * FROM tonight UNION ALL SELECT * FROM retry)
           SELECT ch.company_id, ch.score_date, ch.score, ch.bucket, ch.reasons, ch.rationale,
                  c.uen, c.name, c.legal_name, c.website_domain, c.street_name, c.postal_code,
                  coalesce((SELECT jsonb_agg(jsonb_build_object(
                                'email', ct.email, 'name', ct.full_name, 'title', ct.title, 'phone', ct.phone,
                                'is_primary', ct.is_primary) ORDER BY ct.is_primary DESC, ct.email)
                            FROM contacts ct
                            LEFT JOIN email_verification_cache v
                                   ON v.tenant_id = ct.tenant_id AND v.email = ct.email
                            WHERE ct.tenant_id = current_tenant_id() AND ct.company_id = ch.company_id
                              AND (v.policy = 'deliverable'
                                   OR (%(unverified)s AND v.policy IS DISTINCT FROM 'suppressed'))),
                           '[]'::jsonb) AS contacts
           FROM chosen ch JOIN companies c USING (company_id)
           WHERE ch.bucket = ANY(%(buckets)s)
           ORDER BY ch.score DESC, ch.company_id""",
        {"d": score_date, "buckets": list(buckets), "unverified": include_unverified}).fetchall()


@dataclasses.dataclass(frozen=True)
class SyncLogEntry:
    company_id: int
    partner_id: int | None
    contact_partner_ids: Sequence[int]
    lead_id: int | None
    operation: str
    merge_decisions: Sequence[Mapping[str, Any]]
    error: str | None


def insert_sync_log(conn: psycopg.Connection, run_id: uuid.UUID | None, entries: Sequence[SyncLogEntry]) -> None:
    if not entries:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO odoo_sync_log (run_id, company_id, partner_id, contact_partner_ids, lead_id, operation,
                                          merge_decisions, error)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            [(run_id, e.company_id, e.partner_id, list(e.contact_partner_ids), e.lead_id, e.operation,
              Jsonb([dict(d) for d in e.merge_decisions]), e.error) for e in entries])


def record_odoo_ids(conn: psycopg.Connection, score_date: dt.date, entries: Iterable[SyncLogEntry]) -> None:
    """Put the Odoo ids on each company's latest score up to ``score_date`` (failed records keep theirs)."""
    rows = [(e.partner_id, e.lead_id, e.company_id, score_date) for e in entries if e.error is None]
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """UPDATE lead_scores s SET odoo_partner_id = %s, odoo_lead_id = coalesce(%s, s.odoo_lead_id)
               WHERE s.tenant_id = current_tenant_id() AND s.company_id = %s
                 AND s.score_date = (SELECT max(score_date) FROM lead_scores l
                                     WHERE l.tenant_id = s.tenant_id AND l.company_id = s.company_id
                                       AND l.score_date <= %s)""", rows)


def sync_log(conn: psycopg.Connection, run_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Sync log rows of the tenant (of one run when ``run_id`` is given), oldest first."""
    return conn.execute(
        """SELECT log_id, run_id, company_id, partner_id, contact_partner_ids, lead_id, operation, merge_decisions,
                  error, created_at
           FROM odoo_sync_log WHERE tenant_id = current_tenant_id() AND (%s::uuid IS NULL OR run_id = %s)
           ORDER BY log_id""", (run_id, run_id)).fetchall()
