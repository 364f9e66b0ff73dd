"""Keeps the ``tenants`` dynamic partitions in step with the active tenants of the app database, and
each tenant-night's final status true when its run fails, is cancelled or dies (``night_watch``)."""

import datetime as dt

import dagster as dg

from nightly_pipeline import alerts, night_watch
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.jobs import nightly_job
from nightly_pipeline.partitions import TENANTS, tenant_partitions
from nightly_pipeline.settings import Settings
from nightly_pipeline.settings_resource import PipelineSettings


def partition_changes(active: set[str], known: set[str]) -> list:
    requests = []
    if added := sorted(active - known, key=int):
        requests.append(tenant_partitions.build_add_request(added))
    if removed := sorted(known - active, key=lambda k: (not k.isdigit(), k)):
        requests.append(tenant_partitions.build_delete_request(removed))
    return requests


@dg.sensor(name="tenant_registry", job=nightly_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Registers a partition per active tenant with an active Odoo connection; drops the rest.")
def tenant_registry_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    with database.db.shared() as conn:
        active = {str(t.tenant_id) for t in tenants_db.directory(conn) if t.schedulable}
    known = set(context.instance.get_dynamic_partitions(TENANTS))
    requests = partition_changes(active, known)
    if not requests:
        return dg.SensorResult(skip_reason=f"{len(active)} active tenants, all registered")
    return dg.SensorResult(dynamic_partitions_requests=requests)


def _failure_of(context: dg.RunFailureSensorContext | dg.RunStatusSensorContext) -> night_watch.RunFailure:
    """The failed stage and its cause, from the run's step failure events (else the run's own)."""
    steps = context.get_step_failure_events() if isinstance(context, dg.RunFailureSensorContext) else []
    if steps:
        event = steps[-1]
        error = event.event_specific_data.error if event.event_specific_data else None
        cause = error.message.strip().splitlines()[0] if error and error.message else event.message or "step failed"
        return night_watch.RunFailure(event.step_key, cause)
    if isinstance(context, dg.RunFailureSensorContext):
        return night_watch.RunFailure(None, context.failure_event.message or "run failed")
    return night_watch.RunFailure(None, "run cancelled")


def _redacted(failure: night_watch.RunFailure, settings: Settings) -> night_watch.RunFailure:
    return night_watch.RunFailure(failure.stage, alerts.redact(failure.cause, alerts.known_secrets(settings)))


@dg.run_failure_sensor(name="night_failed", default_status=dg.DefaultSensorStatus.RUNNING,
                       minimum_interval_seconds=30, monitor_all_code_locations=False,
                       description="Marks the tenant-night of a failed run failed, with the stage and cause.")
def night_failed_sensor(context: dg.RunFailureSensorContext, database: DatabaseResource,
                        pipeline_settings: PipelineSettings) -> None:
    settings = pipeline_settings.settings
    night_watch.fail_night_of_run(database.db, settings, context.dagster_run,
                                  _redacted(_failure_of(context), settings))


@dg.run_status_sensor(name="night_cancelled", run_status=dg.DagsterRunStatus.CANCELED,
                      default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                      description="Marks the tenant-night of a cancelled run failed.")
def night_cancelled_sensor(context: dg.RunStatusSensorContext, database: DatabaseResource,
                           pipeline_settings: PipelineSettings) -> None:
    night_watch.fail_night_of_run(database.db, pipeline_settings.settings, context.dagster_run,
                                  night_watch.RunFailure(None, "run cancelled"))


@dg.sensor(name="night_watch", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Fails nights whose run died, sends unsent alerts and alerts nights that miss NIGHT_SLA.")
def night_watch_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource,
                       pipeline_settings: PipelineSettings) -> dg.SkipReason:
    counts = night_watch.watch(database.db, pipeline_settings.settings, context.instance,
                               dt.datetime.now(dt.timezone.utc))
    return dg.SkipReason(", ".join(f"{k}: {v}" for k, v in counts.items()))
