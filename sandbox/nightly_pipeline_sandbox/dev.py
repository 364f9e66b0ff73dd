"""``make dev``: the Dagster UI on the demo's instance, with the demo's sandbox back on its ports.

After ``make demo`` the demo tenants' Odoo connections point at the sandbox Odoo on the port the
demo used, and their runs need the simulated web and vendors. This starts that sandbox again on the
ports recorded in ``$DAGSTER_HOME/sandbox.json`` (with the Odoo records the demo left), then
``dagster dev`` with the sandbox's variables in its environment, so a backfill of a demo tenant
crawls, enriches and syncs to Odoo as the demo did. Without a demo it first sets up the demo's
world (the ACRA sample and the two demo tenants) and runs nothing.

Ctrl-C or SIGTERM stops everything: ``dagster dev`` with its process group (webserver, daemon,
code server, run workers), then the embedded PostgreSQL and the sandbox.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nightly_pipeline.db import open_database
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.settings import SettingsError, load_settings
from nightly_pipeline_sandbox.demo import (
    DEMO_TENANTS,
    RECORD_FILE,
    DemoError,
    demo_sandbox,
    demo_settings,
    find_demo_tenants,
    read_record,
    set_up_world,
)
from nightly_pipeline_sandbox.runner import PortUnavailable

PROGRAM = "dev"
POLL_S = 0.2
# dagster dev gives its webserver and daemon up to a minute each after the first signal; a second
# signal during that wait abandons them, and whatever is left of the group is terminated, then killed.
LEADER_GRACE_S = (60.0, 15.0)
GROUP_GRACE_S = 10.0


class Interrupts:
    """SIGINT and SIGTERM counted instead of raised, so that shutdown always runs to its end; every
    further signal hurries it on to the next, harsher step."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._received)

    def _received(self, signum: int, frame: object) -> None:
        self.count += 1


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _wait(done, timeout_s: float, interrupts: Interrupts | None) -> bool:
    """Poll ``done()`` until it holds, ``timeout_s`` passes or a new signal arrives; return done()."""
    deadline = time.monotonic() + timeout_s
    seen = interrupts.count if interrupts else 0
    while not done():
        if time.monotonic() >= deadline or (interrupts and interrupts.count > seen):
            return done()
        time.sleep(POLL_S)
    return True


def stop_process_group(process: subprocess.Popen, *, interrupts: Interrupts | None = None,
                       leader_grace_s: Sequence[float] = LEADER_GRACE_S, group_grace_s: float = GROUP_GRACE_S) -> None:
    """Stop ``process`` (the leader of its own process group) and everything left in that group.

    The leader gets SIGINT, then SIGTERM; what it leaves behind gets time to finish (a code server
    detaching from the embedded PostgreSQL), then SIGTERM, then SIGKILL. A process killed this way
    cannot detach from the embedded PostgreSQL, which is why the caller releases the server only
    afterwards: its last holder prunes the dead ones and stops it.
    """
    pgid = process.pid

    def group_gone() -> bool:
        return process.poll() is not None and not group_members(pgid)

    for signum, grace_s in zip((signal.SIGINT, signal.SIGTERM), leader_grace_s):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
        _wait(lambda: process.poll() is not None, grace_s, interrupts)
    _wait(group_gone, group_grace_s, interrupts)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if group_gone():
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)
        _wait(group_gone, group_grace_s, interrupts)
    process.wait()


def dagster_dev_command(host: str, port: int) -> list[str]:
    command = [sys.executable, "-m", "dagster", "dev", "-h", host, "-p", str(port)]
    if not Path("workspace.yaml").exists():
        command += ["-m", "nightly_pipeline.definitions"]
    return command


def run_dagster_dev(host: str, port: int, home: Path) -> int:
    interrupts = Interrupts()
    interrupts.install()
    # Its own session: Ctrl-C reaches only us, and we stop its whole group in order.
    process = subprocess.Popen(dagster_dev_command(host, port), start_new_session=True,
                               env={**os.environ, "DAGSTER_HOME": str(home)})
    print(f"{PROGRAM}: Dagster UI on http://{host}:{port} (DAGSTER_HOME={home}); Ctrl-C stops it and the sandbox",
          flush=True)
    _wait(lambda: process.poll() is not None, float("inf"), interrupts)
    if interrupts.count:
        print(f"{PROGRAM}: stopping Dagster, then the sandbox and the embedded PostgreSQL…", file=sys.stderr, flush=True)
        stop_process_group(process, interrupts=interrupts)
        return 0
    print(f"{PROGRAM}: dagster dev exited with status {process.returncode}", file=sys.stderr)
    stop_process_group(process, interrupts=interrupts)
    return process.returncode or 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nightly_pipeline_sandbox.dev", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="where the Dagster UI listens (default: %(default)s)")
    parser.add_argument("--port", type=int, default=3000, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        settings = demo_settings(PROGRAM)
    except SettingsError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 2
    home = ensure_dagster_home(settings)
    record = read_record(home)
    with contextlib.ExitStack() as stack:
        try:
            sandbox = stack.enter_context(
                demo_sandbox(home, program=PROGRAM, require_recorded_ports=record is not None))
        except PortUnavailable as exc:
            print(f"{PROGRAM}: {exc}. The demo tenants' Odoo connections point at the ports recorded in "
                  f"{home / RECORD_FILE}: stop the process that holds it (another `make dev`?) and try again.",
                  file=sys.stderr)
            return 1
        os.environ.update(sandbox.env)
        # Held for the whole session: the server stays up between runs, and stops when we leave.
        db = stack.enter_context(open_database(load_settings()))
        tenants = find_demo_tenants(db)
        if record is None:
            print(f"{PROGRAM}: no demo has been run in {home} yet; setting up the demo's world first (the ACRA "
                  f"sample and the two demo tenants, no runs: `make demo` also runs them)")
            set_up_world(db, sandbox)
        elif len(tenants) < len(DEMO_TENANTS):
            print(f"{PROGRAM}: the demo tenants are missing from the database in {home}; registering them again")
            set_up_world(db, sandbox)
        else:
            for name, (tenant_id, connection) in sorted(tenants.items()):
                if connection is None or connection.url != sandbox.odoo_url:
                    print(f"{PROGRAM}: tenant {tenant_id} ({name}) no longer points at the sandbox Odoo "
                          f"{sandbox.odoo_url}; its Odoo sync will fail", file=sys.stderr)
        print(f"{PROGRAM}: sandbox up on {', '.join(f'{n}:{p}' for n, p in sandbox.ports.items())}", flush=True)
        return run_dagster_dev(args.host, args.port, home)


def run() -> int:
    try:
        return main()
    except DemoError as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROGRAM}: interrupted; the sandbox and the embedded PostgreSQL are stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
