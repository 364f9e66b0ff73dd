"""The admin API as operators run it: `nightly-pipeline api serve` in a subprocess on a loopback
port, against the test database and a real Dagster instance in a temporary DAGSTER_HOME.

One server serves the whole session (starting it loads the code location, ~10 s); every test
still starts from empty tables (the ``db`` fixture) and an empty run queue (``queue``).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import psycopg
import pytest

from nightly_pipeline.api import tokens
from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline_tests.kit import tenants as kit_tenants

EXCLUDED_TENANT = 3       # SCHED_TENANT_EXCLUDE of the server: tenant ids restart at 1 in every test
SUBMISSIONS_PER_MINUTE = 4
# Values that must never show in a response or a log line.
SECRETS = {
    "OPENAI_API_KEY": "sk-api-test-never-shown",
    "TAVILY_API_KEY": "tvly-api-test-never-shown",
    "LUSHA_API_KEY": "lusha-api-test-never-shown",
    "ZEROBOUNCE_API_KEY": "zb-api-test-never-shown",
    "ODOO_TEST_PASSWORD": "odoo-api-test-never-shown",
}
DB_PASSWORD = "db-password-never-shown"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_signals() -> None:
    # A test run started from a non-interactive shell inherits SIGINT ignored, and Dagster maps
    # SIGTERM onto SIGINT's disposition: restore both so the children stop when asked.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop(process: subprocess.Popen, timeout: float = 90) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{process.args[:4]} did not stop on SIGTERM within {timeout} s") from None
    return process.returncode


def app_url_with_password(target: DatabaseTarget) -> str:
    """The embedded test server trusts local sockets, so a password in the URL is carried, not
    checked: exactly what a leak test needs. A server from TEST_DATABASE_URL keeps its own URL."""
    if os.environ.get("TEST_DATABASE_URL"):
        return target.app_url
    params = psycopg.conninfo.conninfo_to_dict(target.app_url)
    params["password"] = DB_PASSWORD
    return psycopg.conninfo.make_conninfo(**params)


@dataclasses.dataclass
class ApiServer:
    url: str
    home: Path
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, trust_env=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def api_server(db_target: DatabaseTarget, tmp_path_factory) -> Iterator[ApiServer]:
    base = tmp_path_factory.mktemp("api")
    home, log_path = base / "dagster_home", base / "server.log"
    port = free_port()
    env = {**os.environ, **SECRETS,
           "DATABASE_URL": app_url_with_password(db_target), "DATABASE_ADMIN_URL": db_target.admin_url,
           "DAGSTER_HOME": str(home), "SCHED_TENANT_EXCLUDE": str(EXCLUDED_TENANT),
           "API_SUBMISSIONS_PER_MINUTE": str(SUBMISSIONS_PER_MINUTE), "VENDOR_UNIT_COSTS": "tavily=0.01,openai=0.000001",
           "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1,localhost"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "nightly_pipeline.cli", "api", "serve", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=default_signals)
    server = ApiServer(f"http://127.0.0.1:{port}", home, log_path, env, process)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the API server exited with {process.returncode}:\n{server.log()[-3000:]}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the API server did not become healthy:\n{server.log()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        code = stop(process)
    assert code == 0, server.log()[-3000:]


@pytest.fixture(scope="session")
def server_instance(api_server: ApiServer) -> Iterator[dg.DagsterInstance]:
    """The server's Dagster instance, opened from this process too."""
    with dg.DagsterInstance.from_config(str(api_server.home)) as instance:
        yield instance


@pytest.fixture
def queue(server_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The server's instance with no runs left from an earlier test (tenant ids restart at 1)."""
    for run in server_instance.get_runs():
        server_instance.delete_run(run.run_id)
    return server_instance


@pytest.fixture
def api(api_server: ApiServer, db: Database, queue) -> ApiServer:
    return api_server


def add_tenant(db: Database, name: str, *, icp: dict | None = None, **connection) -> int:
    """A tenant whose Odoo password variable, unless given, holds a value the tests look for in every
    response."""
    connection.setdefault("password_env", "ODOO_TEST_PASSWORD")
    return kit_tenants.add_tenant(db, name, icp, **connection)


def issue(db: Database, name: str, role: str, tenant_id: int | None = None) -> str:
    return tokens.issue_token(db, name, role, tenant_id, "test")[1]
