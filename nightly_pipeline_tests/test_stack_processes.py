"""`nightly-pipeline stack up` process handling, with stand-in services instead of Dagster and
Celery: every service in a process group of its own, SIGTERM first, SIGKILL for what ignores it,
and nothing left running afterwards, grandchildren included."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from nightly_pipeline.settings import load_settings
from nightly_pipeline.stack import Service, Stack

# Starts a grandchild, then waits; with IGNORE=1 in the environment both ignore SIGTERM.
SERVICE = """
import os, signal, subprocess, sys, time
if os.environ.get("IGNORE") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time, os\\n"
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN) if os.environ.get('IGNORE') == '1' else None\\n"
                          "time.sleep(600)"])
print("ready", child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def stand_in_stack(tmp_path: Path) -> Stack:
    stack = Stack(load_settings({"DAGSTER_HOME": str(tmp_path / "home")}), workers=0, daemon=False,
                  webserver=False, grace_s=1.0)
    stack.services = [Service(f"svc-{n}", (sys.executable, "-c", SERVICE), tmp_path / f"svc-{n}.log")
                      for n in (1, 2)]
    return stack


def grandchildren(stack: Stack) -> list[int]:
    pids = []
    for service in stack.services:
        deadline = time.monotonic() + 60  # a safety net for a stuck start, not a performance assertion
        while "ready" not in service.log_path.read_text():
            assert time.monotonic() < deadline, service.log_path.read_text()
            time.sleep(0.05)
        pids.append(int(service.log_path.read_text().split()[1]))
    return pids


def test_sigterm_stops_every_service_and_what_it_spawned(tmp_path, monkeypatch):
    monkeypatch.setenv("IGNORE", "0")
    stack = stand_in_stack(tmp_path)
    stack.start()
    spawned = grandchildren(stack)
    groups = dict(stack.process_groups())
    assert len(set(groups.values())) == 2 and os.getpgid(0) not in groups.values()
    codes = stack.stop()
    assert codes == {"svc-1": -signal.SIGTERM, "svc-2": -signal.SIGTERM}
    assert [pid for pid in [*groups.values(), *spawned] if alive(pid)] == []


def test_what_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setenv("IGNORE", "1")
    stack = stand_in_stack(tmp_path)
    stack.start()
    spawned = grandchildren(stack)
    groups = dict(stack.process_groups())
    codes = stack.stop()
    assert codes == {"svc-1": -signal.SIGKILL, "svc-2": -signal.SIGKILL}
    assert [pid for pid in [*groups.values(), *spawned] if alive(pid)] == []
