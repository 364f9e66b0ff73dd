"""A night of several tenants run the way an operator runs it: `nightly-pipeline stack up` (the
Dagster daemon, and Celery workers when asked), a backfill submitted to the daemon, the sandbox
world on loopback, and the app database on a PostgreSQL server. Shared by the distributed test and
bench/distributed.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db.migrate import migrate
from nightly_pipeline.domain.acra import parse_acra_text
from nightly_pipeline.partitions import TENANTS, partition_key, tenant_key
from nightly_pipeline_sandbox.runner import ODOO_PASSWORD_ENV, SANDBOX_KEYS, Sandbox, SandboxConfig

SERVER_URL = os.environ.get("DISTRIBUTED_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DISTRIBUTED_REDIS_URL", "redis://127.0.0.1:6379")
# Redis databases of their own, so a test never takes tasks queued by another Celery user.
BROKER_DB, BACKEND_DB = 11, 12
APP_ROLE = "nightly_app"
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"], "preferred_titles": ["CEO", "Founder", "CTO"],
            "keywords": ["saas", "cloud"]}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
BIN = Path(sys.executable).parent
# The caller's own deployment choices never leak into a night: each night names its own.
DEPLOYMENT_VARIABLES = ("DAGSTER_EXECUTOR", "DAGSTER_PG_URL", "DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL",
                        "DATABASE_URL", "DATABASE_ADMIN_URL", "SCHED_TENANT_CONCURRENCY", "SHORTLIST_DAILY_CAP",
                        "SCHED_DAILY_CAP_PER_TENANT")


def services_missing() -> list[str]:
    """What of the PostgreSQL server and Redis on loopback cannot be reached."""
    missing = []
    try:
        with psycopg.connect(SERVER_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        missing.append(f"PostgreSQL at {SERVER_URL} ({type(exc).__name__})")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not there"
        missing.append(f"Redis at {REDIS_URL} ({type(exc).__name__})")
    return missing


def database_url(url: str, name: str, *, driver: str | None = None) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = name
    user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", "5432")
    if driver:
        password = f":{params['password']}" if params.get("password") else ""
        return f"postgresql+{driver}://{user}{password}@{host}:{port}/{name}"
    return psycopg.conninfo.make_conninfo(**params)


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the server; its name. Dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def app_database(tenants: int, odoo_url: str) -> Iterator[tuple[str, list[int]]]:
    """A migrated app database with the ACRA sample and ``tenants`` software tenants."""
    from nightly_pipeline_tests.api.conftest import add_tenant

    with fresh_database("np_dist_app") as name:
        url = database_url(SERVER_URL, name)
        migrate(url, APP_ROLE)
        database = Database(DatabaseTarget(admin_url=url, app_url=url, app_role=APP_ROLE, embedded=False))
        try:
            text = (resources.files("nightly_pipeline") / "data" / "acra_sample.csv").read_text(encoding="utf-8")
            with database.shared() as conn:
                acra_db.upsert_staging(conn, parse_acra_text(text).rows)
            ids = [add_tenant(database, f"tenant-{n}", icp=SOFTWARE, odoo_url=odoo_url, odoo_db="demo_software",
                              password_env=ODOO_PASSWORD_ENV) for n in range(1, tenants + 1)]
        finally:
            database.close()
        yield url, ids


@dataclasses.dataclass
class NightResult:
    runs: list[dg.RunRecord]
    workers_by_tenant: dict[str, set[str]]
    shortlists: dict[int, list[dict]]
    stack_output: str
    stack_code: int
    process_groups: dict[str, int]
    survivors: list[str]
    wall_s: float
    request_log: list
    step_seconds: float


def _env(base: dict[str, str], sandbox: Sandbox, app_url: str, home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in SANDBOX_KEYS and k not in DEPLOYMENT_VARIABLES}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    env.update(sandbox.env)
    env.update({"DATABASE_URL": app_url, "DAGSTER_HOME": str(home), "SCHED_ENABLED": "false",
                "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def survivors_of(groups: dict[str, int]) -> list[str]:
    """`ps` lines of any process still in one of these process groups."""
    listing = subprocess.run(["ps", "-eo", "pid=,pgid=,args="], capture_output=True, text=True, check=True).stdout
    wanted = {str(g) for g in groups.values()}
    return [line.strip() for line in listing.splitlines() if line.split(None, 2)[1:2] and line.split()[1] in wanted]


def run_night(home: Path, tenants: int, day: str, extra_env: dict[str, str], *, workers: int,
              config: SandboxConfig, timeout_s: float = 1800) -> NightResult:
    """Start the stack, backfill ``tenants`` partitions of ``day`` through the daemon, wait, stop."""
    with Sandbox(config) as sandbox, app_database(tenants, sandbox.odoo_url) as (app_url, tenant_ids):
        env = _env(dict(os.environ), sandbox, app_url, home, extra_env)
        # The instance is opened here as the stack will open it (dagster.yaml rendered from settings).
        from nightly_pipeline.instance import ensure_dagster_home
        from nightly_pipeline.settings import load_settings

        saved = os.environ.get("DAGSTER_HOME")
        ensure_dagster_home(load_settings(env))
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved
        keys = [str(partition_key(day, t)) for t in tenant_ids]
        log_path = home / "stack.out"
        started = time.monotonic()
        with log_path.open("w") as out:
            stack = subprocess.Popen([str(BIN / "nightly-pipeline"), "stack", "up", "--workers", str(workers),
                                      "--no-webserver", "--grace", "30"], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_default_signals)
        groups: dict[str, int] = {}
        with _instance_from(home, env) as instance:
            instance.add_dynamic_partitions(TENANTS, [tenant_key(t) for t in tenant_ids])
            try:
                groups = _wait_for_groups(stack, log_path, 1 + workers)  # the daemon and the workers
                subprocess.run([str(BIN / "dagster"), "job", "backfill", "-w", str(home / "workspace.yaml"),
                                "-l", "nightly_pipeline", "-j", "nightly_job", "--partitions", ",".join(keys),
                                "--noprompt"], env=env, check=True, capture_output=True, text=True, timeout=300)
                runs = _wait_for_runs(instance, len(keys), stack, log_path, timeout_s)
                wall = time.monotonic() - started
            finally:
                if stack.poll() is None:
                    stack.send_signal(signal.SIGTERM)
                try:
                    code = stack.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    stack.kill()
                    code = stack.wait()
            workers_by_tenant = celery_workers_by_tenant(instance, runs)
            steps = step_seconds(instance, runs)
        shortlists = {t: shortlist(env, t, day) for t in tenant_ids}
        return NightResult(runs, workers_by_tenant, shortlists, log_path.read_text(), code, groups,
                           survivors_of(groups), wall, list(sandbox.web.request_log), steps)


@contextlib.contextmanager
def _instance_from(home: Path, env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    saved = {k: os.environ.get(k) for k in ("DAGSTER_PG_URL",)}
    if "DAGSTER_PG_URL" in env:
        os.environ["DAGSTER_PG_URL"] = env["DAGSTER_PG_URL"]
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_PID_LINE = re.compile(r"^(?P<name>[\w-]+): pid (?P<pid>\d+), log ", re.M)


def _wait_for_groups(stack: subprocess.Popen, log_path: Path, expected: int) -> dict[str, int]:
    deadline = time.monotonic() + 120  # a safety net for a hung start, not a performance assertion
    while True:
        groups = {m["name"]: int(m["pid"]) for m in _PID_LINE.finditer(log_path.read_text())}
        if len(groups) >= expected:
            return groups
        if stack.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the stack did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)


def _wait_for_runs(instance: dg.DagsterInstance, count: int, stack: subprocess.Popen, log_path: Path,
                   timeout_s: float) -> list[dg.RunRecord]:
    deadline = time.monotonic() + timeout_s  # a safety net for a hung daemon, not a performance assertion
    while True:
        records = list(instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": _any_backfill(instance)})))
        if len(records) == count and all(r.dagster_run.status in FINISHED for r in records):
            return records
        if stack.poll() is not None or time.monotonic() > deadline:
            statuses = [r.dagster_run.status.value for r in records]
            raise AssertionError(f"runs {statuses}; stack output:\n{log_path.read_text()[-4000:]}\n"
                                 f"daemon log:\n{_tail(log_path.parent / 'stack-logs' / 'daemon.log')}")
        time.sleep(1)


def _any_backfill(instance: dg.DagsterInstance) -> str:
    backfills = instance.get_backfills()
    if not backfills:
        return "none-yet"
    return backfills[0].backfill_id


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def celery_workers_by_tenant(instance: dg.DagsterInstance, runs: list[dg.RunRecord]) -> dict[str, set[str]]:
    """For each tenant, the Celery workers that reported executing one of its run's steps."""
    by_tenant: dict[str, set[str]] = {}
    for record in runs:
        tenant = record.dagster_run.tags["dagster/partition/tenant"]
        for entry in instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            data = entry.dagster_event.engine_event_data if entry.dagster_event else None
            worker = data.metadata.get("Celery worker") if data else None
            if worker is not None:
                by_tenant.setdefault(tenant, set()).add(str(worker.value))
    return by_tenant


def step_seconds(instance: dg.DagsterInstance, runs: list[dg.RunRecord]) -> float:
    """Time spent inside steps, summed over every step of every run."""
    total_ms = 0
    for record in runs:
        for entry in instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
            total_ms += entry.dagster_event.event_specific_data.duration_ms or 0
    return total_ms / 1000


RUN_SPECIFIC = ("odoo_partner_id", "odoo_lead_id")


def shortlist(env: dict[str, str], tenant_id: int, day: str) -> list[dict]:
    """`nightly-pipeline shortlist --format json`, minus what names one run's records."""
    out = subprocess.run([str(BIN / "nightly-pipeline"), "shortlist", str(tenant_id), "--date", day,
                          "--format", "json"], env=env, capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    return [{k: v for k, v in row.items() if k not in RUN_SPECIFIC} for row in rows]


def max_started_at_once(runs: list[dg.RunRecord]) -> int:
    """The most runs that were between their start and their end at one moment."""
    spans = [(r.start_time, r.end_time) for r in runs]
    if any(s is None or e is None for s, e in spans):
        raise AssertionError(f"a run without start or end time: {spans}")
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)

