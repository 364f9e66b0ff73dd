"""Run the nightly pipeline for every schedulable tenant (``scripts/run_nightly.py``).

Enumerates the schedulable tenants (honouring SCHED_TENANT_INCLUDE/EXCLUDE) and submits each
tenant's night to the Dagster instance's run queue (DAGSTER_HOME), as the admin API does, then
waits for the runs and prints how each ended. The queue's limits apply to these runs like to
scheduled ones and backfills: at most SCHED_TENANT_CONCURRENCY tenant runs at once, never two of
one tenant; a night already queued or running is waited for, not started again.

No ``dagster-daemon`` is needed: while none is running, this command takes queued runs off the
queue itself with the instance's queued run coordinator (the daemon's own code and tag limits),
and stops doing so as soon as a daemon appears. Each run works in its own process, as under the
daemon, and takes the tenant-run lease every run takes.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.db import Database, open_database
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.launch import LaunchError, NightLauncher, NightRun
from nightly_pipeline.partitions import partition_key
from nightly_pipeline.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    import dagster as dg

QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
REQUESTED_BY = "run_nightly.py"
POLL_S = 2.0


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    tenant_id: int
    name: str
    run_date: dt.date

    @property
    def key(self) -> str:
        return str(partition_key(self.run_date, self.tenant_id))


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """How a tenant's night ended: the Dagster run that worked it (``created`` False when a run of
    that night was already queued or running and this command waited for it instead)."""

    run: PlannedRun
    run_id: str
    status: str
    created: bool
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"


def plan_runs(settings: Settings, *, run_date: dt.date, tenant_ids: Sequence[int] = (),
              from_manifest: uuid.UUID | None = None) -> list[PlannedRun]:
    with open_database(settings) as db:
        with db.shared() as conn:
            directory = [t for t in tenants_db.directory(conn) if t.schedulable]
        if from_manifest is not None:
            for tenant in directory:
                with db.tenant(tenant.tenant_id) as conn:
                    manifest = targets_db.get_manifest_by_run_id(conn, from_manifest)
                if manifest is not None:
                    return [PlannedRun(tenant.tenant_id, tenant.name, manifest.run_date)]
            raise LookupError(f"no active tenant has a run manifest {from_manifest}")
    include = set(tenant_ids) or set(settings.sched_tenant_include)
    exclude = set(settings.sched_tenant_exclude)
    return [PlannedRun(t.tenant_id, t.name, run_date) for t in directory
            if (not include or t.tenant_id in include) and t.tenant_id not in exclude]


def queue_daemon_running(instance: "dg.DagsterInstance") -> bool:
    """Whether a ``dagster-daemon`` with a recent heartbeat is taking runs off this instance's queue."""
    from dagster._daemon.controller import get_daemon_statuses

    status = get_daemon_statuses(instance, [QUEUE_DAEMON]).get(QUEUE_DAEMON)
    return bool(status and status.healthy)


def submit_runs(launcher: NightLauncher, db: Database, runs: Sequence[PlannedRun], *,
                limit: int | None) -> dict[str, tuple[PlannedRun, NightRun]]:
    """Queue each tenant's night (or find the run of it already queued or running), by run id."""
    overrides = {"SHORTLIST_DAILY_CAP": str(limit)} if limit is not None else None
    submitted = {}
    for run in runs:
        night = launcher.submit(db, run.tenant_id, run.run_date, requested_by=REQUESTED_BY,
                                settings_overrides=overrides)
        if not night.created:
            print(f"{run.key}: a run of this night is already {night.status.lower()} ({night.run_id}); "
                  f"waiting for it instead of starting another")
        submitted[night.run_id] = (run, night)
    return submitted


def run_outcomes(instance: "dg.DagsterInstance", submitted: dict[str, tuple[PlannedRun, NightRun]],
                 started: float) -> list[RunOutcome]:
    """The runs' outcomes as Dagster records them now (status of unfinished runs included)."""
    outcomes = []
    for run_id, (planned, night) in submitted.items():
        record = instance.get_run_by_id(run_id)
        status = record.status.value if record is not None else "MISSING"
        outcomes.append(RunOutcome(planned, run_id, status, night.created, time.monotonic() - started))
    return outcomes


def wait_for_runs(launcher: NightLauncher, submitted: dict[str, tuple[PlannedRun, NightRun]], *,
                  poll_s: float = POLL_S) -> list[RunOutcome]:
    """Wait until every submitted run has finished, taking queued runs off the queue here when no
    ``dagster-daemon`` does (with the instance's coordinator and its tag concurrency limits)."""
    from dagster._core.storage.dagster_run import FINISHED_STATUSES
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    instance = launcher.instance
    started = time.monotonic()
    coordinator: QueuedRunCoordinatorDaemon | None = None
    try:
        while True:
            unfinished = [run_id for run_id in submitted
                          if (record := instance.get_run_by_id(run_id)) is not None
                          and record.status not in FINISHED_STATUSES]
            if not unfinished:
                return run_outcomes(instance, submitted, started)
            if queue_daemon_running(instance):
                if coordinator is not None:
                    coordinator.__exit__(None, None, None)
                    coordinator = None
            else:
                if coordinator is None:
                    print("run_nightly: no dagster-daemon is running; taking the queued runs off the queue here")
                    coordinator = QueuedRunCoordinatorDaemon(interval_seconds=poll_s)
                for _ in coordinator.run_iteration(launcher.workspace):
                    pass
            time.sleep(poll_s)
    finally:
        if coordinator is not None:
            coordinator.__exit__(None, None, None)


def run_all(settings: Settings, runs: Sequence[PlannedRun], *, limit: int | None) -> list[RunOutcome]:
    """Submit the nights to the instance's run queue and wait for them; see the module docstring."""
    ensure_dagster_home(settings)
    import dagster as dg

    with dg.DagsterInstance.get() as instance, open_database(settings) as db, NightLauncher(instance) as launcher:
        submitted = submit_runs(launcher, db, runs, limit=limit)
        return wait_for_runs(launcher, submitted)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_nightly.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", type=int, action="append", default=[], metavar="ID",
                        help="run only this tenant (repeatable)")
    parser.add_argument("--limit", type=int, help="targets per tenant for this run (overrides the daily cap)")
    parser.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    parser.add_argument("--from-manifest", type=uuid.UUID, metavar="RUN_ID",
                        help="re-run the tenant and date of an earlier manifest, resuming it")
    parser.add_argument("--date", type=dt.date.fromisoformat, help="YYYY-MM-DD (default: today in Singapore)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:

    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        print("run_nightly: --limit must be a positive integer", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        runs = plan_runs(settings, run_date=args.date or today_in_singapore(), tenant_ids=args.tenant,
                         from_manifest=args.from_manifest)
    except (SettingsError, LookupError) as exc:
        print(f"run_nightly: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print("run_nightly: no active tenants to run")
        return 0
    for run in runs:
        print(f"{'would run' if args.dry_run else 'running'} {run.key} ({run.name})")
    if args.dry_run:
        return 0
    try:
        outcomes = run_all(settings, runs, limit=args.limit)
    except LaunchError as exc:
        print(f"run_nightly: {exc}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        status = "ok" if outcome.succeeded else f"FAILED ({outcome.status})"
        whose = "" if outcome.created else " (a run started elsewhere)"
        print(f"{outcome.run.key} {status} in {outcome.seconds:.1f} s, Dagster run {outcome.run_id}{whose}")
    return 0 if all(o.succeeded for o in outcomes) else 1
