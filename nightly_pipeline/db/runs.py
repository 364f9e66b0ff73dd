"""What one tenant's night did, from its run manifest and the tables the stages write.

Every function runs in a transaction scoped to the tenant (``db.tenant(tenant_id)``), so row-level
security decides what it can see: another tenant's night reads as no night at all.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import psycopg

from nightly_pipeline.db.night_stages import StageRecord, stages
from nightly_pipeline.db.tenants import scoped_tenant_id


@dataclasses.dataclass(frozen=True)
class VendorSpend:
    vendor: str
    calls: int
    units: int


@dataclasses.dataclass(frozen=True)
class NightRecord:
    """The manifest of a tenant's night and what its stages recorded; absent parts are None or empty."""

    tenant_id: int
    run_date: dt.date
    run_id: uuid.UUID | None = None
    dagster_run_id: str | None = None
    status: str | None = None
    error_summary: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    targets: int | None = None
    step_counters: dict = dataclasses.field(default_factory=dict)
    degradations: list = dataclasses.field(default_factory=list)
    shortlisted: int = 0
    leads_in_odoo: int = 0
    crawl_errors: int = 0
    odoo_errors: int = 0
    spend: tuple[VendorSpend, ...] = ()
    stages: tuple[StageRecord, ...] = ()


def night(conn: psycopg.Connection, run_date: dt.date) -> NightRecord:
    """The night of the tenant the transaction serves."""
    tenant_id = scoped_tenant_id(conn)
    manifest = conn.execute(
        """SELECT run_id, dagster_run_id, status, error_summary, started_at, finished_at,
                  cardinality(selected_company_ids) AS targets, step_counters, degradations
           FROM enrichment_runs WHERE run_date = %s""", (run_date,)).fetchone()
    scores = conn.execute(
        """SELECT count(*) FILTER (WHERE shortlisted) AS shortlisted,
                  count(*) FILTER (WHERE shortlisted AND odoo_lead_id IS NOT NULL) AS leads_in_odoo
           FROM lead_scores WHERE score_date = %s""", (run_date,)).fetchone()
    if manifest is None:
        return NightRecord(tenant_id, run_date, shortlisted=scores["shortlisted"],
                           leads_in_odoo=scores["leads_in_odoo"])
    run_id = manifest["run_id"]
    crawl_errors = conn.execute(
        """SELECT count(*) AS n FROM company_enrichment_runs
           WHERE run_id = %s AND outcome = 'error'""", (run_id,)).fetchone()["n"]
    # A record that failed and then synced on a retry is no longer a failure: count each company's last try.
    odoo_errors = conn.execute(
        """SELECT count(*) AS n FROM (
               SELECT DISTINCT ON (company_id) error FROM odoo_sync_log
               WHERE run_id = %s ORDER BY company_id, log_id DESC) last_try
           WHERE error IS NOT NULL""", (run_id,)).fetchone()["n"]
    spend = conn.execute(
        """SELECT vendor, count(*) AS calls, coalesce(sum(units_charged), 0) AS units
           FROM vendor_usage WHERE run_id = %s GROUP BY vendor ORDER BY vendor""",
        (run_id,)).fetchall()
    return NightRecord(
        tenant_id=tenant_id, run_date=run_date, run_id=run_id, dagster_run_id=manifest["dagster_run_id"],
        status=manifest["status"], error_summary=manifest["error_summary"], started_at=manifest["started_at"],
        finished_at=manifest["finished_at"], targets=manifest["targets"], step_counters=manifest["step_counters"],
        degradations=manifest["degradations"], shortlisted=scores["shortlisted"],
        leads_in_odoo=scores["leads_in_odoo"], crawl_errors=crawl_errors, odoo_errors=odoo_errors,
        spend=tuple(VendorSpend(r["vendor"], r["calls"], int(r["units"])) for r in spend),
        stages=tuple(stages(conn, run_id)))
