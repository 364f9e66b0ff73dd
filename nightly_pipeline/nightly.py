"""Run the nightly pipeline outside the Dagster daemon (``scripts/run_nightly.py``).

Enumerates the schedulable tenants (honouring SCHED_TENANT_INCLUDE/EXCLUDE), then materializes the
whole graph for each tenant's partition with at most SCHED_TENANT_CONCURRENCY tenants at once, each
in its own ``dagster asset materialize`` process against the same instance (DAGSTER_HOME), so the
runs show in the UI like scheduled ones.

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
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nightly_pipeline.assets.daily_targets import choose, night_cap
from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import open_database
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.database import Database, DatabaseError
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.partitions import TENANTS, partition_key, tenant_key
from nightly_pipeline.settings import Settings, SettingsError, load_settings


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
    run: PlannedRun
    returncode: int
    seconds: float
    tail: str


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


class TenantRuns:
    """Each tenant's run in its own ``dagster asset materialize`` process, a few at a time.

    Dagster turns Ctrl-C inside an in-process run into a flag that a run can finish without ever
    looking at, so an interrupted caller stops the child processes itself.
    """

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.env = env
        self.concurrency = concurrency
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def _materialize(self, run: PlannedRun) -> RunOutcome:
        started = time.monotonic()
        command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "nightly_pipeline.definitions",
                   "--select", "*", "--partition", run.key, *run_config_args(run)]
        child = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with self._lock:
            self._children.add(child)
        try:
            stdout, stderr = child.communicate()
        finally:
            with self._lock:
                self._children.discard(child)
        tail = "\n".join((stderr or stdout).strip().splitlines()[-3:])
        return RunOutcome(run, child.returncode, time.monotonic() - started, tail)

    def stop(self) -> None:
        with self._lock:
            children = list(self._children)
        for child in children:
            child.kill()
        for child in children:
            child.wait()

    def run(self, runs: Sequence[PlannedRun]) -> list[RunOutcome]:
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            return list(pool.map(self._materialize, runs))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            self.stop()
            raise
        finally:
            pool.shutdown(wait=True)


def run_config_args(run: PlannedRun) -> list[str]:
    config = run.run_config()
    return ["--config-json", json.dumps(config)] if config else []


def run_all(settings: Settings, runs: Sequence[PlannedRun]) -> list[RunOutcome]:
    home = ensure_dagster_home(settings)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(TENANTS))
        missing = [tenant_key(r.tenant_id) for r in runs if tenant_key(r.tenant_id) not in known]
        if missing:
            instance.add_dynamic_partitions(TENANTS, missing)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return TenantRuns(env, settings.sched_tenant_concurrency).run(runs)


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
    outcomes = run_all(settings, runs)
    for outcome in outcomes:
        status = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
        print(f"{outcome.run.key} {status} in {outcome.seconds:.1f} s")
        if outcome.returncode:
            print(f"  {outcome.tail}")
    return 0 if all(o.returncode == 0 for o in outcomes) else 1
