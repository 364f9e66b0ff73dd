"""``make dev``: the demo's sandbox and ``dagster dev`` together, and everything stopped on a signal,
however stubborn ``dagster dev``'s process group is."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nightly_pipeline_sandbox.dev import group_members, stop_process_group

# A leader that ignores the first signals (as dagster dev may) with a child that outlives it.
STUBBORN_TREE = textwrap.dedent("""
    import signal, subprocess, sys, time
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print(child.pid, flush=True)
    time.sleep(600)
""")

# A leader that stops on SIGINT at once but leaves its child (a code server, a run worker) behind.
ORPHANING_TREE = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(child.pid, flush=True)
    try:
        time.sleep(600)
    except KeyboardInterrupt:
        sys.exit(0)
""")


def start_tree(source: str) -> tuple[subprocess.Popen, int]:
    leader = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    child = int(leader.stdout.readline())
    return leader, child


@pytest.mark.parametrize("source", [STUBBORN_TREE, ORPHANING_TREE], ids=["stubborn", "orphaning"])
def test_nothing_of_the_group_survives(source: str):
    leader, child = start_tree(source)
    assert set(group_members(leader.pid)) == {leader.pid, child}
    try:
        stop_process_group(leader, leader_grace_s=(0.5, 0.5), group_grace_s=0.5)
        assert leader.returncode is not None
        assert group_members(leader.pid) == []
    finally:
        leader.stdout.close()
        if leader.poll() is None:
            leader.kill()
            leader.wait()


def test_a_leader_that_already_exited_is_only_reaped():
    leader = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    leader.wait()
    stop_process_group(leader, leader_grace_s=(0.5, 0.5), group_grace_s=0.5)
    assert leader.returncode == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return children


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def dev_home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="nightly-pipeline-dev-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_dev_without_a_demo_sets_up_the_world_serves_the_ui_and_stops_everything(dev_home: Path):
    home, ui_port = dev_home / "dagster_home", _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": "postgresql://nightly_app:secret@127.0.0.1:9/prod",
           "PYTHONWARNINGS": "ignore"}
    with open(dev_home / "dev.log", "w+") as log:
        dev = subprocess.Popen([sys.executable, "-m", "nightly_pipeline_sandbox.dev", "--port", str(ui_port)],
                               cwd=dev_home, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 300
            while not _answers(f"http://127.0.0.1:{ui_port}/server_info"):
                assert dev.poll() is None and time.monotonic() < deadline, \
                    f"no Dagster UI; dev said:\n{(dev_home / 'dev.log').read_text()[-3000:]}"
                time.sleep(1)
            record = json.loads((home / "sandbox.json").read_text())
            [dagster] = _children(dev.pid)
            dagster_env = _environ(dagster)
            assert dagster_env["DAGSTER_HOME"] == str(home)
            assert dagster_env["SANDBOX_ODOO_URL"] == f"http://127.0.0.1:{record['ports']['odoo']}"
            assert dagster_env["CRAWLER_PROXY"] == f"http://127.0.0.1:{record['ports']['web']}"
            assert "DATABASE_URL" not in dagster_env
            assert _answers(f"http://127.0.0.1:{record['ports']['odoo']}/_sandbox/stats")
            dev.send_signal(signal.SIGTERM)
            assert dev.wait(timeout=180) == 0
        finally:
            if dev.poll() is None:
                dev.kill()
                dev.wait()
        output = (dev_home / "dev.log").read_text()
    assert "no demo has been run" in output and "ignoring DATABASE_URL" in output
    assert group_members(dagster) == []
    assert not (home / "pgdata" / "postmaster.pid").exists()
    assert not _answers(f"http://127.0.0.1:{record['ports']['odoo']}/_sandbox/stats")
    assert (home / "sandbox_odoo.json").exists()
