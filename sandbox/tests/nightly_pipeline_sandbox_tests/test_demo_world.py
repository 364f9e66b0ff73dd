"""The demo's world after the demo: its own embedded database whatever DATABASE_URL says, and the
same sandbox back on the same ports, so the demo tenants' stored Odoo URLs still answer."""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import odoorpc
import pytest

from nightly_pipeline.db import open_database
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline_sandbox import demo
from nightly_pipeline_sandbox.runner import PortUnavailable, Sandbox, SandboxConfig

PRODUCTION_URL = "postgresql://nightly_app:secret@127.0.0.1:9/production"


@pytest.fixture(scope="module")
def embedded_home() -> Iterator[Path]:
    """A DAGSTER_HOME for an embedded server (not under pytest's basetemp: the server runs as
    another user when we are root, and pytest keeps its own folder at mode 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="nightly-pipeline-demo-world-"))
    folder.chmod(0o755)
    yield folder / "dagster_home"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def demo_env(embedded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's variables, put back after the test (the demo removes the database ones for good)."""
    monkeypatch.setenv("DAGSTER_HOME", str(embedded_home))
    for name in ("DATABASE_URL", "DATABASE_ADMIN_URL"):
        monkeypatch.delenv(name, raising=False)
    return embedded_home


def _odoo_client(url: str) -> odoorpc.ODOO:
    parts = urllib.parse.urlsplit(url)
    return odoorpc.ODOO(parts.hostname, port=parts.port, protocol="jsonrpc")


def test_the_demo_world_never_uses_a_database_server(demo_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", PRODUCTION_URL)
    monkeypatch.setenv("database_admin_url", PRODUCTION_URL)  # settings read names case-insensitively
    settings = demo.demo_settings("demo")
    # Gone from this process's environment, so from every tenant run it starts as well.
    assert not [name for name in os.environ if name.lower() in ("database_url", "database_admin_url")]
    assert settings.database_url is None and settings.database_admin_url is None
    home = ensure_dagster_home(settings)
    with Sandbox(SandboxConfig(web_latency_scale=0, vendor_latency_scale=0)) as sandbox, \
            open_database(settings) as db:
        assert db.target.embedded
        tenants = demo.set_up_world(db, sandbox)
    assert (home / "pgdata" / "PG_VERSION").exists()
    assert [name for _, name in tenants] == [name for name, _, _ in demo.DEMO_TENANTS]


def test_the_sandbox_comes_back_on_the_recorded_ports(demo_env: Path):
    settings = demo.demo_settings("test")
    home = ensure_dagster_home(settings)
    (home / demo.RECORD_FILE).unlink(missing_ok=True)
    with demo.demo_sandbox(home, program="test", require_recorded_ports=False) as first, \
            open_database(settings) as db:
        demo.set_up_world(db, first)
        ports = first.ports
        tenant_id, connection = demo.find_demo_tenants(db)["Lion City SaaS Sales"]
        assert connection.url == first.odoo_url
        odoo = _odoo_client(connection.url)
        odoo.login(connection.db_name, connection.username, first.env[connection.password_env])
        partner_id = odoo.env["res.partner"].create({"name": "Kept Between Sessions Pte. Ltd.", "is_company": True})
    assert demo.read_record(home) == demo.SandboxRecord(seed=SandboxConfig().seed, ports=ports)

    with demo.demo_sandbox(home, program="test", require_recorded_ports=True) as second, \
            open_database(settings) as db:
        assert second.ports == ports
        tenant_id_again, connection = demo.find_demo_tenants(db)["Lion City SaaS Sales"]
        assert tenant_id_again == tenant_id
        # The URL stored by the first session reaches the second sandbox, with the first one's records.
        odoo = _odoo_client(connection.url)
        odoo.login(connection.db_name, connection.username, second.env[connection.password_env])
        assert odoo.env["res.partner"].browse(partner_id).name == "Kept Between Sessions Pte. Ltd."


def test_a_taken_recorded_port_stops_dev_but_not_the_demo(tmp_path: Path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        (tmp_path / demo.RECORD_FILE).write_text(json.dumps({"seed": 7, "ports": {"odoo": taken}}))
        with pytest.raises(PortUnavailable, match=f"odoo server cannot listen on 127.0.0.1:{taken}"):
            with demo.demo_sandbox(tmp_path, program="test", require_recorded_ports=True):
                pass
        with demo.demo_sandbox(tmp_path, program="test", require_recorded_ports=False) as sandbox:
            moved = sandbox.ports
        assert moved["odoo"] != taken
        assert demo.read_record(tmp_path).ports == moved


@pytest.mark.parametrize("content", ["not json", '{"seed": 7}', '{"seed": 7, "ports": {"odoo": 0}}',
                                     '{"seed": "7", "ports": {}}'])
def test_a_damaged_record_is_named(tmp_path: Path, content: str):
    (tmp_path / demo.RECORD_FILE).write_text(content)
    with pytest.raises(demo.DemoError, match="sandbox.json"):
        demo.read_record(tmp_path)


def test_fixed_ports_must_name_sandbox_servers():
    with pytest.raises(ValueError, match="names no sandbox server: crm"):
        Sandbox(SandboxConfig(ports={"crm": 8069}))
