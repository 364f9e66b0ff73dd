"""A night of many tenants on two Celery workers against the single-process default.

Both nights run the way an operator runs them: `nightly-pipeline stack up` (the daemon; plus two
Celery workers for the distributed night), a backfill of every tenant's partition submitted to the
daemon's queue, the sandbox world on loopback, a fresh app database on the machine's PostgreSQL
server (127.0.0.1:5432). The default night keeps the embedded Dagster instance (SQLite) and the
in-process executor; the distributed night keeps Dagster's storage in a fresh PostgreSQL database
and sends every step to the workers through Redis (127.0.0.1:6379).

    .venv/bin/python bench/distributed.py              # 100 tenants x 20 shortlisted, the full night
    .venv/bin/python bench/distributed.py --quick      # 4 tenants x 3, about a minute

The report gives each night's wall time, the ratio distributed / default, the time spent inside
steps, and the floors that bound each night: SCHED_TENANT_CONCURRENCY runs at once for both
(queue-bound: run time / concurrency), at most one step per worker at a time for the distributed
night (worker-bound: step time / workers), and the CPU the night's processes used over the cores
(CPU-bound: CPU seconds / cores; the stack, the daemon, every run process and worker, the CLI
calls). The last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nightly_pipeline_sandbox.runner import SandboxConfig  # noqa: E402
from nightly_pipeline_tests.kit import distributed as kit  # noqa: E402

DAY = "2026-06-01"


def children_cpu_s() -> float:
    """CPU seconds of every finished process this one waited for, and the ones they waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_seconds(night: kit.NightResult) -> float:
    return sum(r.end_time - r.start_time for r in night.runs if r.start_time and r.end_time)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--cap", type=int, default=20, help="SHORTLIST_DAILY_CAP")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tenant-concurrency", type=int, default=3, help="SCHED_TENANT_CONCURRENCY")
    parser.add_argument("--web-latency-scale", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="4 tenants x 3")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.cap = 4, 3
    missing = kit.services_missing()
    if missing:
        print("bench/distributed.py needs " + " and ".join(missing), file=sys.stderr)
        return 2
    common = {"SHORTLIST_DAILY_CAP": str(args.cap), "SCHED_TENANT_CONCURRENCY": str(args.tenant_concurrency)}
    config = SandboxConfig(web_latency_scale=args.web_latency_scale, vendor_latency_scale=0)
    timeout = 6 * 3600
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as base:
        started, cpu = time.monotonic(), {}
        before = children_cpu_s()
        default = kit.run_night(Path(base) / "default", args.tenants, DAY, dict(common), workers=0,
                                config=config, timeout_s=timeout)
        cpu["default"], before = children_cpu_s() - before, children_cpu_s()
        print(f"default night done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        with kit.fresh_database("np_bench_dagster") as dagster_db:
            extra = {**common, "DAGSTER_EXECUTOR": "celery",
                     "DAGSTER_PG_URL": kit.database_url(kit.SERVER_URL, dagster_db, driver="psycopg2"),
                     "DAGSTER_CELERY_BROKER_URL": f"{kit.REDIS_URL}/{kit.BROKER_DB}",
                     "DAGSTER_CELERY_BACKEND_URL": f"{kit.REDIS_URL}/{kit.BACKEND_DB}"}
            distributed = kit.run_night(Path(base) / "distributed", args.tenants, DAY, extra,
                                        workers=args.workers, config=config, timeout_s=timeout)
            cpu["distributed"] = children_cpu_s() - before
    figures = {"tenants": args.tenants, "cap": args.cap, "workers": args.workers,
               "tenant_concurrency": args.tenant_concurrency, "cores": os.cpu_count()}
    for name, night in (("default", default), ("distributed", distributed)):
        ok = sum(1 for r in night.runs if r.dagster_run.status.value == "SUCCESS")
        figures[name] = {"wall_s": round(night.wall_s, 1), "runs_succeeded": ok, "runs": len(night.runs),
                         "run_s": round(run_seconds(night), 1), "step_s": round(night.step_seconds, 1),
                         "queue_floor_s": round(run_seconds(night) / args.tenant_concurrency, 1),
                         "max_runs_at_once": kit.max_started_at_once(night.runs),
                         "shortlisted": sum(len(rows) for rows in night.shortlists.values()),
                         "left_running": len(night.survivors), "cpu_s": round(cpu[name], 1),
                         "cpu_floor_s": round(cpu[name] / (os.cpu_count() or 1), 1)}
    figures["distributed"]["worker_floor_s"] = round(distributed.step_seconds / args.workers, 1)
    figures["ratio"] = round(distributed.wall_s / default.wall_s, 2)
    figures["same_shortlists"] = list(default.shortlists.values()) == list(distributed.shortlists.values())
    print(f"{args.tenants} tenants x {args.cap}, SCHED_TENANT_CONCURRENCY={args.tenant_concurrency}, "
          f"{os.cpu_count()} cores")
    for name in ("default", "distributed"):
        f = figures[name]
        print(f"  {name:12s} wall {f['wall_s']:7.1f} s  runs {f['runs_succeeded']}/{f['runs']}  "
              f"in steps {f['step_s']:7.1f} s  queue floor {f['queue_floor_s']:6.1f} s  "
              f"max runs at once {f['max_runs_at_once']}  shortlisted {f['shortlisted']}")
        print(f"  {'':12s} CPU {f['cpu_s']:7.1f} s of the night's processes: CPU floor {f['cpu_floor_s']:6.1f} s "
              f"on {os.cpu_count()} cores")
    print(f"  worker floor (distributed step time / {args.workers} workers): {figures['distributed']['worker_floor_s']} s")
    print(f"  ratio distributed / default: {figures['ratio']}  same shortlists: {figures['same_shortlists']}")
    for position, (ours, theirs) in enumerate(zip(default.shortlists.values(), distributed.shortlists.values())):
        for rank, (a, b) in enumerate(zip(ours, theirs), start=1):
            changed = {k: (a.get(k), b.get(k)) for k in a if a.get(k) != b.get(k)}
            if changed:
                print(f"  tenant #{position + 1} rank {rank} differs: "
                      + "; ".join(f"{k}: {x!r} vs {y!r}" for k, (x, y) in changed.items())[:400])
        if len(ours) != len(theirs):
            print(f"  tenant #{position + 1}: {len(ours)} vs {len(theirs)} shortlisted")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
