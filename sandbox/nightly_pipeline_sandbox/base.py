"""Common machinery of the sandbox servers: an aiohttp app on loopback with a seeded latency
model, injectable 429/5xx faults, a request log and admin endpoints under ``/_sandbox/``.

Every sandbox server (simulated web proxy, Tavily, Lusha, ZeroBounce, OpenAI, Odoo) subclasses
:class:`SandboxServer` and adds its own routes in :meth:`SandboxServer.add_routes`.
"""
from __future__ import annotations

import abc
import asyncio
import dataclasses
import json
import math
import random
import threading
import time
from collections import Counter
from typing import Any

from aiohttp import web

ADMIN_PREFIX = "/_sandbox/"


@dataclasses.dataclass
class LatencyModel:
    """Log-normal per-request latency: median ``median_s``; ``sigma`` sets the long tail.

    ``scale`` multiplies every draw, so ``scale=0`` turns latency off for fast tests.
    """

    median_s: float = 0.25
    sigma: float = 0.6
    scale: float = 1.0
    max_s: float = 10.0

    def draw(self, rng: random.Random) -> float:
        if self.scale <= 0:
            return 0.0
        return min(self.max_s, self.median_s * math.exp(rng.gauss(0.0, self.sigma))) * self.scale


@dataclasses.dataclass
class FaultConfig:
    """Fractions of requests answered with 429 or 5xx before reaching the handler."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    retry_after_s: int = 1
    # 503 for a vendor having a bad minute; 502 for a gateway in front of it that lost the upstream.
    status_5xx: int = 503


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    at: float
    host: str
    method: str
    path: str
    status: int
    bytes: int


class SandboxServer(abc.ABC):
    """An aiohttp server bound to loopback; start/stop from a running event loop."""

    name = "sandbox"

    def __init__(self, *, seed: int = 0, latency: LatencyModel | None = None,
                 faults: FaultConfig | None = None) -> None:
        self.seed = seed
        self.latency = latency or LatencyModel(scale=0.0)
        self.faults = faults or FaultConfig()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.request_log: list[RequestRecord] = []
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    # -- to override -------------------------------------------------------------------------
    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Register the server's own routes."""

    def stats(self) -> dict[str, Any]:
        """Server-specific counters; subclasses extend the dict."""
        with self._lock:
            by_status = Counter(r.status for r in self.request_log)
        return {"name": self.name, "requests": len(self.request_log),
                "by_status": {str(k): v for k, v in sorted(by_status.items())}}

    def reset(self) -> None:
        with self._lock:
            self.request_log.clear()

    def request_host(self, request: web.Request) -> str:
        return request.host.split(":")[0]

    def log_path(self, request: web.Request) -> str:
        return request.path

    # -- machinery ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} sandbox server is not started")
        return f"http://127.0.0.1:{self.port}"

    def record(self, request: web.Request, status: int, nbytes: int) -> None:
        with self._lock:
            self.request_log.append(RequestRecord(time.time(), self.request_host(request),
                                                  request.method, self.log_path(request), status, nbytes))

    def draw_latency(self) -> float:
        with self._lock:
            return self.latency.draw(self._rng)

    def draw_fault(self) -> int | None:
        with self._lock:
            r = self._rng.random()
        if r < self.faults.rate_429:
            return 429
        if r < self.faults.rate_429 + self.faults.rate_5xx:
            return self.faults.status_5xx
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        if request.path.startswith(ADMIN_PREFIX):
            if self.request_host(request) in ("127.0.0.1", "localhost"):
                return await handler(request)
            # A proxied request for http://some-site/_sandbox/... is a page that site does not have.
            raise web.HTTPNotFound()
        delay = self.draw_latency()
        if delay:
            await asyncio.sleep(delay)
        fault = self.draw_fault()
        if fault is not None:
            headers = {"Retry-After": str(self.faults.retry_after_s)} if fault == 429 else {}
            resp: web.StreamResponse = web.json_response(
                {"error": "injected fault", "status": fault}, status=fault, headers=headers)
        else:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                resp = exc
        self.record(request, resp.status, _body_size(resp))
        if isinstance(resp, web.HTTPException):
            raise resp
        return resp

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _admin_log(self, request: web.Request) -> web.Response:
        with self._lock:
            rows = [dataclasses.asdict(r) for r in self.request_log]
        return web.json_response(rows)

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _admin_config(self, request: web.Request) -> web.Response:
        body = await request.json()
        for key, value in body.get("latency", {}).items():
            setattr(self.latency, key, float(value))
        for key, value in body.get("faults", {}).items():
            setattr(self.faults, key, type(getattr(self.faults, key))(value))
        return web.json_response({"latency": dataclasses.asdict(self.latency),
                                  "faults": dataclasses.asdict(self.faults)})

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_get(ADMIN_PREFIX + "stats", self._admin_stats)
        app.router.add_get(ADMIN_PREFIX + "log", self._admin_log)
        app.router.add_post(ADMIN_PREFIX + "reset", self._admin_reset)
        app.router.add_post(ADMIN_PREFIX + "config", self._admin_config)
        self.add_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _body_size(resp: web.StreamResponse) -> int:
    body = getattr(resp, "body", None)
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    return resp.content_length or 0


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False)
