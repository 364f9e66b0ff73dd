"""Stage 3: tonight's capped target set and its run manifest in ``enrichment_runs``.

A re-run of the same partition reuses the manifest instead of choosing anew, so every later stage
of a retried or resumed night works on the same companies.
"""

import dagster as dg

from nightly_pipeline.alerts import alert_night
from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.targets import choose_targets
from nightly_pipeline.night_watch import fail_orphaned_night
from nightly_pipeline.partitions import tenant_day, tenant_day_partitions
from nightly_pipeline.settings import Settings
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.night import TenantNight

STALE_AFTER_DAYS = 30


def vendor_caps(settings: Settings) -> dict[str, int]:
    return {"openai_daily_tokens": settings.openai_daily_tokens_cap, "tavily_queries": settings.tavily_max_queries,
            "lusha_contact_lookups": settings.lusha_max_contact_lookups,
            "zerobounce_verifications": settings.zerobounce_max_verifications}


def vendor_availability(settings: Settings) -> dict[str, bool]:
    """Which vendors this run may call: key names only, never their values."""
    return {"openai": settings.openai_api_key is not None, "tavily": settings.tavily_api_key is not None,
            "lusha": settings.lusha_api_key is not None and settings.enable_lusha_fallback,
            "zerobounce": settings.zerobounce_api_key is not None}


@dg.asset(partitions_def=tenant_day_partitions, deps=[icp_candidates], kinds={"postgres"},
          description="The tenant's capped target set for the night, recorded as a run manifest.")
def daily_targets(context: dg.AssetExecutionContext, database: DatabaseResource,
                  pipeline_settings: PipelineSettings) -> dg.MaterializeResult:
    part = tenant_day(context)
    settings = pipeline_settings.settings
    # An earlier run of this night that died mid-stage left it running: it failed, whatever comes now.
    if fail_orphaned_night(database.db, context.instance, part.tenant_id, part.run_date, context.run.run_id):
        alert_night(database.db, settings, part.tenant_id, part.run_date)
    with database.db.tenant(part.tenant_id) as conn:
        manifest = targets_db.get_manifest(conn, part.run_date)
        if manifest is None:
            tenant = tenants_db.get_tenant(conn)
            cap = tenant.daily_cap or settings.daily_cap
            candidates = targets_db.candidates_with_history(conn, part.run_date)
            chosen = choose_targets(candidates, run_date=part.run_date, cap=cap, stale_after_days=STALE_AFTER_DAYS)
            manifest = targets_db.create_manifest(
                conn, part.run_date, chosen,
                caps={"daily_cap": cap, "crawl_max_pages": settings.crawl_max_pages,
                      "company_concurrency": settings.sched_company_concurrency, **vendor_caps(settings)},
                budget_snapshot={"vendors_available": vendor_availability(settings), **vendor_caps(settings)},
                dagster_run_id=context.run.run_id)
            candidate_count = len(candidates)
        else:
            candidate_count = None
        details = acra_db.companies_by_id(conn, manifest.selected_company_ids)
    with TenantNight.of(database.db, manifest, settings).stage("daily_targets", context.run.run_id):
        pass  # the night runs from here; its stage row records the manifest's (re)use
    rows = [{"company": details[cid].name, "uen": details[cid].uen,
             "domain": details[cid].website_domain or "(to discover)",
             "why": manifest.target_reasons.get(str(cid), "")} for cid in manifest.selected_company_ids]
    context.log.info("tenant %s %s: %d targets (%s manifest %s)", part.tenant_id, part.run_date, len(rows),
                     "new" if manifest.created else "reused", manifest.run_id)
    metadata: dict = {
        "tenant_id": part.tenant_id,
        "run_id": str(manifest.run_id),
        "manifest": "created" if manifest.created else "reused",
        "dagster/row_count": len(rows),
        "daily_cap": manifest.caps.get("daily_cap"),
        "preview": preview(rows, ["company", "uen", "domain", "why"]),
    }
    if candidate_count is not None:
        metadata["candidates_considered"] = candidate_count
    return dg.MaterializeResult(metadata=metadata)
