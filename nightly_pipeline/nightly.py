"""Run the nightly pipeline outside the Dagster daemon (``scripts/run_nightly.py``).

Enumerates the schedulable tenants (honouring SCHED_TENANT_INCLUDE/EXCLUDE), then materializes the
whole graph for each tenant's partition with at most SCHED_TENANT_CONCURRENCY tenants at once, each
in its own ``dagster asset materialize`` process against the same instance (DAGSTER_HOME), so the
runs show in the UI like scheduled ones.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.db import open_database
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.partitions import TENANTS, partition_key, tenant_key
from nightly_pipeline.settings import Settings, SettingsError, load_settings


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
    run: PlannedRun
    returncode: int
    seconds: float
    tail: str


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
                   "--select", "*", "--partition", run.key]
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


def run_all(settings: Settings, runs: Sequence[PlannedRun], *, limit: int | None) -> list[RunOutcome]:
    home = ensure_dagster_home(settings)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(TENANTS))
        missing = [tenant_key(r.tenant_id) for r in runs if tenant_key(r.tenant_id) not in known]
        if missing:
            instance.add_dynamic_partitions(TENANTS, missing)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    if limit is not None:
        env["SHORTLIST_DAILY_CAP"] = str(limit)
    return TenantRuns(env, settings.sched_tenant_concurrency).run(runs)


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
    outcomes = run_all(settings, runs, limit=args.limit)
    for outcome in outcomes:
        status = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
        print(f"{outcome.run.key} {status} in {outcome.seconds:.1f} s")
        if outcome.returncode:
            print(f"  {outcome.tail}")
    nights_ok = print_night_summary(settings, runs)
    return 0 if nights_ok and all(o.returncode == 0 for o in outcomes) else 1
