"""The whole night through Dagster against the sandbox world: wall time versus the floors it allows.

Each tenant's night is what the schedule's run does: ``dagster asset materialize`` of every asset of
``nightly_pipeline.definitions`` for the tenant's partition, in its own process, with Dagster's
in-process executor, on the embedded PostgreSQL under a throwaway DAGSTER_HOME (the way
``scripts/run_nightly.py`` and ``make demo`` run it). Several tenants run at once up to
SCHED_TENANT_CONCURRENCY. The sandbox (simulated web, Tavily, Lusha, ZeroBounce, OpenAI, Odoo,
``nightly_pipeline_sandbox.runner.Sandbox``) runs in a child process pinned to core 0, with its
realistic latency model and the vendors' limits; the Dagster runs are pinned to core 1. The world is
a fresh one per run of a shape: ``scripts/make_acra_sample.py`` rows for the seed, enough for the
targets, loaded into ACRA staging as the nightly refresh would.

Two shapes:

* ``single``: one tenant with N targets (default 1,000; ``--runs`` times, a new world and seed each);
* ``fleet``: T tenants with K targets each (default 100 x 20) at each SCHED_TENANT_CONCURRENCY given.

Per-stage times come from Dagster's own step start and end events for each run. The floors come
from what the sandbox served (its request logs and counters), not from the plan:

* crawl_corpus: politeness. A domain's serial time is ``(requests - 1) x 0.5 s + requests x median
  drawn latency``; the floor is max(slowest domain, sum over domains / domains in flight), with
  "in flight" the crawl's company concurrency times the tenants running at once. Tavily calls over
  its per-minute limit and the extraction's share of the OpenAI tokens (over the tokens-per-minute
  limit) are floors of the same step; the step's floor is the largest of the three;
* contacts: Lusha calls, ``floor((calls - 1) / per_minute)`` minutes plus one median latency;
* verified_emails: ZeroBounce batch calls, the same with its batch calls per minute;
* lead_scores: the rationales' share of the OpenAI tokens, over tokens per minute;
* odoo_sync: Odoo JSON-RPC calls x drawn latency / 1 (each tenant's sync is sequential);
* companies, icp_candidates, daily_targets: database work only, floor 0.

"sequential floor" is the sum of the stage floors, "overlapped floor" the largest one (what a night
whose stages overlapped perfectly could reach). A vendor's limit is shared by every tenant of the
night (one API key), so in the fleet shape the floors are the night's totals.

    .venv/bin/python bench/night.py                        # both shapes, full size, default caps
    .venv/bin/python bench/night.py --caps large           # vendor caps large enough for the whole night
    .venv/bin/python bench/night.py --quick                # 30 targets once, about 40 s (make bench)
    .venv/bin/python bench/night.py --shape single --targets 1000 --runs 3 --seed 7
    .venv/bin/python bench/night.py --shape fleet --tenants 100 --tenant-targets 20 --concurrency 3 10
    .venv/bin/python bench/night.py --quick --shape single --profile /tmp/night-prof   # cProfile per run

The last line is one JSON object with every figure. Only loopback is contacted: an audit hook in this
process and in the sandbox's refuses anything else (the Dagster run processes reach only the
sandbox's loopback URLs and the embedded PostgreSQL's socket).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import importlib.util
import json
import math
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from types import ModuleType
from typing import Any

from bench_support import allow_only_loopback, pin_to_core

SERVER_CORE, PIPELINE_CORE = 0, 1
SERVER_START_TIMEOUT_S = 180.0
SERVER_REPORT_TIMEOUT_S = 120.0
ACRA_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_acra_sample.py"
# The generator draws names without replacement from about 2,700 combinations.
MAX_ACRA_ROWS = 2600
# About 86 % of generated rows are live companies; the rest are struck off or dissolved.
LIVE_SHARE = 0.8
MIN_DOMAIN_INTERVAL_S = 0.5
STEPS = ("companies", "icp_candidates", "daily_targets", "crawl_corpus", "contacts", "verified_emails",
         "lead_scores", "odoo_sync")
# Realistic limits the sandbox can enforce: gpt-4o-mini at the first usage tier (200k tokens a minute;
# the sandbox does not limit requests a minute), Tavily's development key (100 requests a minute),
# Lusha's and ZeroBounce's defaults (300 calls and 5 batch calls of up to 200 addresses a minute).
OPENAI_TOKENS_PER_MINUTE = 200_000
TAVILY_PER_MINUTE = 100
LUSHA_PER_MINUTE = 300
ZEROBOUNCE_BATCHES_PER_MINUTE = 5
ZEROBOUNCE_BATCH_SIZE = 200
LARGE_CAPS = {"OPENAI_DAILY_TOKENS_CAP": "100000000", "TAVILY_MAX_QUERIES": "1000000",
              "LUSHA_MAX_CONTACT_LOOKUPS": "1000000", "ZEROBOUNCE_MAX_VERIFICATIONS": "1000000"}
# Tenants of the fleet look for different industries, as real tenants do.
FLEET_ICPS = ({"ssic_codes": ["62011", "62021", "62090", "63110"]},
              {"ssic_codes": ["70201", "73100"]},
              {},
              {"incorporation_year": {"min": 2010}})


# -- the sandbox process -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WorldSettings:
    seed: int
    acra_rows: int
    odoo_databases: tuple[str, ...]
    workdir: str


@dataclasses.dataclass(frozen=True)
class WorldOffer:
    env: dict[str, str]
    acra_csv: str
    acra_rows: int
    sites: int


def _acra_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_acra_sample", ACRA_SCRIPT)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the ACRA sample generator at {ACRA_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve(settings: WorldSettings, channel: Connection, stop: Event) -> None:
    pin_to_core(SERVER_CORE)
    allow_only_loopback("bench/night.py (sandbox)")
    from nightly_pipeline_sandbox.runner import Sandbox, SandboxConfig

    generator = _acra_generator()
    path = Path(settings.workdir) / f"acra-{settings.seed}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=generator.COLUMNS)
        writer.writeheader()
        writer.writerows(generator.rows(settings.acra_rows, seed=settings.seed))
    config = SandboxConfig(seed=settings.seed, acra_csv=path, odoo_databases=settings.odoo_databases,
                           lusha_per_minute=LUSHA_PER_MINUTE,
                           zerobounce_batches_per_minute=ZEROBOUNCE_BATCHES_PER_MINUTE)
    sandbox = Sandbox(config)
    # SandboxConfig has no knob for these two; the servers read them on every request.
    sandbox.openai.tokens_per_minute = OPENAI_TOKENS_PER_MINUTE
    sandbox.tavily.per_minute = TAVILY_PER_MINUTE
    with sandbox:
        channel.send(WorldOffer(sandbox.env, str(path), settings.acra_rows, len(sandbox.world.sites)))
        stop.wait()
        channel.send(_sandbox_figures(sandbox))


def busiest_minute(times: Sequence[float], window_s: float = 60.0) -> int:
    """The most of ``times`` inside any rolling ``window_s`` (a window ending at each time)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def _tavily_arrivals(sandbox: Any) -> list[float]:
    # Tavily's per-minute limit counts every call but /crawl (its own bucket) and the free /usage.
    return [r.at for r in sandbox.tavily.request_log
            if not r.path.startswith(("/_sandbox", "/usage", "/crawl"))]


def _sandbox_figures(sandbox: Any) -> dict[str, Any]:
    """What each server served, reduced to what the floors need (the logs themselves stay here)."""
    web = sandbox.web.stats()
    by_host = Counter(r.host for r in sandbox.web.request_log)
    draws = sandbox.web.latency_samples()
    openai = sandbox.openai.stats()
    odoo_log = sandbox.odoo.request_log
    figures = {
        "web": {"requests": web["requests"], "by_status": web["by_status"], "hosts": len(by_host),
                "by_host": dict(by_host), "median_latency_s": statistics.median(draws) if draws else 0.0},
        "tavily": {**{k: sandbox.tavily.stats()[k] for k in ("requests", "by_status", "calls", "credits",
                                                               "rejections")},
                   "per_minute": sandbox.tavily.per_minute,
                   "max_requests_in_60s": busiest_minute(_tavily_arrivals(sandbox))},
        "lusha": {k: v for k, v in sandbox.lusha.stats().items()
                  if k in ("requests", "by_status", "calls_by_endpoint", "credits_total", "rate_limited",
                           "max_requests_in_60s")},
        "zerobounce": {k: v for k, v in sandbox.zerobounce.stats().items()
                       if k in ("requests", "by_status", "calls_by_endpoint", "addresses_validated",
                                "batch_refusals", "max_batch_calls_in_60s")},
        "openai": {k: openai[k] for k in ("requests", "by_status", "calls", "calls_by_mode", "tokens_by_mode", "prompt_tokens",
                                          "completion_tokens", "rate_limited", "max_tokens_in_60s")},
        "odoo": {"requests": len(odoo_log), "median_latency_s": sandbox.odoo.latency.median_s * sandbox.odoo.latency.scale},
        "vendor_median_latency_s": sandbox.lusha.latency.median_s * sandbox.lusha.latency.scale,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    figures["openai"]["tokens_per_minute"] = sandbox.openai.tokens_per_minute
    return figures


@contextlib.contextmanager
def sandbox_process(settings: WorldSettings) -> Iterator[tuple[WorldOffer, Any]]:
    context = multiprocessing.get_context("spawn")
    channel, server_end = context.Pipe()
    stop = context.Event()
    process = context.Process(target=_serve, args=(settings, server_end, stop), name="sandbox", daemon=True)
    process.start()
    figures: dict[str, Any] = {}

    def final_figures() -> dict[str, Any]:
        if not figures:
            stop.set()
            if not channel.poll(SERVER_REPORT_TIMEOUT_S):
                raise SystemExit("the sandbox process sent no figures")
            figures.update(channel.recv())
        return figures

    try:
        if not channel.poll(SERVER_START_TIMEOUT_S):
            raise SystemExit(f"the sandbox did not start within {SERVER_START_TIMEOUT_S:g} s")
        yield channel.recv(), final_figures
    finally:
        stop.set()
        process.join(30)
        if process.is_alive():
            process.kill()


# -- one night -----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TenantRun:
    tenant_id: int
    partition: str
    started: float = 0.0
    ended: float = 0.0
    returncode: int | None = None
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    tail: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _materialize(run: TenantRun, env: dict[str, str], logs: Path, profile: Path | None) -> TenantRun:
    profiler = ["-m", "cProfile", "-o", str(profile / f"tenant-{run.tenant_id}.prof")] if profile else []
    command = [sys.executable, *profiler, "-m", "dagster", "asset", "materialize", "-m", "nightly_pipeline.definitions",
               "--select", "*", "--partition", run.partition]
    log = logs / f"tenant-{run.tenant_id}.log"
    run.started = time.monotonic()
    with log.open("w") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        # wait4 gives this child's own peak RSS and CPU, which Popen.wait would throw away.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    run.ended = time.monotonic()
    run.returncode = child.returncode
    run.peak_rss_mb = usage.ru_maxrss / 1024
    run.cpu_s = usage.ru_utime + usage.ru_stime
    if run.returncode != 0:
        run.tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    return run


def _step_times(instance: Any) -> dict[str, dict[str, Any]]:
    """Per partition: the Dagster run's start and end and each step's duration, from the event log."""
    import dagster as dg

    wanted = {dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE,
              dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    out: dict[str, dict[str, Any]] = {}
    for record in instance.get_run_records():
        run = record.dagster_run
        partition = run.tags.get("dagster/partition")
        starts: dict[str, float] = {}
        steps: dict[str, dict[str, float]] = {}
        begin = end = None
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or event.event_type not in wanted:
                continue
            if event.event_type == dg.DagsterEventType.RUN_START:
                begin = entry.timestamp
            elif event.event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
                end = entry.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.step_key in starts:
                steps[event.step_key] = {"start": starts[event.step_key], "end": entry.timestamp,
                                         "seconds": entry.timestamp - starts[event.step_key]}
        out[partition] = {"status": run.status.value, "start": begin, "end": end, "steps": steps}
    return out


def _postgres_peak_rss_mb(home: Path) -> dict[str, float]:
    """Peak RSS of this night's PostgreSQL processes (the postmaster in ``home/pgdata`` and its children):
    the largest, and their sum (which counts the shared buffers once per process)."""
    import psutil

    try:
        postmaster = psutil.Process(int((home / "pgdata" / "postmaster.pid").read_text().split()[0]))
        processes = [postmaster, *postmaster.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return {"processes": 0, "largest_mb": 0.0, "sum_mb": 0.0}
    peaks = []
    for process in processes:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                peaks.extend(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
        except OSError:
            continue
    return {"processes": len(peaks), "largest_mb": round(max(peaks, default=0.0), 1),
            "sum_mb": round(sum(peaks), 1)}


@dataclasses.dataclass(frozen=True)
class NightPlan:
    label: str
    tenants: int
    targets_per_tenant: int
    concurrency: int
    seed: int
    caps: str
    company_concurrency: int


def _icp(plan: NightPlan, index: int) -> dict:
    return {} if plan.tenants == 1 else FLEET_ICPS[index % len(FLEET_ICPS)]


def run_night(plan: NightPlan, workdir: Path, profile: Path | None = None, *,
              icps: Callable[[Sequence[Any]], Sequence[Mapping[str, Any]]] | None = None,
              acra_rows: int | None = None, extra_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One night of the plan in a fresh world; every figure of it.

    ``icps`` gives each tenant's ICP from the world's ACRA staging rows (default: the fleet's four in
    turn), ``acra_rows`` the world's size (default: enough for the plan), ``extra_env`` settings of
    every tenant's run.
    """
    from nightly_pipeline.clock import today_in_singapore
    from nightly_pipeline.db import open_database
    from nightly_pipeline.db import acra as acra_db
    from nightly_pipeline.db import runs as runs_db
    from nightly_pipeline.db import tenants as tenants_db
    from nightly_pipeline.domain.acra import parse_acra_text
    from nightly_pipeline.domain.icp import parse_icp
    from nightly_pipeline.instance import ensure_dagster_home
    from nightly_pipeline.partitions import TENANTS, partition_key, tenant_key
    from nightly_pipeline.settings import load_settings
    from nightly_pipeline_sandbox.runner import ODOO_PASSWORD_ENV, ODOO_USER

    home = Path(tempfile.mkdtemp(prefix=f"bench-night-{plan.label}-", dir=workdir))
    # pgserver runs the server as its own user when we are root: that user must be able to enter the folder.
    home.chmod(0o755)
    logs = home / "logs"
    logs.mkdir()
    needed = plan.tenants * plan.targets_per_tenant if plan.tenants == 1 else plan.targets_per_tenant * 60
    acra_rows = acra_rows or min(MAX_ACRA_ROWS, max(400, math.ceil(needed / LIVE_SHARE)))
    odoo_databases = tuple(f"bench_{i}" for i in range(plan.tenants))
    settings_for_world = WorldSettings(plan.seed, acra_rows, odoo_databases, str(home))
    figures: dict[str, Any] = {"plan": dataclasses.asdict(plan), "acra_rows": acra_rows}
    with sandbox_process(settings_for_world) as (offer, sandbox_figures):
        figures["sites_in_world"] = offer.sites
        env = {**{k: v for k, v in os.environ.items() if k.lower() not in ("database_url", "database_admin_url")},
               **offer.env, "DAGSTER_HOME": str(home),
               "SCHED_TENANT_CONCURRENCY": str(plan.concurrency),
               "SHORTLIST_DAILY_CAP": str(plan.targets_per_tenant),
               **(LARGE_CAPS if plan.caps == "large" else {}), **(extra_env or {})}
        os.environ.update(env)
        settings = load_settings()
        ensure_dagster_home(settings)
        run_date = today_in_singapore()
        with open_database(settings) as db:
            result = parse_acra_text(Path(offer.acra_csv).read_text(encoding="utf-8"))
            with db.shared() as conn:
                acra_db.upsert_staging(conn, result.rows)
            tenant_icps = (list(icps(result.rows)) if icps is not None
                           else [_icp(plan, index) for index in range(plan.tenants)])
            runs = []
            for index in range(plan.tenants):
                with db.shared() as conn:
                    tenant_id = tenants_db.register_tenant(conn, f"bench tenant {index}", plan.targets_per_tenant)
                with db.tenant(tenant_id) as conn:
                    tenants_db.upsert_odoo_connection(conn, tenants_db.OdooConnection(
                        offer.env["SANDBOX_ODOO_URL"], odoo_databases[index], ODOO_USER, ODOO_PASSWORD_ENV, True))
                    tenants_db.set_icp(conn, parse_icp(json.dumps(tenant_icps[index])).model_dump(
                        mode="json", exclude_defaults=True))
                runs.append(TenantRun(tenant_id, str(partition_key(run_date, tenant_id))))
            import dagster as dg

            with dg.DagsterInstance.get() as instance:
                instance.add_dynamic_partitions(TENANTS, [tenant_key(r.tenant_id) for r in runs])
            pin_to_core(PIPELINE_CORE)
            night_started = time.monotonic()
            night_started_wall = time.time()
            with ThreadPoolExecutor(max_workers=plan.concurrency) as pool:
                done = list(pool.map(lambda r: _materialize(r, env, logs, profile), runs))
            night_s = time.monotonic() - night_started
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, range(os.cpu_count() or 1))
            with dg.DagsterInstance.get() as instance:
                steps = _step_times(instance)
            records = {}
            for run in done:
                with db.tenant(run.tenant_id) as conn:
                    records[run.partition] = runs_db.night(conn, run_date)
            figures["postgres_peak_rss"] = _postgres_peak_rss_mb(home)
        figures["sandbox"] = sandbox_figures()
    figures["night_s"] = night_s
    figures.update(_tenant_figures(done, steps, records, night_started_wall))
    figures.update(_floors(plan, figures))
    shutil.rmtree(home, ignore_errors=True)
    return figures


def _tenant_figures(done: Sequence[TenantRun], steps: dict[str, dict[str, Any]], records: dict[str, Any],
                    night_started_wall: float) -> dict[str, Any]:
    tenants = []
    for run in done:
        dagster = steps.get(run.partition, {})
        record = records[run.partition]
        counters = record.step_counters or {}
        crawl = counters.get("crawl_corpus", {})
        step_s = {name: s["seconds"] for name, s in dagster.get("steps", {}).items()}
        shortlist_end = dagster.get("steps", {}).get("lead_scores", {}).get("end")
        dagster_s = (dagster["end"] - dagster["start"]) if dagster.get("start") and dagster.get("end") else None
        tenants.append({
            "tenant_id": run.tenant_id, "returncode": run.returncode, "status": dagster.get("status"),
            "process_s": round(run.seconds, 2), "dagster_run_s": round(dagster_s, 2) if dagster_s else None,
            "steps_s": {k: round(v, 2) for k, v in step_s.items()},
            "shortlist_at_s": round(shortlist_end - night_started_wall, 2) if shortlist_end else None,
            "peak_rss_mb": round(run.peak_rss_mb, 1), "cpu_s": round(run.cpu_s, 1),
            "targets": record.targets, "shortlisted": record.shortlisted, "leads_in_odoo": record.leads_in_odoo,
            "degraded_companies": crawl.get("degraded"), "crawl_counters": crawl,
            "degradations": len(record.degradations or []),
            "spend": {s.vendor: {"calls": s.calls, "units": s.units} for s in record.spend},
            "tail": run.tail,
        })
    return {"tenants": tenants}


def _vendor_floor_s(calls: int, per_minute: float, latency_s: float) -> float:
    """No client can finish ``calls`` under a rolling per-minute limit sooner than this."""
    if calls <= 0:
        return 0.0
    return math.floor((calls - 1) / per_minute) * 60.0 + latency_s


def _floors(plan: NightPlan, figures: dict[str, Any]) -> dict[str, Any]:
    from nightly_pipeline.crawl.politeness import politeness_key

    sandbox = figures["sandbox"]
    web = sandbox["web"]
    latency = web["median_latency_s"]
    # Politeness spaces requests per registrable domain (www.x.sg and x.sg share one turn).
    by_domain: Counter[str] = Counter()
    for host, n in web["by_host"].items():
        by_domain[politeness_key(host)] += n
    serial = {domain: (n - 1) * MIN_DOMAIN_INTERVAL_S + n * latency for domain, n in by_domain.items()}
    in_flight = plan.company_concurrency * min(plan.concurrency, plan.tenants)
    politeness = max(max(serial.values(), default=0.0), sum(serial.values()) / in_flight)
    vendor_latency = sandbox["vendor_median_latency_s"]
    openai = sandbox["openai"]
    served_openai = openai["by_status"].get("200", 0)
    tokens = openai["prompt_tokens"] + openai["completion_tokens"]
    modes = openai["tokens_by_mode"]
    # Extraction asks for structured output (json_schema), rationales for plain text; the sandbox
    # counts the tokens of each.
    rationale_share = modes.get("text", 0) / (sum(modes.values()) or 1)

    def openai_floor(share: float) -> float:
        # The sandbox limits tokens a minute, not requests: the step's share of the tokens sets its floor.
        return _vendor_floor_s(round(tokens * share), openai["tokens_per_minute"], vendor_latency)

    tavily_calls = sandbox["tavily"]["by_status"].get("200", 0)
    lusha_calls = sandbox["lusha"]["by_status"].get("200", 0)
    zb = sandbox["zerobounce"]
    zb_batches = sum(v for k, v in zb["calls_by_endpoint"].items() if "sendfile" in k or "batch" in k)
    odoo_calls = sandbox["odoo"]["requests"]
    stage_floor = {
        "companies": 0.0, "icp_candidates": 0.0, "daily_targets": 0.0,
        "crawl_corpus": max(politeness, _vendor_floor_s(tavily_calls, TAVILY_PER_MINUTE, vendor_latency),
                            openai_floor(1 - rationale_share)),
        "contacts": _vendor_floor_s(lusha_calls, LUSHA_PER_MINUTE, vendor_latency),
        "verified_emails": _vendor_floor_s(zb_batches, ZEROBOUNCE_BATCHES_PER_MINUTE, vendor_latency),
        "lead_scores": openai_floor(rationale_share),
        "odoo_sync": odoo_calls * sandbox["odoo"]["median_latency_s"] / max(1, min(plan.concurrency, plan.tenants)),
    }
    crawl_parts = {"politeness_s": politeness, "slowest_domain_s": max(serial.values(), default=0.0),
                   "all_domains_over_in_flight_s": sum(serial.values()) / in_flight, "in_flight": in_flight,
                   "tavily_s": _vendor_floor_s(tavily_calls, TAVILY_PER_MINUTE, vendor_latency),
                   "openai_extraction_s": openai_floor(1 - rationale_share)}
    sequential = sum(stage_floor.values())
    overlapped = max(stage_floor.values())
    bounding = max(stage_floor, key=stage_floor.get)
    walls = [t["process_s"] for t in figures["tenants"]]
    tenant_p = {"p50_s": _percentile(walls, 50), "p90_s": _percentile(walls, 90)}
    beyond = {}
    for step in STEPS:
        durations = [t["steps_s"].get(step) for t in figures["tenants"] if t["steps_s"].get(step) is not None]
        if durations:
            # In the fleet a step's floor is the night's: compare it with that step's span over the night.
            beyond[step] = {"median_s": round(statistics.median(durations), 2), "max_s": round(max(durations), 2),
                            "floor_s": round(stage_floor[step], 2),
                            "beyond_floor_s": round(max(durations) - stage_floor[step], 2)}
    overhead = [t["process_s"] - t["dagster_run_s"] for t in figures["tenants"] if t["dagster_run_s"]]
    shortlist_at = [t["shortlist_at_s"] for t in figures["tenants"] if t["shortlist_at_s"] is not None]
    return {
        "stage_floor_s": {k: round(v, 2) for k, v in stage_floor.items()},
        "crawl_floor_parts": {k: round(v, 2) if isinstance(v, float) else v for k, v in crawl_parts.items()},
        "sequential_floor_s": round(sequential, 2), "overlapped_floor_s": round(overlapped, 2),
        "bound_by": bounding,
        "ratio_to_sequential": round(figures["night_s"] / sequential, 2) if sequential else None,
        "ratio_to_overlapped": round(figures["night_s"] / overlapped, 2) if overlapped else None,
        "tenant_night": tenant_p,
        "first_shortlist_s": min(shortlist_at, default=None), "last_shortlist_s": max(shortlist_at, default=None),
        "per_stage": beyond,
        "process_overhead_s": {"median": round(statistics.median(overhead), 2) if overhead else None,
                               "what": "tenant process wall minus its Dagster run (start-up, load, teardown)"},
        "peak_rss_mb": {"bench": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        "dagster_run_max": max((t["peak_rss_mb"] for t in figures["tenants"]), default=0.0),
                        "sandbox": round(figures["sandbox"]["peak_rss_mb"], 1),
                        "postgres": figures["postgres_peak_rss"]},
        "failed_tenants": sum(1 for t in figures["tenants"] if t["returncode"] != 0),
        "degraded_companies": sum(t["degraded_companies"] or 0 for t in figures["tenants"]),
    }


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (the value at or below which q % of the nights finished)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 2)


# -- report --------------------------------------------------------------------------------------------------
def _print_night(figures: dict[str, Any]) -> None:
    plan = figures["plan"]
    print(f"\n== {plan['label']}: {plan['tenants']} tenant(s) x {plan['targets_per_tenant']} targets, "
          f"{plan['concurrency']} at once, seed {plan['seed']}, caps {plan['caps']} "
          f"({figures['acra_rows']} ACRA rows, {figures['sites_in_world']} sites) ==")
    print(f"night wall {figures['night_s']:.1f} s; sequential floor {figures['sequential_floor_s']:.1f} s "
          f"(ratio {figures['ratio_to_sequential']}), overlapped floor {figures['overlapped_floor_s']:.1f} s "
          f"(ratio {figures['ratio_to_overlapped']}), bound by {figures['bound_by']}")
    tn = figures["tenant_night"]
    print(f"tenant-night p50 {tn['p50_s']} s, p90 {tn['p90_s']} s; first shortlist at {figures['first_shortlist_s']} s, "
          f"last at {figures['last_shortlist_s']} s; Dagster process overhead (median) "
          f"{figures['process_overhead_s']['median']} s; failed tenants {figures['failed_tenants']}; "
          f"degraded companies {figures['degraded_companies']}")
    print(f"crawl floor parts: {figures['crawl_floor_parts']}")
    print(f"{'stage':<16}{'median s':>10}{'max s':>10}{'floor s':>10}{'max-floor':>11}")
    for step, row in figures["per_stage"].items():
        print(f"{step:<16}{row['median_s']:>10.1f}{row['max_s']:>10.1f}{row['floor_s']:>10.1f}{row['beyond_floor_s']:>11.1f}")
    sandbox = figures["sandbox"]
    print(f"served: web {sandbox['web']['requests']} requests to {sandbox['web']['hosts']} hosts; "
          f"tavily {sandbox['tavily']['by_status']}; lusha {sandbox['lusha']['by_status']}; "
          f"zerobounce {sandbox['zerobounce']['calls_by_endpoint']}; openai {sandbox['openai']['calls_by_mode']} "
          f"{sandbox['openai']['prompt_tokens'] + sandbox['openai']['completion_tokens']} tokens "
          f"(429s {sandbox['openai']['rate_limited']}); odoo {sandbox['odoo']['requests']} requests")
    print(f"peak RSS MB: {figures['peak_rss_mb']}")
    for tenant in figures["tenants"]:
        if tenant["returncode"] != 0:
            print(f"tenant {tenant['tenant_id']} FAILED ({tenant['returncode']}):\n{tenant['tail']}")


def _summary(label: str, nights: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [n["night_s"] for n in nights]
    return {"label": label, "nights": len(nights), "wall_s": [round(w, 1) for w in walls],
            "p50_s": _percentile(walls, 50), "p90_s": _percentile(walls, 90)}


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("single", "fleet", "both"),
                        help="default: both, or single with --quick (fleet.py --quick runs a small fleet)")
    parser.add_argument("--quick", action="store_true",
                        help="30 targets once; with --shape fleet or both, 3 tenants x 4 at concurrency 3")
    parser.add_argument("--caps", choices=("default", "large"), default="default",
                        help="the vendor caps of the settings, or caps no night reaches")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--tenant-targets", type=int, default=20)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write a cProfile of every tenant's run process to DIR/tenant-<id>.prof")
    args = parser.parse_args(argv)
    if args.shape is None:
        args.shape = "single" if args.quick else "both"
    if args.quick:
        args.targets, args.runs, args.tenants, args.tenant_targets, args.concurrency = 30, 1, 3, 4, [3]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    allow_only_loopback("bench/night.py")
    from nightly_pipeline.settings import load_settings
    from nightly_pipeline.stages.crawl import DEFAULT_COMPANY_CONCURRENCY

    company_concurrency = max(DEFAULT_COMPANY_CONCURRENCY, load_settings().sched_company_concurrency)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-night-"))
    workdir.chmod(0o755)
    result: dict[str, Any] = {"caps": args.caps, "shapes": []}
    started = time.monotonic()
    try:
        if args.shape in ("single", "both"):
            nights = []
            for index in range(args.runs):
                plan = NightPlan("single", 1, args.targets, 1, args.seed + index, args.caps, company_concurrency)
                nights.append(run_night(plan, workdir, args.profile))
                _print_night(nights[-1])
            summary = _summary(f"1 tenant x {args.targets}", nights)
            print(f"\n1 tenant x {args.targets}: wall {summary['wall_s']} s, p50 {summary['p50_s']} s, "
                  f"p90 {summary['p90_s']} s")
            result["shapes"].append({**summary, "runs": nights})
        if args.shape in ("fleet", "both"):
            for concurrency in args.concurrency:
                plan = NightPlan(f"fleet-c{concurrency}", args.tenants, args.tenant_targets, concurrency, args.seed,
                                 args.caps, company_concurrency)
                night = run_night(plan, workdir, args.profile)
                _print_night(night)
                result["shapes"].append({"label": plan.label, "runs": [night]})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["bench_s"] = round(time.monotonic() - started, 1)
    for shape in result["shapes"]:
        for night in shape["runs"]:
            for tenant in night["tenants"]:
                tenant.pop("crawl_counters", None)
            night["sandbox"]["web"].pop("by_host", None)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
