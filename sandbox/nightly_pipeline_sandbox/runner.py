"""Start and stop the whole simulated world on loopback: web proxy, Tavily, Lusha, ZeroBounce,
an OpenAI-compatible endpoint and Odoo, in one event loop on a background thread.

Used by ``nightly-pipeline sandbox serve``, by ``make demo``, by ``make dev`` and by the tests.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from nightly_pipeline_sandbox.base import LatencyModel, SandboxServer
from nightly_pipeline_sandbox.llm import OpenAIServer
from nightly_pipeline_sandbox.lusha import LushaServer
from nightly_pipeline_sandbox.odoo import OdooServer
from nightly_pipeline_sandbox.tavily import TavilyServer
from nightly_pipeline_sandbox.web import WebProxyServer
from nightly_pipeline_sandbox.world import World
from nightly_pipeline_sandbox.zerobounce import ZeroBounceServer

SANDBOX_KEYS = {
    "TAVILY_API_KEY": "tvly-sandbox",
    "LUSHA_API_KEY": "lusha-sandbox",
    "ZEROBOUNCE_API_KEY": "zb-sandbox",
    "OPENAI_API_KEY": "sk-sandbox",
}
ODOO_PASSWORD_ENV = "SANDBOX_ODOO_PASSWORD"
ODOO_PASSWORD = "sandbox-odoo"
ODOO_USER = "admin"
DEMO_ODOO_DATABASES = ("demo_software", "demo_logistics")
SERVER_NAMES = tuple(server.name for server in (WebProxyServer, TavilyServer, LushaServer, ZeroBounceServer,
                                                OpenAIServer, OdooServer))


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    seed: int = 7
    web_latency_scale: float = 1.0
    vendor_latency_scale: float = 0.2
    acra_csv: Path | None = None
    odoo_databases: tuple[str, ...] = DEMO_ODOO_DATABASES
    lusha_per_minute: int = 300
    zerobounce_batches_per_minute: int = 5
    # Where the sandbox Odoo keeps its records between runs (like a real CRM); None = memory only.
    odoo_state_file: Path | None = None
    # Fixed ports by server name (web, tavily, lusha, zerobounce, openai, odoo), so that URLs stored
    # elsewhere (a tenant's Odoo URL) still point at the sandbox after a restart; others get a free port.
    ports: Mapping[str, int] = dataclasses.field(default_factory=dict)


class PortUnavailable(RuntimeError):
    """A fixed port of the configuration is taken by another process."""

    def __init__(self, server: str, port: int) -> None:
        super().__init__(f"the sandbox's {server} server cannot listen on 127.0.0.1:{port}: "
                         f"another process is using that port")
        self.server = server
        self.port = port


class Sandbox:
    """``with Sandbox(config) as sandbox: ... sandbox.env`` — every server up, then all down."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        unknown = set(self.config.ports) - set(SERVER_NAMES)
        if unknown:
            raise ValueError(f"SandboxConfig.ports names no sandbox server: {', '.join(sorted(unknown))} "
                             f"(the servers are {', '.join(SERVER_NAMES)})")
        self.world = World.from_acra_csv(self.config.acra_csv, seed=self.config.seed)
        self.web = WebProxyServer(self.world, seed=self.config.seed,
                                  latency=LatencyModel(scale=self.config.web_latency_scale))
        self.tavily = TavilyServer(self.world, api_keys={SANDBOX_KEYS["TAVILY_API_KEY"]}, seed=self.config.seed,
                                   latency=self._vendor_latency())
        self.lusha = LushaServer(seed=self.config.seed, api_keys={SANDBOX_KEYS["LUSHA_API_KEY"]},
                                 per_minute=self.config.lusha_per_minute, latency=self._vendor_latency())
        self.zerobounce = ZeroBounceServer(seed=self.config.seed, api_keys={SANDBOX_KEYS["ZEROBOUNCE_API_KEY"]},
                                           batch_per_minute=self.config.zerobounce_batches_per_minute,
                                           latency=self._vendor_latency())
        self.openai = OpenAIServer(seed=self.config.seed, api_keys={SANDBOX_KEYS["OPENAI_API_KEY"]},
                                   latency=self._vendor_latency())
        self.odoo = OdooServer(databases={db: {ODOO_USER: ODOO_PASSWORD} for db in self.config.odoo_databases},
                               seed=self.config.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _vendor_latency(self) -> LatencyModel:
        return LatencyModel(scale=self.config.vendor_latency_scale)

    @property
    def servers(self) -> list[SandboxServer]:
        return [self.web, self.tavily, self.lusha, self.zerobounce, self.openai, self.odoo]

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        """Run a coroutine on the sandbox's loop (for servers' async methods) and wait for it."""
        if self._loop is None:
            raise RuntimeError("sandbox is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> "Sandbox":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox", daemon=True)
        self._thread.start()
        state = self.config.odoo_state_file
        if state is not None and state.exists():
            self.odoo.load_state(state)
        try:
            # Fixed ports first, so that no server given a free port can take one of them.
            for server in sorted(self.servers, key=lambda s: s.name not in self.config.ports):
                port = self.config.ports.get(server.name, 0)
                try:
                    self.run(server.start(port=port))
                except OSError as exc:
                    if port and exc.errno == errno.EADDRINUSE:
                        raise PortUnavailable(server.name, port) from exc
                    raise
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self.config.odoo_state_file is not None:
            self.odoo.save_state(self.config.odoo_state_file)
        for server in self.servers:
            if server.port is not None:
                try:
                    self.run(server.stop(), timeout=10)
                except (TimeoutError, RuntimeError):
                    pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def odoo_url(self) -> str:
        return self.odoo.url

    @property
    def ports(self) -> dict[str, int]:
        """The port of every server, by name (what ``SandboxConfig.ports`` takes)."""
        if self._loop is None:
            raise RuntimeError("sandbox is not started")
        return {server.name: server.port for server in self.servers}

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the pipeline at this sandbox (the keys are sandbox-only)."""
        return {
            "CRAWLER_PROXY": self.web.url,
            "CRAWLER_SCHEMES": "http",
            # The simulated web lives on loopback behind the proxy, and its names resolve nowhere else.
            "CRAWLER_ALLOW_PRIVATE_NETWORKS": "true",
            "TAVILY_BASE_URL": self.tavily.url,
            "LUSHA_BASE_URL": self.lusha.url,
            "ZEROBOUNCE_BASE_URL": f"{self.zerobounce.url}/v2",
            "ZEROBOUNCE_BULK_BASE_URL": f"{self.zerobounce.url}/v2",
            "OPENAI_BASE_URL": f"{self.openai.url}/v1",
            "SANDBOX_ODOO_URL": self.odoo.url,
            ODOO_PASSWORD_ENV: ODOO_PASSWORD,
            **SANDBOX_KEYS,
        }
