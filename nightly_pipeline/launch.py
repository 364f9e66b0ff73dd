"""Submit a tenant's night to the Dagster instance's run queue.

A run is created the way the UI's *Launch run* button creates one: Dagster's GraphQL ``launchRun``
mutation, executed in this process (``dagster_graphql.cli.execute_query``) against a
``WorkspaceProcessContext`` that loads the code location the daemon serves (location
``nightly_pipeline``, module ``nightly_pipeline.definitions``, as workspace.yaml says; the daemon
finds a queued run's code by that location name). With the instance's default
QueuedRunCoordinator the run is stored QUEUED, and the daemon starts it when dagster.yaml's tag
concurrency limits allow: at most SCHED_TENANT_CONCURRENCY tenant runs, never two of one tenant.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget

from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.db import Database
from nightly_pipeline.db.database import tenant_lock
from nightly_pipeline.jobs import nightly_job
from nightly_pipeline.partitions import TENANTS, date_partitions, partition_key, tenant_day_partitions, tenant_key
from nightly_pipeline.schedules import TENANT_TAG

log = logging.getLogger(__name__)

CODE_LOCATION = "nightly_pipeline"
DEFINITIONS_MODULE = "nightly_pipeline.definitions"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a Definitions object
PARTITION_TAG = "dagster/partition"
REQUESTED_BY_TAG = "nightly_pipeline/requested_by"

LAUNCH_RUN = """
mutation LaunchNight($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on Error { message }
  }
}
"""


class LaunchError(RuntimeError):
    """Dagster did not queue the run; the message is safe to show (no code, no environment)."""


class InvalidNight(ValueError):
    """A date outside the partitions (before the first one, or after today in Singapore)."""


@dataclasses.dataclass(frozen=True)
class NightRun:
    """A run of a tenant's night: one just queued (``created``) or one already queued or running."""

    tenant_id: int
    run_date: dt.date
    run_id: str
    status: str
    created: bool

    @property
    def partition_key(self) -> str:
        return str(partition_key(self.run_date, self.tenant_id))


def check_night(run_date: dt.date) -> None:
    if not date_partitions.has_partition_key(run_date.isoformat()):
        first = date_partitions.start.date()
        raise InvalidNight(f"date must be a night from {first} to today in Singapore ({today_in_singapore()}), "
                           f"got {run_date}")


def night_tags(tenant_id: int, run_date: dt.date, requested_by: str | None = None) -> dict[str, str]:
    """The tags a scheduled run of this night carries, so concurrency limits and the UI treat it alike."""
    key = partition_key(run_date, tenant_id)
    tags = {**tenant_day_partitions.get_tags_for_partition_key(key), TENANT_TAG: tenant_key(tenant_id)}
    if requested_by:
        tags[REQUESTED_BY_TAG] = requested_by
    return tags


def night_runs(instance: dg.DagsterInstance, tenant_id: int, run_date: dt.date, *,
               unfinished_only: bool = False, limit: int | None = None) -> list[dg.RunRecord]:
    """Runs of the night however they were started (schedule, backfill, API, CLI), newest first."""
    runs_filter = dg.RunsFilter(tags={PARTITION_TAG: str(partition_key(run_date, tenant_id))},
                                statuses=list(NOT_FINISHED_STATUSES) if unfinished_only else [])
    return list(instance.get_run_records(runs_filter, limit=limit))


def night_of_run(run: dg.DagsterRun) -> tuple[int, dt.date] | None:
    """The tenant and date a run belongs to, or None for a run that is no tenant night."""
    day, tenant = run.tags.get(f"{PARTITION_TAG}/date"), run.tags.get(f"{PARTITION_TAG}/tenant")
    if not (day and tenant):
        day, _, tenant = run.tags.get(PARTITION_TAG, "").partition("|")
    try:
        return int(tenant_key(tenant)), dt.date.fromisoformat(day)
    except ValueError:
        return None


class NightLauncher:
    """Holds the workspace (a code server subprocess) for as long as the caller keeps submitting."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._workspace = WorkspaceProcessContext(
            instance, ModuleTarget(DEFINITIONS_MODULE, None, None, CODE_LOCATION))

    def __enter__(self) -> "NightLauncher":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._workspace.__exit__(None, None, None)

    @property
    def workspace(self) -> WorkspaceProcessContext:
        return self._workspace

    def code_location_loaded(self) -> bool:
        entry = self._workspace.create_request_context().get_code_location_entries().get(CODE_LOCATION)
        return entry is not None and entry.code_location is not None

    def submit(self, db: Database, tenant_id: int, run_date: dt.date, *, requested_by: str | None = None,
               settings_overrides: Mapping[str, str] | None = None,
               run_config: Mapping[str, Any] | None = None) -> NightRun:
        """Queue the tenant's night, unless a run of it is already queued or running (then that run).

        ``settings_overrides`` (non-secret settings by variable name, e.g. SHORTLIST_DAILY_CAP) go in
        the run's config for the settings resource, so they hold wherever the run executes;
        ``run_config`` (op config such as daily_targets' ``limit``) is merged beside them.

        An advisory lock per tenant and date in the app database makes check-and-submit atomic for
        every submitter sharing that database, in this process or another.
        """
        check_night(run_date)
        with tenant_lock(db, tenant_id, f"submit night {run_date.isoformat()}"):
            active = night_runs(self.instance, tenant_id, run_date, unfinished_only=True, limit=1)
            if active:
                run = active[0].dagster_run
                return NightRun(tenant_id, run_date, run.run_id, run.status.value, created=False)
            key = tenant_key(tenant_id)
            if not self.instance.has_dynamic_partition(TENANTS, key):
                self.instance.add_dynamic_partitions(TENANTS, [key])
            run_id, status = self._launch(night_tags(tenant_id, run_date, requested_by), settings_overrides,
                                          run_config)
        log.info("queued night %s as Dagster run %s", partition_key(run_date, tenant_id), run_id)
        return NightRun(tenant_id, run_date, run_id, status, created=True)

    def _launch(self, tags: Mapping[str, str], settings_overrides: Mapping[str, str] | None = None,
                extra_config: Mapping[str, Any] | None = None) -> tuple[str, str]:
        from dagster_graphql.cli import execute_query

        run_config: dict[str, Any] = dict(extra_config or {})
        if settings_overrides:
            run_config["resources"] = {"pipeline_settings": {"config": {"overrides": dict(settings_overrides)}}}
        params = {"selector": {"repositoryLocationName": CODE_LOCATION, "repositoryName": REPOSITORY,
                               "jobName": nightly_job.name},
                  "runConfigData": run_config,
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}
        result = execute_query(self._workspace, LAUNCH_RUN, {"params": params})
        if result.get("errors"):
            log.error("Dagster rejected the launch query: %s", [e.get("message") for e in result["errors"]])
            raise LaunchError("Dagster could not queue the run")
        outcome = result["data"]["launchRun"]
        if outcome["__typename"] != "LaunchRunSuccess":
            log.error("Dagster refused the run: %s: %s", outcome["__typename"], outcome.get("message", ""))
            raise LaunchError(f"Dagster refused the run ({outcome['__typename']})")
        return outcome["run"]["runId"], outcome["run"]["status"]
