"""Asset checks on a tenant's night, partitioned like the assets they check.

Each check reads the database in the partition tenant's transaction (row-level security), so it sees
exactly what that tenant's night wrote. Severity: ERROR for a broken promise (a cap exceeded, a
suppressed address offered, a score out of range, every Odoo record failed), WARN for a night that
only partly reached Odoo.
"""

import warnings

import dagster as dg

from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.lead_scores import lead_scores
from nightly_pipeline.assets.odoo_sync import odoo_sync
from nightly_pipeline.assets.verified_emails import verified_emails
from nightly_pipeline.db import night_checks as checks_db
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.partitions import tenant_day, tenant_day_partitions
from nightly_pipeline.scoring.score import buckets_at_or_above
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.night import ManifestMissing, TenantNight

# Partitioned checks are a preview feature of Dagster 1.13; they are what a partitioned night needs.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                        category=dg.PreviewWarning)

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
# The manifest's cap name for each vendor's meter, and whether it counts per day (OpenAI) or per run.
VENDOR_CAPS = {"openai": ("openai_daily_tokens", True), "tavily": ("tavily_queries", False),
               "lusha": ("lusha_contact_lookups", False), "zerobounce": ("zerobounce_verifications", False)}


def _night(context: dg.AssetCheckExecutionContext, database: DatabaseResource,
           pipeline_settings: PipelineSettings) -> TenantNight | dg.AssetCheckResult:
    part = tenant_day(context)
    try:
        return TenantNight.load(database.db, part.tenant_id, part.run_date, pipeline_settings.settings)
    except ManifestMissing as exc:
        return dg.AssetCheckResult(passed=False, severity=ERROR, description=str(exc))


def targets_within_cap(night: TenantNight, tenant_cap: int, manifest_cap: int | None) -> dg.AssetCheckResult:
    cap = min(c for c in (tenant_cap, manifest_cap) if c is not None)
    targets = len(night.company_ids)
    return dg.AssetCheckResult(passed=targets <= cap, severity=ERROR,
                               description=f"{targets} targets, cap {cap}",
                               metadata={"targets": targets, "cap": cap})


@dg.asset_check(asset=daily_targets, partitions_def=tenant_day_partitions, blocking=False,
                description="Tonight's targets are no more than the tenant's daily cap.")
def targets_within_daily_cap(context: dg.AssetCheckExecutionContext, database: DatabaseResource,
                             pipeline_settings: PipelineSettings) -> dg.AssetCheckResult:
    night = _night(context, database, pipeline_settings)
    if isinstance(night, dg.AssetCheckResult):
        return night
    with night.transaction() as conn:
        tenant = tenants_db.get_tenant(conn)
        manifest = targets_db.get_manifest_by_run_id(conn, night.run_id)
    return targets_within_cap(night, tenant.daily_cap or night.settings.daily_cap,
                              manifest.caps.get("daily_cap") if manifest else None)


@dg.asset_check(asset=verified_emails, partitions_def=tenant_day_partitions, blocking=False,
                description="No primary contact of tonight's targets has a suppressed address.")
def no_suppressed_primary(context: dg.AssetCheckExecutionContext, database: DatabaseResource,
                          pipeline_settings: PipelineSettings) -> dg.AssetCheckResult:
    night = _night(context, database, pipeline_settings)
    if isinstance(night, dg.AssetCheckResult):
        return night
    with night.transaction() as conn:
        suppressed = checks_db.suppressed_primaries(conn, list(night.company_ids))
    return dg.AssetCheckResult(passed=not suppressed, severity=ERROR,
                               description=f"{len(suppressed)} suppressed primary addresses",
                               metadata={"suppressed_primaries": len(suppressed)})


@dg.asset_check(asset=odoo_sync, partitions_def=tenant_day_partitions, blocking=False,
                description="No suppressed address among the contacts exported to Odoo.")
def no_suppressed_export(context: dg.AssetCheckExecutionContext, database: DatabaseResource,
                         pipeline_settings: PipelineSettings) -> dg.AssetCheckResult:
    night = _night(context, database, pipeline_settings)
    if isinstance(night, dg.AssetCheckResult):
        return night
    settings = night.settings
    with night.transaction() as conn:
        tenant = tenants_db.get_tenant(conn)
        rows = scores_db.records_to_sync(conn, night.run_date, buckets_at_or_above(settings.odoo_sync_min_bucket),
                                         include_unverified=tenant.export_unverified)
        exported = [c["email"] for row in rows for c in row["contacts"]]
        suppressed = checks_db.suppressed_among(conn, exported)
    return dg.AssetCheckResult(passed=not suppressed, severity=ERROR,
                               description=f"{len(suppressed)} suppressed of {len(exported)} exported addresses",
                               metadata={"exported": len(exported), "suppressed": len(suppressed)})


@dg.asset_check(asset=lead_scores, partitions_def=tenant_day_partitions, blocking=False,
                description="Every score of the night is in [0, 1] and has a rationale.")
def scores_in_range_with_rationale(context: dg.AssetCheckExecutionContext, database: DatabaseResource,
                                   pipeline_settings: PipelineSettings) -> dg.AssetCheckResult:
    part = tenant_day(context)
    with database.db.tenant(part.tenant_id) as conn:
        invalid = checks_db.invalid_scores(conn, part.run_date)
        scored = checks_db.score_count(conn, part.run_date)
    return dg.AssetCheckResult(passed=not invalid, severity=ERROR,
                               description=f"{len(invalid)} of {scored} scores out of [0, 1] or without rationale",
                               metadata={"scored": scored, "invalid": len(invalid),
                                         "invalid_companies": [r["company_id"] for r in invalid][:20]})


def sync_failures_result(records: int, failed: int) -> dg.AssetCheckResult:
    """Passes with no failure; WARN when some records failed, ERROR when all did."""
    severity = ERROR if records and failed == records else WARN
    return dg.AssetCheckResult(passed=failed == 0, severity=severity,
                               description=f"{failed} of {records} Odoo records failed",
                               metadata={"records": records, "failed": failed})


@dg.asset_check(asset=odoo_sync, partitions_def=tenant_day_partitions, blocking=False,
                description="Odoo records of the night that failed: WARN on some, ERROR on all.")
def odoo_sync_failures(context: dg.AssetCheckExecutionContext, database: DatabaseResource,
                       pipeline_settings: PipelineSettings) -> dg.AssetCheckResult:
    night = _night(context, database, pipeline_settings)
    if isinstance(night, dg.AssetCheckResult):
        return night
    with night.transaction() as conn:
        records, failed = checks_db.sync_results(conn, night.run_id)
    return sync_failures_result(records, failed)


def spend_result(spend: dict[str, int], caps: dict[str, int | None]) -> dg.AssetCheckResult:
    over = {vendor: (units, caps.get(vendor)) for vendor, units in spend.items()
            if caps.get(vendor) is not None and units > caps[vendor]}
    return dg.AssetCheckResult(
        passed=not over, severity=ERROR,
        description="within every cap" if not over else
        "; ".join(f"{vendor} {units} > cap {cap}" for vendor, (units, cap) in sorted(over.items())),
        metadata={"spend": dg.MetadataValue.json(spend), "caps": dg.MetadataValue.json(caps)})


@dg.asset_check(asset=odoo_sync, partitions_def=tenant_day_partitions, blocking=False,
                description="The night's vendor spend is within the tenant's caps (OpenAI per day, the rest per run).")
def spend_within_caps(context: dg.AssetCheckExecutionContext, database: DatabaseResource,
                      pipeline_settings: PipelineSettings) -> dg.AssetCheckResult:
    night = _night(context, database, pipeline_settings)
    if isinstance(night, dg.AssetCheckResult):
        return night
    with night.transaction() as conn:
        manifest = targets_db.get_manifest_by_run_id(conn, night.run_id)
        spend = checks_db.run_spend(conn, night.run_id)
        caps = {vendor: manifest.caps.get(name) for vendor, (name, _) in VENDOR_CAPS.items()}
        for vendor, (_, per_day) in VENDOR_CAPS.items():
            if per_day and vendor in spend:
                spend[vendor] = checks_db.day_spend(conn, vendor, night.run_id)
    return spend_result(spend, caps)


night_checks = [targets_within_daily_cap, no_suppressed_primary, no_suppressed_export,
                scores_in_range_with_rationale, odoo_sync_failures, spend_within_caps]
