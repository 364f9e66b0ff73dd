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

``--limit N`` caps what each run processes: a new manifest chooses at most N targets (never more
than the tenant's cap), and an existing manifest (today's, or ``--from-manifest``) is processed
only for its first N targets, in their order, while the manifest itself is kept whole. ``--dry-run``
prints, per tenant, the targets the run would work on with their reasons, the caps and the budgets
left, and changes nothing: no manifest, no migration, no vendor call.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nightly_pipeline.assets.daily_targets import choose, night_cap
from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import open_database
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.database import Database, DatabaseError
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
class NightPreview:
    """What a run would do, read without writing anything."""

    manifest: str
    targets: tuple[tuple[str, str, str], ...]   # (company, UEN, why)
    caps: dict[str, int]
    remaining: dict[str, int]

    def lines(self) -> list[str]:
        out = [f"  manifest: {self.manifest}",
               "  caps: " + ", ".join(f"{name}={value}" for name, value in self.caps.items()),
               "  budget left: " + ", ".join(f"{name}={value}" for name, value in self.remaining.items()),
               f"  targets ({len(self.targets)}):"]
        out += [f"    {company} (UEN {uen}): {why}" for company, uen, why in self.targets]
        return out


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    tenant_id: int
    name: str
    run_date: dt.date
    limit: int | None = None
    preview: NightPreview | None = None

    @property
    def key(self) -> str:
        return str(partition_key(self.run_date, self.tenant_id))

    def run_config(self) -> dict:
        """The run's config: the target limit goes to daily_targets, which applies it to the manifest."""
        return {"ops": {"daily_targets": {"config": {"limit": self.limit}}}} if self.limit is not None else {}


def preview_night(db: Database, settings: Settings, run: PlannedRun) -> NightPreview:
    """The targets, caps and budgets of ``run`` as its daily_targets would see them, read only."""
    from nightly_pipeline.stages.night import TenantNight

    with db.tenant(run.tenant_id) as conn:
        manifest = targets_db.get_manifest(conn, run.run_date)
        if manifest is None:
            tenant = tenants_db.get_tenant(conn)
            cap = night_cap(tenant.daily_cap, settings, run.limit)
            chosen = choose(targets_db.candidates_with_history(conn, run.run_date), run.run_date, cap, settings)
            ids, reasons = [t.company_id for t in chosen], {t.company_id: t.reason for t in chosen}
            run_id, described = uuid.uuid4(), f"new, at most {cap} targets"
        else:
            cap = int(manifest.caps.get("daily_cap") or len(manifest.selected_company_ids))
            ids = manifest.selected_company_ids[:run.limit] if run.limit else list(manifest.selected_company_ids)
            reasons = {int(cid): why for cid, why in manifest.target_reasons.items()}
            run_id = manifest.run_id
            described = (f"existing {manifest.run_id} ({len(manifest.selected_company_ids)} targets"
                         + (f", this run processes the first {len(ids)})" if run.limit else ")"))
        details = acra_db.companies_by_id(conn, ids)
    night = TenantNight(db, run.tenant_id, run_id, run.run_date, settings, tuple(ids))
    caps, remaining = {"targets": cap}, {}
    for vendor in ("openai", "tavily", "lusha", "zerobounce"):
        meter = night.meter(vendor)
        caps[vendor] = meter.cap
        remaining[vendor] = night.budget.remaining(vendor, meter.cap, meter.scope)
    targets = tuple((details[cid].name, details[cid].uen, reasons.get(cid, "")) for cid in ids if cid in details)
    return NightPreview(described, targets, caps, remaining)


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
              from_manifest: uuid.UUID | None = None, limit: int | None = None,
              dry_run: bool = False) -> list[PlannedRun]:
    """The runs to start, each with the run's target limit; a dry run adds each run's preview and
    neither migrates nor writes."""
    if dry_run and settings.database_url is None and not (Path(settings.dagster_home) / "pgdata").exists():
        raise LookupError(f"no embedded database under {settings.dagster_home} yet, so nothing to preview; "
                          "the first real run creates it")
    with open_database(settings, migrate_embedded=not dry_run) as db:
        runs = _planned(db, settings, run_date, tenant_ids, from_manifest, limit)
        if dry_run:
            runs = [dataclasses.replace(run, preview=preview_night(db, settings, run)) for run in runs]
    return runs


def _planned(db: Database, settings: Settings, run_date: dt.date, tenant_ids: Sequence[int],
             from_manifest: uuid.UUID | None, limit: int | None) -> list[PlannedRun]:
    with db.shared() as conn:
        directory = [t for t in tenants_db.directory(conn) if t.schedulable]
    if from_manifest is not None:
        for tenant in directory:
            with db.tenant(tenant.tenant_id) as conn:
                manifest = targets_db.get_manifest_by_run_id(conn, from_manifest)
            if manifest is not None:
                return [PlannedRun(tenant.tenant_id, tenant.name, manifest.run_date, limit)]
        raise LookupError(f"no active tenant has a run manifest {from_manifest}")
    include = set(tenant_ids) or set(settings.sched_tenant_include)
    exclude = set(settings.sched_tenant_exclude)
    return [PlannedRun(t.tenant_id, t.name, run_date, limit) for t in directory
            if (not include or t.tenant_id in include) and t.tenant_id not in exclude]


def queue_daemon_running(instance: "dg.DagsterInstance") -> bool:
    """Whether a ``dagster-daemon`` with a recent heartbeat is taking runs off this instance's queue."""
    from dagster._daemon.controller import get_daemon_statuses

    status = get_daemon_statuses(instance, [QUEUE_DAEMON]).get(QUEUE_DAEMON)
    return bool(status and status.healthy)


def submit_runs(launcher: NightLauncher, db: Database,
                runs: Sequence[PlannedRun]) -> dict[str, tuple[PlannedRun, NightRun]]:
    """Queue each tenant's night (or find the run of it already queued or running), by run id."""
    submitted = {}
    for run in runs:
        night = launcher.submit(db, run.tenant_id, run.run_date, requested_by=REQUESTED_BY,
                                run_config=run.run_config())
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


def run_all(settings: Settings, runs: Sequence[PlannedRun]) -> list[RunOutcome]:
    """Submit the nights to the instance's run queue and wait for them; see the module docstring."""
    ensure_dagster_home(settings)
    import dagster as dg

    with dg.DagsterInstance.get() as instance, open_database(settings) as db, NightLauncher(instance) as launcher:
        submitted = submit_runs(launcher, db, runs)
        return wait_for_runs(launcher, submitted)


def print_night_summary(settings: Settings, runs: Sequence[PlannedRun]) -> bool:
    """Print each run tenant's night as ``nightly-pipeline runs`` does; False when any night failed
    (or never finished)."""
    import dagster as dg

    from nightly_pipeline.run_report import format_nights, night_report

    ensure_dagster_home(settings)
    with open_database(settings) as db, dg.DagsterInstance.get() as instance:
        nights = [night_report(db, instance, settings, run.tenant_id, run.run_date) for run in runs]
    print(format_nights(nights))
    return all(n["status"] in ("succeeded", "partial") for n in nights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_nightly.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", type=int, action="append", default=[], metavar="ID",
                        help="run only this tenant (repeatable)")
    parser.add_argument("--limit", type=int,
                        help="targets this run processes per tenant: caps a new manifest (never above the "
                             "tenant's cap), processes only the first N of an existing one")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each tenant's targets, caps and budgets left; write nothing, call no vendor")
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
                         from_manifest=args.from_manifest, limit=args.limit, dry_run=args.dry_run)
    except (SettingsError, LookupError, DatabaseError) as exc:
        print(f"run_nightly: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print("run_nightly: no active tenants to run")
        return 0
    for run in runs:
        print(f"{'would run' if args.dry_run else 'running'} {run.key} ({run.name})")
        if run.preview is not None:
            print("\n".join(run.preview.lines()))
    if args.dry_run:
        return 0
    try:
        outcomes = run_all(settings, runs)
    except LaunchError as exc:
        print(f"run_nightly: {exc}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        status = "ok" if outcome.succeeded else f"FAILED ({outcome.status})"
        whose = "" if outcome.created else " (a run started elsewhere)"
        print(f"{outcome.run.key} {status} in {outcome.seconds:.1f} s, Dagster run {outcome.run_id}{whose}")
    nights_ok = print_night_summary(settings, runs)
    return 0 if nights_ok and all(o.succeeded for o in outcomes) else 1
