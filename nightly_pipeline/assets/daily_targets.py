"""Stage 3: tonight's capped target set and its run manifest in ``enrichment_runs``.

A re-run of the same partition reuses the manifest instead of choosing anew, so every later stage
of a retried or resumed night works on the same companies. A run launched with a target limit
(``run_nightly.py --limit N``) chooses at most N targets for a new manifest, and processes only the
first N targets of an existing one (the manifest itself is kept whole for later runs).
"""
import dataclasses
import datetime as dt

import dagster as dg
from pydantic import Field

from nightly_pipeline.alerts import alert_night
from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.targets import Candidate, Target, choose_targets
from nightly_pipeline.night_watch import fail_orphaned_night
from nightly_pipeline.partitions import tenant_day, tenant_day_partitions
from nightly_pipeline.settings import Settings
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.night import TenantNight


class DailyTargetsConfig(dg.Config):
    """Per-run options; the nightly schedule sets none."""

    limit: int | None = Field(None, ge=1, description="at most this many targets processed by this run")


def night_cap(tenant_cap: int | None, settings: Settings, limit: int | None) -> int:
    """Targets for a new manifest: the tenant's cap (else the daily cap), never more than the run's limit."""
    cap = tenant_cap or settings.daily_cap
    return min(cap, limit) if limit is not None else cap


def choose(candidates: list[Candidate], run_date: dt.date, cap: int, settings: Settings) -> list[Target]:
    """Tonight's targets, with the staleness window of the settings."""
    return choose_targets(candidates, run_date=run_date, cap=cap, stale_after_days=settings.stale_after_days)


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
                  pipeline_settings: PipelineSettings, config: DailyTargetsConfig) -> dg.MaterializeResult:
    part = tenant_day(context)
    settings = pipeline_settings.settings
    # An earlier run of this night that died mid-stage left it running: it failed, whatever comes now.
    if fail_orphaned_night(database.db, context.instance, part.tenant_id, part.run_date, context.run.run_id):
        alert_night(database.db, settings, part.tenant_id, part.run_date)
    with database.db.tenant(part.tenant_id) as conn:
        manifest = targets_db.get_manifest(conn, part.run_date)
        if manifest is None:
            tenant = tenants_db.get_tenant(conn)
            cap = night_cap(tenant.daily_cap, settings, config.limit)
            candidates = targets_db.candidates_with_history(conn, part.run_date)
            chosen = choose(candidates, part.run_date, cap, settings)
            manifest = targets_db.create_manifest(
                conn, part.run_date, chosen,
                caps={"daily_cap": cap, "crawl_max_pages": settings.crawl_max_pages,
                      "company_concurrency": settings.sched_company_concurrency, **vendor_caps(settings)},
                budget_snapshot={"vendors_available": vendor_availability(settings), **vendor_caps(settings)},
                dagster_run_id=context.run.run_id)
            candidate_count = len(candidates)
        else:
            candidate_count = None
        # Every run says how much of the manifest it processes, so a limit lasts one run only.
        targets_db.set_run_limit(conn, manifest.run_id, config.limit)
        created = manifest.created
        manifest = dataclasses.replace(targets_db.get_manifest(conn, part.run_date), created=created)
        processed = manifest.company_ids_to_process
        details = acra_db.companies_by_id(conn, processed)
    with TenantNight.of(database.db, manifest, settings).stage("daily_targets", context.run.run_id):
        pass  # the night runs from here; its stage row records the manifest's (re)use
    rows = [{"company": details[cid].name, "uen": details[cid].uen,
             "domain": details[cid].website_domain or "(to discover)",
             "why": manifest.target_reasons.get(str(cid), "")} for cid in processed]
    context.log.info("tenant %s %s: %d targets (%s manifest %s)", part.tenant_id, part.run_date, len(rows),
                     "new" if manifest.created else "reused", manifest.run_id)
    metadata: dict = {
        "tenant_id": part.tenant_id,
        "run_id": str(manifest.run_id),
        "manifest": "created" if manifest.created else "reused",
        "dagster/row_count": len(rows),
        "daily_cap": manifest.caps.get("daily_cap"),
        "manifest_targets": len(manifest.selected_company_ids),
        "run_limit": config.limit if config.limit is not None else "-",
        "preview": preview(rows, ["company", "uen", "domain", "why"]),
    }
    if candidate_count is not None:
        metadata["candidates_considered"] = candidate_count
    return dg.MaterializeResult(metadata=metadata)
