"""Test servers and fakes for the crawler's network tests.

Servers run on their own event loop in a daemon thread, so the crawler under test (driven by
``asyncio.run`` in the test) talks to them over real loopback sockets, and the timestamps the
servers log are independent of the client's scheduling.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpcore
from aiohttp import web

from nightly_pipeline_sandbox.harness import LoopThread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it on arrival (``at`` is ``time.monotonic()``)."""

    at: float
    host: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class VirtualHosts:
    """An aiohttp server that answers by (Host without port, path) from a routing table.

    Unknown routes answer 404. Every request is logged on arrival, before its handler runs.
    Also usable as a plain-HTTP forward proxy: absolute-form requests carry the target host.
    """

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    stopping: asyncio.Event | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def route(self, host: str, path: str, handler: Handler) -> None:
        self.routes[(host, path)] = handler

    def page(self, host: str, path: str, body: str | bytes = "", *, status: int = 200,
             content_type: str | None = "text/html; charset=utf-8",
             headers: dict[str, str] | None = None) -> None:
        payload = body.encode() if isinstance(body, str) else body

        async def handler(request: web.Request) -> web.StreamResponse:
            response_headers = dict(headers or {})
            if content_type is not None:
                response_headers["Content-Type"] = content_type
            return web.Response(body=payload, status=status, headers=response_headers)

        self.route(host, path, handler)

    def redirect(self, host: str, path: str, location: str, status: int = 302) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})

        self.route(host, path, handler)

    def hits_for(self, host: str, path: str | None = None) -> list[Hit]:
        return [hit for hit in self.hits if hit.host == host and (path is None or hit.path == path)]

    def port_url(self, host: str, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        host = request.url.host or ""
        self.hits.append(Hit(time.monotonic(), host, request.path, request.query_string, dict(request.headers)))
        handler = self.routes.get((host, request.path))
        if handler is None:
            return web.Response(status=404, text="not found")
        return await handler(request)

    async def start(self) -> None:
        self.stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class HangingPage:
    """A page that never answers; records when the client gave up and closed the connection."""

    server: VirtualHosts
    closed_at: list[float] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        assert self.server.stopping is not None
        while not self.server.stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                self.closed_at.append(time.monotonic())
                self.closed.set()
                break
            await asyncio.sleep(0.005)
        return web.Response(text="too late")


@dataclass
class RawHttpServer:
    """A raw TCP server that counts accepted connections and sends ``response`` verbatim.

    For answers aiohttp will not produce (no Content-Type at all) and for proving that a
    refused target saw no connection.
    """

    response: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(self.response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextmanager
def running(*servers: VirtualHosts | RawHttpServer) -> Iterator[LoopThread]:
    """Start ``servers`` on a background loop; stop them and the loop afterwards."""
    server_loop = LoopThread("crawl-test-servers")
    started: list[VirtualHosts | RawHttpServer] = []
    try:
        for server in servers:
            server_loop.run(server.start())
            started.append(server)
        yield server_loop
    finally:
        for server in started:
            server_loop.run(server.stop())
        server_loop.close()


class StaticResolver:
    """Fixed DNS answers; unknown names fail like NXDOMAIN. Records every lookup."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(self, host: str) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """The real network backend, recording every TCP connect (host, port) it is asked for."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        return await self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def html_page(*links: tuple[str, str], title: str = "Acme") -> str:
    anchors = "".join(f'<a href="{href}">{text}</a>' for href, text in links)
    return f"<!doctype html><html><head><title>{title}</title></head><body><nav>{anchors}</nav></body></html>"
