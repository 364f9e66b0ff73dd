"""The embedded server: start, reuse and stop, also after a holder was SIGKILLed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                                reason="exercises the embedded server only")

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from nightly_pipeline.db.embedded import EmbeddedPostgres
    server = EmbeddedPostgres(Path(sys.argv[1])).start()
    print(server.uri(), flush=True)
    if sys.argv[2] == "hold":
        time.sleep(120)
    else:
        server.stop()
""")


def run_holder(home: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(home), mode], stdout=subprocess.PIPE, text=True)


def server_running(home: Path) -> bool:
    pid_file = home / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def home():
    folder = Path(tempfile.mkdtemp(prefix="nightly-pipeline-embedded-"))
    folder.chmod(0o755)
    yield folder / "dagster_home"
    if server_running(folder / "dagster_home"):
        subprocess.run([sys.executable, "-c", HOLDER, str(folder / "dagster_home"), "stop"], check=False)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_killed_holder_does_not_keep_the_server_alive(home):
    holder = run_holder(home, "hold")
    assert holder.stdout.readline().startswith("postgresql://")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert server_running(home), "SIGKILL skips atexit, so the server is still up"
    assert json.loads((home / "pgdata" / ".handle_pids.json").read_text()) == [holder.pid]

    follower = run_holder(home, "stop")
    out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0 and out.startswith("postgresql://")
    assert not server_running(home), "the next holder found the dead pid, became last holder and stopped it"


def test_sigterm_runs_the_cleanup(home):
    holder = run_holder(home, "hold")
    assert holder.stdout.readline().startswith("postgresql://")
    holder.send_signal(signal.SIGTERM)
    holder.wait(timeout=120)  # a safety net: stopping the server takes long on a loaded machine
    assert not server_running(home)


def test_two_holders_share_one_server(home):
    first = run_holder(home, "hold")
    uri = first.stdout.readline().strip()
    second = run_holder(home, "stop")
    out, _ = second.communicate(timeout=60)
    assert out.strip() == uri
    assert server_running(home), "the first holder still holds it"
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)
    assert not server_running(home)
