"""What the asset checks read about a tenant's night, in the tenant's transaction (row-level security)."""
from __future__ import annotations

import datetime as dt
import uuid

import psycopg

from nightly_pipeline.clock import TIMEZONE


def suppressed_primaries(conn: psycopg.Connection, company_ids: list[int]) -> list[str]:
    """Primary contacts of the companies whose address verification says ``suppressed``."""
    rows = conn.execute("""
        SELECT ct.email FROM contacts ct
        JOIN email_verification_cache v ON v.tenant_id = ct.tenant_id AND v.email = ct.email
        WHERE ct.tenant_id = current_tenant_id() AND ct.company_id = ANY(%s) AND ct.is_primary
          AND v.policy = 'suppressed' ORDER BY ct.email""", (company_ids,)).fetchall()
    return [r["email"] for r in rows]


def suppressed_among(conn: psycopg.Connection, emails: list[str]) -> list[str]:
    """Those of ``emails`` whose address verification says ``suppressed``."""
    rows = conn.execute("""SELECT email FROM email_verification_cache
                           WHERE tenant_id = current_tenant_id() AND email = ANY(%s) AND policy = 'suppressed'
                           ORDER BY email""", ([e.lower() for e in emails],)).fetchall()
    return [r["email"] for r in rows]


def invalid_scores(conn: psycopg.Connection, score_date: dt.date) -> list[dict]:
    """Scores of the date outside [0, 1] or without a rationale."""
    return conn.execute("""
        SELECT company_id, score, rationale FROM lead_scores
        WHERE tenant_id = current_tenant_id() AND score_date = %s
          AND (score < 0 OR score > 1 OR score IS NULL OR btrim(coalesce(rationale, '')) = '')
        ORDER BY company_id""", (score_date,)).fetchall()


def score_count(conn: psycopg.Connection, score_date: dt.date) -> int:
    return conn.execute("""SELECT count(*) AS n FROM lead_scores
                           WHERE tenant_id = current_tenant_id() AND score_date = %s""",
                        (score_date,)).fetchone()["n"]


def sync_results(conn: psycopg.Connection, run_id: uuid.UUID) -> tuple[int, int]:
    """(records synced, records whose last try failed) of the night's Odoo sync."""
    row = conn.execute("""
        SELECT count(*) AS records, count(*) FILTER (WHERE error IS NOT NULL) AS failed FROM (
            SELECT DISTINCT ON (company_id) error FROM odoo_sync_log
            WHERE tenant_id = current_tenant_id() AND run_id = %s ORDER BY company_id, log_id DESC) last_try""",
                       (run_id,)).fetchone()
    return row["records"], row["failed"]


def run_spend(conn: psycopg.Connection, run_id: uuid.UUID) -> dict[str, int]:
    """Units charged (or still reserved) per vendor in the run."""
    rows = conn.execute("""SELECT vendor, sum(coalesce(units_charged, units_reserved)) AS units FROM vendor_usage
                           WHERE tenant_id = current_tenant_id() AND run_id = %s GROUP BY vendor""",
                        (run_id,)).fetchall()
    return {r["vendor"]: int(r["units"]) for r in rows}


def day_spend(conn: psycopg.Connection, vendor: str, run_id: uuid.UUID) -> int:
    """The most units of ``vendor`` the tenant spent on one (Singapore) day on which this run spent
    some, whatever run spent them: a daily cap holds for the spending day, not the partition's."""
    row = conn.execute("""
        WITH days AS (SELECT DISTINCT (created_at AT TIME ZONE %(tz)s)::date AS day FROM vendor_usage
                      WHERE tenant_id = current_tenant_id() AND vendor = %(vendor)s AND run_id = %(run)s)
        SELECT coalesce(max(spent), 0) AS units FROM (
            SELECT d.day, sum(coalesce(u.units_charged, u.units_reserved)) AS spent
            FROM days d JOIN vendor_usage u ON u.tenant_id = current_tenant_id() AND u.vendor = %(vendor)s
                 AND (u.created_at AT TIME ZONE %(tz)s)::date = d.day
            GROUP BY d.day) per_day""", {"tz": TIMEZONE, "vendor": vendor, "run": run_id}).fetchone()
    return int(row["units"])
