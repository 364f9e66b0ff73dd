"""`nightly-pipeline stack up`: the Dagster daemon, the webserver and Celery workers, started and
stopped together.

Every service runs in a process group of its own, so stopping it reaches everything it spawned
(the daemon's code server and run workers, a Celery worker's pool processes): SIGTERM to the
group, then SIGKILL to whatever is left after a grace period. The command stays in the
foreground; SIGTERM or Ctrl-C stops the whole stack, and so does any service exiting on its own.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

from nightly_pipeline.db.instance_storage import ensure_database
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.jobs import BACKEND_ENV, BROKER_ENV
from nightly_pipeline.settings import Settings

log = logging.getLogger(__name__)

CODE_LOCATION = "nightly_pipeline"
DEFINITIONS_MODULE = "nightly_pipeline.definitions"
CELERY_APP = "dagster_celery.app"
CELERY_QUEUE = "dagster"  # the queue dagster_celery routes every step task to
WORKER_PREFIX = "nightly-worker"
STOP_GRACE_S = 30.0

WORKSPACE_YAML = f"""\
# Written by `nightly-pipeline stack up`: the code location the daemon and the webserver load.
load_from:
  - python_module:
      module_name: {DEFINITIONS_MODULE}
      location_name: {CODE_LOCATION}
"""

# dagster_celery.app imports a module of this name when it is on the path; the values come from
# the environment the stack hands the worker, so no broker password is written to disk.
CELERY_CONFIG = f"""\
# Written by `nightly-pipeline stack up`: imported by {CELERY_APP} in every worker.
import os

broker_url = os.environ["{BROKER_ENV}"]
result_backend = os.environ["{BACKEND_ENV}"]
# One step at a time per worker process, and no step reserved by a busy worker while another idles.
worker_prefetch_multiplier = 1
task_acks_late = True
"""


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    log_path: Path


def _executable(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _default_signals_new_group() -> None:
    # A command started from a non-interactive shell inherits SIGINT ignored, and Dagster maps
    # SIGTERM onto SIGINT's disposition: restore both, and lead a group of our own.
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


class Stack:
    """The services of one host; ``workers`` Celery workers, and the daemon and webserver if asked."""

    def __init__(self, settings: Settings, *, workers: int = 2, daemon: bool = True, webserver: bool = True,
                 host: str = "127.0.0.1", port: int = 3000, worker_concurrency: int = 1,
                 log_dir: Path | None = None, grace_s: float = STOP_GRACE_S) -> None:
        self.settings = settings
        self.home = ensure_dagster_home(settings)
        # Not "logs": Dagster moves a folder of that name under DAGSTER_HOME to .logs_queue.
        self.log_dir = log_dir or self.home / "stack-logs"
        self.grace_s = grace_s
        self.processes: dict[str, subprocess.Popen] = {}
        self.services = self._services(workers, daemon, webserver, host, port, worker_concurrency)

    def _services(self, workers: int, daemon: bool, webserver: bool, host: str, port: int,
                  concurrency: int) -> list[Service]:
        workspace = self.home / "workspace.yaml"
        services = []
        if daemon:
            services.append(Service("daemon", (_executable("dagster-daemon"), "run", "-w", str(workspace)),
                                    self.log_dir / "daemon.log"))
        if webserver:
            services.append(Service("webserver", (_executable("dagster-webserver"), "-w", str(workspace),
                                                  "-h", host, "-p", str(port)), self.log_dir / "webserver.log"))
        for number in range(1, workers + 1):
            name = f"{WORKER_PREFIX}-{number}"
            services.append(Service(name, (
                sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "-Q", CELERY_QUEUE,
                "-n", f"{name}@%h", f"--concurrency={concurrency}", "--prefetch-multiplier=1",
                "--loglevel=INFO", "--without-gossip", "--without-mingle"), self.log_dir / f"{name}.log"))
        return services

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"DAGSTER_HOME": str(self.home), BROKER_ENV: self.settings.dagster_celery_broker_url,
                    BACKEND_ENV: self.settings.dagster_celery_backend_url, "PYTHONUNBUFFERED": "1"})
        celery_dir = str(self.home / "celery")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (celery_dir, env.get("PYTHONPATH", "")) if p)
        return env

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "workspace.yaml").write_text(WORKSPACE_YAML)
        (self.home / "celery").mkdir(exist_ok=True)
        (self.home / "celery" / "dagster_celery_config.py").write_text(CELERY_CONFIG)
        env = self.environment()
        try:
            for service in self.services:
                with service.log_path.open("ab") as out:
                    self.processes[service.name] = subprocess.Popen(
                        service.argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                        preexec_fn=_default_signals_new_group)
                log.info("started %s (pid %d), log %s", service.name, self.processes[service.name].pid,
                         service.log_path)
        except BaseException:
            self.stop()
            raise

    def exited(self) -> dict[str, int]:
        """Services that are no longer running, with their exit codes."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every group, SIGKILL what is left after the grace period; returns exit codes."""
        groups = {name: p.pid for name, p in self.processes.items()}  # leaders' pids are their pgids
        for pgid in groups.values():
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            for process in self.processes.values():
                process.poll()  # reap leaders, or a zombie keeps its group alive
            if not any(_group_alive(pgid) for pgid in groups.values()):
                break
            time.sleep(0.2)
        for name, pgid in groups.items():
            if _group_alive(pgid):
                log.warning("%s did not stop within %.0f s of SIGTERM: killing its process group", name, self.grace_s)
                _signal_group(pgid, signal.SIGKILL)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                codes[name] = None
        return codes

    def process_groups(self) -> Mapping[str, int]:
        return {name: p.pid for name, p in self.processes.items()}


def run_stack(stack: Stack, *, out=sys.stdout) -> int:
    """Start the stack, hold it until SIGTERM/SIGINT or a service exits, then stop all of it."""
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stack.start()
        for service in stack.services:
            print(f"{service.name}: pid {stack.processes[service.name].pid}, log {service.log_path}", file=out,
                  flush=True)
        while not stop_requested.wait(1.0):
            exited = stack.exited()
            if exited:
                print(f"stopping the stack: {', '.join(f'{n} exited with {c}' for n, c in exited.items())}",
                      file=out, flush=True)
                break
        failed = bool(stack.exited()) and not stop_requested.is_set()
        codes = stack.stop()
        print("stopped: " + ", ".join(f"{n} ({c})" for n, c in codes.items()), file=out, flush=True)
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _count(minimum: int):
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return int(text)
    return parse


def add_stack_parser(top: argparse._SubParsersAction) -> None:
    stack = top.add_parser("stack", help="the Dagster daemon, webserver and Celery workers of this host")
    actions = stack.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start them, stay in the foreground, stop them all on SIGTERM/Ctrl-C")
    up.add_argument("--workers", type=_count(0), default=2, help="Celery workers to start (default: 2; 0: none)")
    up.add_argument("--worker-concurrency", type=_count(1), default=1, help="steps each worker runs at once (default: 1)")
    up.add_argument("--no-daemon", dest="daemon", action="store_false", help="workers only (another host runs it)")
    up.add_argument("--no-webserver", dest="webserver", action="store_false", help="no Dagster UI on this host")
    up.add_argument("--host", default="127.0.0.1", help="webserver interface (default: 127.0.0.1)")
    up.add_argument("--port", type=int, default=3000, help="webserver port (default: 3000)")
    up.add_argument("--grace", type=float, default=STOP_GRACE_S,
                    help=f"seconds between SIGTERM and SIGKILL when stopping (default: {STOP_GRACE_S:.0f})")
    up.set_defaults(func=cmd_stack_up)


def cmd_stack_up(settings: Settings, args: argparse.Namespace) -> int:
    if args.workers and settings.dagster_executor != "celery":
        print("note: DAGSTER_EXECUTOR is not 'celery': runs execute in process and the workers stay idle",
              file=sys.stderr)
    if settings.dagster_pg_url is None and (args.workers or not args.daemon):
        print("note: DAGSTER_PG_URL is not set: the instance is SQLite under DAGSTER_HOME, one host only",
              file=sys.stderr)
    if settings.dagster_pg_url is not None and args.daemon:
        try:
            if ensure_database(settings.dagster_pg_url.get_secret_value()):
                print("created the Dagster database named by DAGSTER_PG_URL", file=sys.stderr)
        except psycopg.Error as exc:
            print(f"nightly-pipeline: cannot reach the Dagster database (DAGSTER_PG_URL): {type(exc).__name__}",
                  file=sys.stderr)
            return 1
    stack = Stack(settings, workers=args.workers, daemon=args.daemon, webserver=args.webserver, host=args.host,
                  port=args.port, worker_concurrency=args.worker_concurrency, grace_s=args.grace)
    return run_stack(stack)
