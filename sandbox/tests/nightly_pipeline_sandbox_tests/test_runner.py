"""The whole sandbox starts, points the pipeline at itself, and stops without leftovers."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import odoorpc
import pytest

from nightly_pipeline.settings import load_settings
from nightly_pipeline_sandbox.runner import (
    ODOO_PASSWORD,
    ODOO_USER,
    Sandbox,
    SandboxConfig,
)


def test_env_points_every_client_at_a_live_server():
    before = threading.active_count()
    with Sandbox(SandboxConfig(web_latency_scale=0, vendor_latency_scale=0)) as sandbox:
        env = sandbox.env
        settings = load_settings(env)
        assert settings.crawler_schemes == ["http"]
        site = next(iter(sandbox.world.sites))
        assert httpx.get(f"http://{site}/", proxy=env["CRAWLER_PROXY"]).status_code == 200
        assert httpx.get(f"{env['ZEROBOUNCE_BASE_URL']}/getcredits",
                         params={"api_key": env["ZEROBOUNCE_API_KEY"]}).json()["Credits"]
        port = int(env["SANDBOX_ODOO_URL"].rsplit(":", 1)[1])
        odoo = odoorpc.ODOO("127.0.0.1", port=port, protocol="jsonrpc")
        odoo.login("demo_software", ODOO_USER, ODOO_PASSWORD)
        assert odoo.env["res.partner"].search_count([]) >= 0
        assert sandbox.web.stats()["requests"] == 1
    assert threading.active_count() == before
    assert sandbox.web.port is not None
    try:
        httpx.get(env["CRAWLER_PROXY"] + "/_sandbox/stats", timeout=2)
        raise AssertionError("the proxy should be closed")
    except httpx.ConnectError:
        pass


def _read_exports(process: subprocess.Popen, exports: dict[str, str]) -> None:
    for line in process.stdout:
        name, _, value = line.strip().removeprefix("export ").partition("=")
        exports[name] = value
        if name == "OPENAI_API_KEY":
            return


def test_sandbox_serve_prints_exports_and_stops_on_ctrl_c():
    # The installed console script: `sandbox` reaches it through the entry point the sandbox registers.
    script = Path(sys.executable).with_name("nightly-pipeline")
    process = subprocess.Popen([str(script), "sandbox", "serve", "--latency-scale", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        exports: dict[str, str] = {}
        reader = threading.Thread(target=_read_exports, args=(process, exports), daemon=True)
        reader.start()
        reader.join(timeout=60)
        if reader.is_alive():
            process.kill()
            pytest.fail(f"no export lines within a minute; stderr: {process.stderr.read()[-2000:]}")
        proxy = exports["CRAWLER_PROXY"]
        assert httpx.get(proxy + "/_sandbox/stats").json()["requests"] == 0
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    assert set(exports) >= {"CRAWLER_PROXY", "CRAWLER_SCHEMES", "TAVILY_BASE_URL", "TAVILY_API_KEY",
                            "LUSHA_BASE_URL", "ZEROBOUNCE_BASE_URL", "ZEROBOUNCE_BULK_BASE_URL",
                            "OPENAI_BASE_URL", "SANDBOX_ODOO_URL"}
