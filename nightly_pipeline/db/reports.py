"""Read models for people: a tenant's daily targets and shortlist, in its transaction (``Database.tenant``)."""
from __future__ import annotations

import datetime as dt

import psycopg


def daily_targets(conn: psycopg.Connection, run_date: dt.date) -> list[dict] | None:
    """The night's targets in manifest order, or None when no manifest exists for that date."""
    manifest = conn.execute("""SELECT selected_company_ids, target_reasons FROM enrichment_runs
                               WHERE tenant_id = current_tenant_id() AND run_date = %s""", (run_date,)).fetchone()
    if manifest is None:
        return None
    rows = conn.execute("""
        SELECT c.company_id, c.name AS company, c.uen, c.ssic_code,
               coalesce(c.website_domain, '(to discover)') AS domain, c.website_source, ic.match_score,
               r.outcome AS crawl_outcome, r.extraction -> 'profile' ->> 'industry' AS industry,
               c.employees_estimate AS employees, c.employees_min, c.employees_max, c.employees_source,
               r.extraction ->> 'source' AS extraction_source
        FROM unnest(%s::bigint[]) WITH ORDINALITY AS sel(company_id, position)
        JOIN companies c USING (company_id)
        LEFT JOIN icp_candidate_companies ic ON ic.tenant_id = current_tenant_id() AND ic.company_id = c.company_id
        LEFT JOIN enrichment_runs e ON e.tenant_id = current_tenant_id() AND e.run_date = %s
        LEFT JOIN company_enrichment_runs r
               ON r.tenant_id = current_tenant_id() AND r.run_id = e.run_id AND r.company_id = c.company_id
        ORDER BY sel.position""",
        (manifest["selected_company_ids"], run_date)).fetchall()
    for row in rows:
        row["why"] = manifest["target_reasons"].get(str(row["company_id"]), "")
    return rows


def shortlist(conn: psycopg.Connection, run_date: dt.date) -> list[dict]:
    """The night's shortlist, best first, with the primary contact, its verification and Odoo ids."""
    return conn.execute("""
        SELECT row_number() OVER (ORDER BY s.score DESC, s.company_id) AS rank, c.name AS company, c.uen,
               c.website_domain AS domain, round(s.score, 3) AS score, s.bucket, s.rationale,
               p.email AS primary_contact, p.full_name AS contact_name, p.title AS contact_title,
               coalesce(v.policy, CASE WHEN p.email IS NULL THEN NULL ELSE 'unverified' END) AS verification,
               s.odoo_partner_id, s.odoo_lead_id
        FROM lead_scores s JOIN companies c USING (company_id)
        LEFT JOIN contacts p ON p.tenant_id = s.tenant_id AND p.company_id = s.company_id AND p.is_primary
        LEFT JOIN email_verification_cache v ON v.tenant_id = p.tenant_id AND v.email = p.email
        WHERE s.tenant_id = current_tenant_id() AND s.score_date = %s AND s.shortlisted
        ORDER BY s.score DESC, s.company_id""", (run_date,)).fetchall()
