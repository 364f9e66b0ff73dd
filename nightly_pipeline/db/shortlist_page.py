"""What the shortlist page shows for one tenant-night: the run, its vendor spend and the leads.

Every function runs inside the caller's tenant transaction (``Database.tenant``).
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg


def night(conn: psycopg.Connection, run_date: dt.date) -> dict[str, Any] | None:
    """The tenant with its Odoo URL and, when there was one, that night's run record; None for an
    unknown tenant."""
    return conn.execute(
        """SELECT t.tenant_id, t.name AS tenant_name, o.url AS odoo_url, r.run_id, r.status, r.started_at,
                  r.finished_at, r.error_summary, r.degradations, r.step_counters,
                  coalesce(cardinality(r.selected_company_ids), 0) AS targets,
                  (SELECT count(*) FROM lead_scores s
                   WHERE s.tenant_id = t.tenant_id AND s.score_date = %(d)s) AS scored,
                  (SELECT count(*) FROM lead_scores s
                   WHERE s.tenant_id = t.tenant_id AND s.score_date = %(d)s AND s.shortlisted) AS shortlisted
           FROM tenants t
           LEFT JOIN odoo_connections o ON o.tenant_id = t.tenant_id
           LEFT JOIN enrichment_runs r ON r.tenant_id = t.tenant_id AND r.run_date = %(d)s
           WHERE t.tenant_id = current_tenant_id()""", {"d": run_date}).fetchone()


def vendor_spend(conn: psycopg.Connection, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """Calls and units charged per vendor in one run (``vendor_usage``)."""
    return conn.execute(
        """SELECT vendor, count(*) AS calls, coalesce(sum(units_charged), 0)::bigint AS units_charged,
                  count(*) FILTER (WHERE units_charged IS NULL) AS unsettled
           FROM vendor_usage WHERE run_id = %s GROUP BY vendor ORDER BY vendor""",
        (run_id,)).fetchall()


def leads(conn: psycopg.Connection, run_date: dt.date) -> list[dict[str, Any]]:
    """The night's shortlist in rank order, each with its company facts, score breakdown, primary
    contact and verification, how many reachable contacts it has, and its crawl record."""
    return conn.execute(
        """SELECT row_number() OVER (ORDER BY s.score DESC, s.company_id) AS rank,
                  s.company_id, c.name AS company, c.uen, c.website_domain, c.industry, c.entity_status,
                  c.employees_estimate, c.employees_min, c.employees_max, c.employees_source,
                  s.score, s.bucket, s.reasons, s.contributions, s.rationale, s.rationale_source,
                  s.odoo_partner_id, s.odoo_lead_id,
                  p.email AS contact_email, p.full_name AS contact_name, p.title AS contact_title,
                  p.phone AS contact_phone, p.source AS contact_source,
                  p.vendor_ref ->> 'name_source' AS contact_name_source, v.policy AS contact_policy,
                  v.status AS contact_status,
                  (SELECT count(*) FROM contacts ct
                   LEFT JOIN email_verification_cache cv ON cv.tenant_id = ct.tenant_id AND cv.email = ct.email
                   WHERE ct.tenant_id = s.tenant_id AND ct.company_id = s.company_id
                     AND cv.policy IS DISTINCT FROM 'suppressed') AS reachable_addresses,
                  (SELECT count(*) FROM contacts ct
                   WHERE ct.tenant_id = s.tenant_id AND ct.company_id = s.company_id) AS addresses,
                  (SELECT count(*) FROM contacts ct WHERE ct.tenant_id = s.tenant_id
                     AND ct.company_id = s.company_id AND ct.phone IS NOT NULL) AS contact_phones,
                  cr.outcome AS crawl_outcome, cr.reasons AS crawl_reasons,
                  cr.signals -> 'domain' AS crawl_domain, cr.signals -> 'crawl' AS crawl,
                  cr.signals -> 'fallback' AS crawl_fallback,
                  coalesce(cr.signals -> 'pages', '[]'::jsonb) AS crawl_pages,
                  coalesce(cr.signals -> 'phones', '[]'::jsonb) AS site_phones,
                  cr.extraction ->> 'source' AS extraction_source
           FROM lead_scores s
           JOIN companies c USING (company_id)
           LEFT JOIN enrichment_runs r ON r.tenant_id = s.tenant_id AND r.run_date = s.score_date
           LEFT JOIN company_enrichment_runs cr
                  ON cr.tenant_id = s.tenant_id AND cr.run_id = r.run_id AND cr.company_id = s.company_id
           LEFT JOIN contacts p ON p.tenant_id = s.tenant_id AND p.company_id = s.company_id AND p.is_primary
           LEFT JOIN email_verification_cache v ON v.tenant_id = p.tenant_id AND v.email = p.email
           WHERE s.score_date = %s AND s.shortlisted
           ORDER BY s.score DESC, s.company_id""", (run_date,)).fetchall()
