"""The 01:00 Asia/Singapore schedule: one run per active tenant for that night's date."""

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from nightly_pipeline.jobs import nightly_job
from nightly_pipeline.clock import SINGAPORE, TIMEZONE
from nightly_pipeline.partitions import TENANTS, partition_key
from nightly_pipeline.settings import Settings, get_settings

TENANT_TAG = "tenant"


def chosen_tenants(tenant_keys: Iterable[str], settings: Settings) -> list[str]:
    """The tenants a night runs for: those given, narrowed by SCHED_TENANT_INCLUDE and _EXCLUDE."""
    include = {str(t) for t in settings.sched_tenant_include}
    exclude = {str(t) for t in settings.sched_tenant_exclude}
    return sorted((t for t in tenant_keys if (not include or t in include) and t not in exclude), key=int)


def nightly_run_requests(tenant_keys: list[str], scheduled_at: dt.datetime,
                         settings: Settings) -> list[dg.RunRequest] | dg.SkipReason:
    """The runs a tick requests, given the registered tenants (the sensor keeps them active)."""
    if not settings.sched_enabled:
        return dg.SkipReason("SCHED_ENABLED is false")
    chosen = chosen_tenants(tenant_keys, settings)
    if not chosen:
        include, exclude = settings.sched_tenant_include, settings.sched_tenant_exclude
        return dg.SkipReason(f"no active tenants to run (registered: {len(tenant_keys)}, "
                             f"include: {sorted(include) or 'all'}, exclude: {sorted(exclude) or 'none'})")
    run_date = scheduled_at.astimezone(SINGAPORE).date()
    requests = []
    for tenant in chosen:
        key = partition_key(run_date, tenant)
        requests.append(dg.RunRequest(run_key=str(key), partition_key=key, tags={TENANT_TAG: tenant}))
    return requests


def build_nightly_schedule(settings: Settings | None = None) -> dg.ScheduleDefinition:
    settings = settings or get_settings()

    @dg.schedule(name="nightly_per_tenant", job=nightly_job, cron_schedule=settings.sched_start_cron,
                 execution_timezone=TIMEZONE,
                 default_status=(dg.DefaultScheduleStatus.RUNNING if settings.sched_enabled
                                 else dg.DefaultScheduleStatus.STOPPED),
                 description="Nightly run per active tenant (SCHED_START_CRON, Asia/Singapore).")
    def nightly_per_tenant(context: dg.ScheduleEvaluationContext):
        tenants = context.instance.get_dynamic_partitions(TENANTS)
        return nightly_run_requests(list(tenants), context.scheduled_execution_time, settings)

    return nightly_per_tenant
