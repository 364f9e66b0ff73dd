"""Each tenant-night's status, stage durations, counts and spend.

What ``nightly-pipeline runs`` prints and ``GET /admin/runs`` returns. Tenant data comes from the
night's manifest and the stage tables, read in the tenant's own transaction (row-level security);
stage timings come from the product's own stage table (``enrichment_run_stages``), and for nights
recorded before it existed from the Dagster event log, which records when each step of the run
started and finished; the Dagster instance tells whether a run is queued or still running.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import dagster as dg
from tabulate import tabulate

from nightly_pipeline.db import Database
from nightly_pipeline.db import runs as runs_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.launch import night_runs
from nightly_pipeline.partitions import partition_key
from nightly_pipeline.settings import Settings

FINISHED_NIGHT = ("succeeded", "partial", "failed")
QUEUED_RUN = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED}
ACTIVE_RUN = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
              dg.DagsterRunStatus.SUSPENDED}
ENDED_BADLY = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# The graph's stages in order; a run's other steps (its asset checks) are not stages.
STAGES = ("companies", "icp_candidates", "daily_targets", "crawl_corpus", "contacts", "verified_emails",
          "lead_scores", "odoo_sync")
# A step's status in the event log, in the words of the stage table.
STEP_STATUS = {"SUCCESS": "succeeded", "FAILURE": "failed", "SKIPPED": "skipped", "IN_PROGRESS": "running"}


def _iso(value: dt.datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    return value.isoformat()


def night_status(record: runs_db.NightRecord, latest: dg.RunRecord | None) -> str:
    """``queued``, ``running``, ``succeeded``, ``partial``, ``failed`` or ``not_started``.

    The newest Dagster run decides while it is in flight, and when it ended badly after the
    manifest's last finish (a failed re-run, or a night that died before its last stage).
    """
    run_status = latest.dagster_run.status if latest else None
    if run_status in QUEUED_RUN:
        return "queued"
    if run_status in ACTIVE_RUN:
        return "running"
    if run_status in ENDED_BADLY:
        ended = latest.end_time
        if record.finished_at is None or (ended is not None and ended > record.finished_at.timestamp()):
            return "failed"
    if record.status in FINISHED_NIGHT:
        return record.status
    if record.status is not None:
        return "succeeded" if run_status == dg.DagsterRunStatus.SUCCESS else "running"
    if run_status == dg.DagsterRunStatus.SUCCESS:
        return "succeeded"
    return "not_started"


def _stages(instance: dg.DagsterInstance, run_id: str | None) -> dict[str, dict[str, Any]]:
    if run_id is None:
        return {}
    stats = sorted(instance.get_run_step_stats(run_id), key=lambda s: (s.start_time or float("inf"), s.step_key))
    stages = {}
    for step in stats:
        seconds = None
        if step.start_time is not None and step.end_time is not None:
            seconds = round(step.end_time - step.start_time, 3)
        status = STEP_STATUS.get(step.status.value) if step.status else None
        stages[step.step_key] = {"started_at": _iso(step.start_time), "finished_at": _iso(step.end_time),
                                 "seconds": seconds, "status": status}
    return stages


def _recorded_stages(record: runs_db.NightRecord) -> dict[str, dict[str, Any]]:
    stages = {}
    for stage in record.stages:
        seconds = None
        if stage.finished_at is not None:
            seconds = round((stage.finished_at - stage.started_at).total_seconds(), 3)
        stages[stage.stage] = {"started_at": _iso(stage.started_at), "finished_at": _iso(stage.finished_at),
                               "seconds": seconds, "status": stage.status, "attempts": stage.attempts,
                               "counters": stage.counters, "error": stage.error}
    return stages


def _spend(record: runs_db.NightRecord, settings: Settings) -> tuple[dict[str, dict], float | None]:
    prices = settings.vendor_unit_costs
    spend, total = {}, 0.0
    for usage in record.spend:
        cost = round(usage.units * prices[usage.vendor], 6) if usage.vendor in prices else None
        spend[usage.vendor] = {"calls": usage.calls, "units": usage.units, "cost": cost}
        if usage.units and cost is None:
            total = None
        elif total is not None and cost is not None:
            total += cost
    return spend, (round(total, 6) if total is not None else None)


def night_report(db: Database, instance: dg.DagsterInstance, settings: Settings, tenant_id: int,
                 run_date: dt.date) -> dict[str, Any]:
    """One tenant's night; raises ``TenantNotFound`` when the tenant does not exist."""
    with db.tenant(tenant_id) as conn:
        tenant = tenants_db.get_tenant(conn)
        record = runs_db.night(conn, run_date)
    runs = night_runs(instance, tenant_id, run_date)
    latest = runs[0] if runs else None
    timed = next((r for r in runs if r.start_time is not None), None)
    # The stage table has each tenant-night stage; the event log adds the steps before the night (the
    # ACRA refresh and ICP candidates) and stands in for nights recorded before the table existed.
    logged = _stages(instance, timed.dagster_run.run_id if timed else None)
    recorded = _recorded_stages(record)
    stages = {name: recorded.get(name) or logged[name] for name in STAGES if name in recorded or name in logged}
    status = night_status(record, latest)
    error_summary = record.error_summary
    failed_stages = [name for name, s in stages.items() if s["status"] == "failed"]
    if status == "failed" and error_summary is None:
        where = f" at {', '.join(failed_stages)}" if failed_stages else ""
        error_summary = f"Dagster run {latest.dagster_run.run_id} ended {latest.dagster_run.status.value}{where}"
    spend, cost_total = _spend(record, settings)
    shortlisted = record.shortlisted
    return {
        "tenant_id": tenant_id,
        "tenant_name": tenant.name,
        "run_date": run_date.isoformat(),
        "partition_key": str(partition_key(run_date, tenant_id)),
        "status": status,
        "error_summary": error_summary,
        "manifest_id": str(record.run_id) if record.run_id else None,
        "manifest_status": record.status,
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "dagster_run_id": latest.dagster_run.run_id if latest else None,
        "dagster_status": latest.dagster_run.status.value if latest else None,
        "dagster_runs": len(runs),
        "stages": stages,
        "targets": record.targets,
        "shortlisted": shortlisted,
        "leads_created": ((record.step_counters.get("odoo_sync") or {}).get("lead") or {}).get("created"),
        "leads_in_odoo": record.leads_in_odoo,
        "degradations": record.degradations,
        "failures": {"crawl_errors": record.crawl_errors, "odoo_errors": record.odoo_errors,
                     "failed_stages": failed_stages},
        "spend": spend,
        "cost_total": cost_total,
        "cost_per_shortlisted_lead": round(cost_total / shortlisted, 6) if cost_total is not None and shortlisted
        else None,
    }


def night_reports(db: Database, instance: dg.DagsterInstance, settings: Settings, run_date: dt.date,
                  tenant_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The nights of the tenants named, or of every tenant that is scheduled or ran that night.

    Without ``tenant_ids`` the registry lists the tenants; each one's data is then read in its own
    tenant transaction, never across tenants.
    """
    if tenant_ids is not None:
        return [night_report(db, instance, settings, t, run_date) for t in tenant_ids]
    with db.shared() as conn:
        directory = tenants_db.directory(conn)
    reports = []
    for tenant in directory:
        report = night_report(db, instance, settings, tenant.tenant_id, run_date)
        if tenant.schedulable or report["status"] != "not_started":
            reports.append(report)
    return reports


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def format_nights(nights: Sequence[dict[str, Any]]) -> str:
    """The nights as a table, then each night's stage durations on a line of its own."""
    rows = []
    for n in nights:
        spend = ", ".join(f"{vendor} {s['units']}" + (f" (${s['cost']:.2f})" if s["cost"] is not None else "")
                          for vendor, s in n["spend"].items()) or "-"
        total = sum(s["seconds"] or 0 for s in n["stages"].values()) if n["stages"] else None
        rows.append((n["tenant_id"], n["tenant_name"], n["status"], n["targets"] if n["targets"] is not None else "-",
                     n["shortlisted"], n["leads_created"] if n["leads_created"] is not None else "-",
                     len(n["degradations"]), n["failures"]["crawl_errors"] + n["failures"]["odoo_errors"],
                     _seconds(total), spend,
                     "-" if n["cost_per_shortlisted_lead"] is None else f"${n['cost_per_shortlisted_lead']:.2f}",
                     n["error_summary"] or ""))
    lines = [tabulate(rows, headers=["tenant", "name", "status", "targets", "shortlisted", "leads created",
                                     "degradations", "failures", "duration", "spend (units)", "cost/lead", "error"])]
    for n in nights:
        if n["stages"]:
            stages = ", ".join(f"{name} {_seconds(s['seconds'])}" for name, s in n["stages"].items())
            lines.append(f"tenant {n['tenant_id']} stages ({n['dagster_run_id']}): {stages}")
    return "\n".join(lines)
