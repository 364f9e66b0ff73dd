"""Keeping each tenant-night's final status true when a run ends other than through its last stage.

A stage that raises marks its night ``failed`` itself (``TenantNight.stage``). What it cannot see is
its own death: a run cancelled between stages, failing outside a stage body, or its process killed.
The run failure and cancellation sensors mark the night of such a run ``failed`` with the stage and
cause from the run's failure events; a night still ``running`` whose Dagster run is no longer alive
is marked ``failed`` by the next run of the tenant (``daily_targets``) and by the watch sensor, which
also sends the alerts nobody sent yet and the alerts of nights that missed their SLA.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import dagster as dg

from nightly_pipeline import alerts
from nightly_pipeline.clock import SINGAPORE
from nightly_pipeline.db import Database
from nightly_pipeline.db import night_stages as stages_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.schedules import chosen_tenants
from nightly_pipeline.settings import Settings
from nightly_pipeline.stages.night import worker_is_dead

log = logging.getLogger(__name__)

KILLED = "run ended without finishing: process killed?"
IN_FLIGHT = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}
ENDED_BADLY = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def run_is_dead(instance: dg.DagsterInstance, dagster_run_id: str | None, worker: str | None) -> bool:
    """Whether the Dagster run behind a ``running`` night can no longer finish it.

    It ended badly, or it still reads as in flight while the process that ran its stage on this host
    is gone (a ``kill -9`` leaves the run ``STARTED`` for ever); that run is then reported failed to
    the instance too, as Dagster's run monitoring would. A run on another host is trusted.
    """
    run = instance.get_run_by_id(dagster_run_id) if dagster_run_id else None
    if run is not None and run.status in ENDED_BADLY:
        return True
    if not worker_is_dead(worker):
        return False
    if run is not None and run.status in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                                          dg.DagsterRunStatus.CANCELING):
        instance.report_run_failed(run, message=f"{KILLED} (worker {worker} is gone)")
    return run is None or run.status not in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)


def fail_orphaned_night(db: Database, instance: dg.DagsterInstance, tenant_id: int, run_date: dt.date,
                        current_dagster_run_id: str | None = None) -> bool:
    """Mark the tenant's night ``failed`` if it is left unfinished by a run that is not alive."""
    with db.tenant(tenant_id) as conn:
        state = stages_db.night_state(conn, run_date)
    if state is None or state.status not in ("selected", "running"):
        return False
    if state.dagster_run_id == current_dagster_run_id or state.status == "selected" and state.worker is None:
        return False
    if not run_is_dead(instance, state.dagster_run_id, state.worker):
        return False
    with db.tenant(tenant_id) as conn:
        stage = stages_db.running_stage(conn, state.run_id)
        stages_db.fail_open_stages(conn, state.run_id, KILLED)
        where = f"stage {stage}: " if stage else ""
        changed = stages_db.fail_night(conn, state.run_id, f"{where}{KILLED}")
    if changed:
        log.warning("tenant %s night %s: %s%s", tenant_id, run_date, where, KILLED)
    return changed


@dataclasses.dataclass(frozen=True)
class RunFailure:
    stage: str | None
    cause: str


def fail_night_of_run(db: Database, settings: Settings, run: dg.DagsterRun, failure: RunFailure) -> bool:
    """Mark the night of a failed or cancelled run ``failed`` (unless a later run owns it now) and
    send its alert; whether the night's status changed."""
    tenant = run.tags.get("dagster/partition/tenant")
    date = run.tags.get("dagster/partition/date")
    if not (tenant and tenant.isdigit() and date):
        return False
    tenant_id, run_date = int(tenant), dt.date.fromisoformat(date)
    try:
        with db.tenant(tenant_id) as conn:
            state = stages_db.night_state(conn, run_date)
            if state is None or state.dagster_run_id not in (None, run.run_id):
                return False
            open_stage = stages_db.running_stage(conn, state.run_id)
            stage = failure.stage or open_stage
            stages_db.fail_open_stages(conn, state.run_id, failure.cause)
            changed = stages_db.fail_night(conn, state.run_id,
                                           f"stage {stage} failed: {failure.cause}" if stage else failure.cause)
    except tenants_db.TenantNotFound:
        return False
    alerts.alert_night(db, settings, tenant_id, run_date)
    return changed


def watch(db: Database, settings: Settings, instance: dg.DagsterInstance, now: dt.datetime) -> dict[str, int]:
    """One sweep over the schedulable tenants: orphaned nights failed, unsent alerts sent, SLA checked."""
    today = now.astimezone(SINGAPORE).date()
    with db.shared() as conn:
        directory = [t for t in tenants_db.directory(conn) if t.schedulable]
    counts = {"orphans_failed": 0, "alerts_sent": 0, "sla_alerts_sent": 0}
    # Only a night the schedule was to run tonight can be late.
    scheduled = set(chosen_tenants([str(t.tenant_id) for t in directory], settings) if settings.sched_enabled else [])
    for tenant in directory:
        with db.tenant(tenant.tenant_id) as conn:
            unfinished = stages_db.unfinished_nights(conn)
        for night in unfinished:
            if fail_orphaned_night(db, instance, tenant.tenant_id, night.run_date):
                counts["orphans_failed"] += 1
                counts["alerts_sent"] += alerts.alert_night(db, settings, tenant.tenant_id, night.run_date)
        with db.tenant(tenant.tenant_id) as conn:
            finished = stages_db.finished_nights_since(conn, today - dt.timedelta(days=1))
        for night in finished:
            run = instance.get_run_by_id(night.dagster_run_id) if night.dagster_run_id else None
            if night.status == "failed" and run is not None and run.status in IN_FLIGHT:
                continue  # a stage failed and its retry may still finish the night
            counts["alerts_sent"] += alerts.alert_night(db, settings, tenant.tenant_id, night.run_date)
        if str(tenant.tenant_id) not in scheduled:
            continue
        with db.tenant(tenant.tenant_id) as conn:
            state = stages_db.night_state(conn, today)
        finished_status = state is not None and state.status in ("succeeded", "partial", "failed")
        if alerts.sla_missed(settings, state.finished_at if finished_status else None, today, now):
            alert = alerts.night_alert(db, tenant.tenant_id, today, outcome="sla_missed")
            if alert is not None:
                counts["sla_alerts_sent"] += alerts.send_once(db, settings, alert)
    return counts
