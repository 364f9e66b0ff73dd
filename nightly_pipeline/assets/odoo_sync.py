"""Stage 8: the shortlist into the tenant's Odoo, idempotently.

Companies by UEN (then domain, then exact name), contacts by (parent, email), and a crm.lead at or
above SCORE_MIN_EXPORT found again by partner and a stable per-tenant reference, so re-running any
partition creates nothing new. Every record's outcome lands in odoo_sync_log; a record that fails
is retried on the next run; Odoo unreachable fails the step (and its retry policy retries it) with
nothing half-recorded. The tenant's Odoo password is read from the variable its connection names.
"""
import dagster as dg

from nightly_pipeline.alerts import alert_night
from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets._night import night_stage, tonight
from nightly_pipeline.assets.lead_scores import lead_scores
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.odoo_sync import OdooSync, SyncRecord, sync_and_record
from nightly_pipeline.partitions import tenant_day_partitions
from nightly_pipeline.scoring.score import buckets_at_or_above
from nightly_pipeline.settings import SKIPPED
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.odoo import OdooConfigError, OdooLoginError, OdooResource, password_from_env


@dg.asset(partitions_def=tenant_day_partitions, deps=[lead_scores], kinds={"python"},
          retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL,
                                      jitter=dg.Jitter.PLUS_MINUS),
          description="Companies, contacts and leads of the shortlist in the tenant's Odoo, never duplicated.")
@night_stage
def odoo_sync(context: dg.AssetExecutionContext, database: DatabaseResource, pipeline_settings: PipelineSettings,
              odoo: OdooResource) -> dg.MaterializeResult:
    night = tonight(context, database, pipeline_settings)
    settings = night.settings
    if settings.skips("odoo_sync"):
        night.record_stage("odoo_sync", {}, [f"Odoo sync {SKIPPED}: nothing exported tonight; re-run the "
                                             "night without it to export"])
        night.finish("partial", f"Odoo sync {SKIPPED}")
        return dg.MaterializeResult(metadata={"skipped": SKIPPED})
    with night.transaction() as conn:
        connection = tenants_db.get_odoo_connection(conn)
        tenant = tenants_db.get_tenant(conn)
        rows = scores_db.records_to_sync(conn, night.run_date, buckets_at_or_above(settings.odoo_sync_min_bucket),
                                         include_unverified=tenant.export_unverified)
    if connection is None or not connection.active:
        raise dg.Failure(f"tenant {night.tenant_id} has no active Odoo connection", allow_retries=False)
    try:
        client = odoo.connect(connection, password_from_env(connection))
    except (OdooConfigError, OdooLoginError) as exc:
        raise dg.Failure(f"tenant {night.tenant_id}: {exc}", allow_retries=False) from exc
    sync = OdooSync(client, night.tenant_id, score_min_export=settings.score_min_export,
                    min_bucket=settings.odoo_sync_min_bucket)
    report = sync_and_record(night.db, sync, [SyncRecord.from_row(row) for row in rows], run_id=night.run_id,
                             score_date=night.run_date)
    summary = report.summary()
    failures = [f"company {o.company_id}: {o.error}" for o in report.failed]
    night.record_stage("odoo_sync", summary, failures)
    if report.outcomes and len(report.failed) == len(report.outcomes):
        raise dg.Failure(f"all {len(report.outcomes)} Odoo records failed, e.g. {failures[0]}")
    if night.finish_from_outcome() != "succeeded":
        alert_night(night.db, settings, night.tenant_id, night.run_date)
    with night.transaction() as conn:
        scored = scores_db.scores_for(conn, night.run_date)
    table = [{"company": r["name"], "score": round(float(r["score"]), 3), "bucket": r["bucket"],
              "partner_id": r["odoo_partner_id"] or "-", "lead_id": r["odoo_lead_id"] or "-"}
             for r in scored if r["shortlisted"]]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        **{f"{model}": dg.MetadataValue.json(counts) for model, counts in summary.items() if isinstance(counts, dict)},
        "failed": summary["failed"],
        "rpc_calls": summary["rpc_calls"],
        "shortlist": preview(table, ["company", "score", "bucket", "partner_id", "lead_id"]),
    })
