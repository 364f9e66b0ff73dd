"""An HTTP forward proxy that serves the simulated web of :class:`~nightly_pipeline_sandbox.world.World`.

Clients talk to it exactly as to a real forward proxy for plain http: ``httpx.Client(proxy=server.url)``
sends absolute-form requests (``GET http://acme-robotics.com.sg/about HTTP/1.1``) and the proxy answers
with the simulated site of that host. Nothing is ever forwarded upstream. A host the world does not know
gets a 502 with ``Proxy-Status: ...; error=dns_error`` (RFC 9209) and a "could not resolve host" page, as
a real proxy answers for a domain that does not exist.

Every simulated request passes the base server's seeded latency model and fault knobs; the request log
is kept per simulated host.
"""
from __future__ import annotations

import asyncio
import functools
import statistics
import struct
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from nightly_pipeline_sandbox import world_pages
from nightly_pipeline_sandbox.base import FaultConfig, LatencyModel, SandboxServer
from nightly_pipeline_sandbox.world import HARD_CASE_PATHS, REDIRECT_LOOP_PATHS, Site, World

HUGE_PAGE_BYTES = 30 * 1024 * 1024
GZIP_BOMB_INFLATED_BYTES = 1024 * 1024 * 1024
HANG_POLL_S = 0.2
HTML_UTF8 = "text/html; charset=utf-8"

_Override = Callable[[web.Request, Site], Awaitable[web.StreamResponse | None]]


class WebProxyServer(SandboxServer):
    """The simulated web behind one loopback port, reached as an HTTP forward proxy."""

    name = "web"

    def __init__(self, world: World, *, seed: int = 0, latency: LatencyModel | None = None,
                 faults: FaultConfig | None = None) -> None:
        super().__init__(seed=seed, latency=latency, faults=faults)
        self.world = world
        self._static_bodies: dict[tuple[str, str], bytes] = {}
        self._flaky_answered: set[tuple[str, str]] = set()
        self._latency_draws: list[float] = []
        self._hanging = 0
        self._stopping: asyncio.Event | None = None
        self._overrides: dict[str, _Override] = {
            "robots_404": self._robots_404, "robots_500": self._robots_500, "hang": self._hang,
            "flaky_503": self._flaky_503, "redirect_loop": self._redirect_loop,
            "redirect_offsite": self._redirect_offsite, "huge_page": self._huge_page,
            "gzip_bomb": self._gzip_bomb, "pdf_as_html": self._pdf_as_html,
            "key_page_offsite": self._key_page_offsite,
        }

    # -- SandboxServer hooks -------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    def request_host(self, request: web.Request) -> str:
        # For absolute-form requests aiohttp takes the host from the request line, i.e. the proxied target.
        host = request.host.lower()
        if host.count(":") == 1:
            host = host.split(":")[0]
        return host.rstrip(".")

    def log_path(self, request: web.Request) -> str:
        return request.path_qs

    def draw_latency(self) -> float:
        delay = super().draw_latency()
        with self._lock:
            self._latency_draws.append(delay)
        return delay

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._lock:
            by_host = Counter(record.host for record in self.request_log)
            draws = list(self._latency_draws)
            hanging = self._hanging
        stats["by_host"] = dict(sorted(by_host.items()))
        stats["latency"] = _latency_summary(draws)
        stats["hanging"] = hanging
        return stats

    def latency_samples(self) -> list[float]:
        """The delay drawn for each simulated request so far, in arrival order."""
        with self._lock:
            return list(self._latency_draws)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._flaky_answered.clear()
            self._latency_draws.clear()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._stopping = asyncio.Event()
        await super().start(host, port)

    async def stop(self) -> None:
        # Release hanging requests first, or the runner would wait for them until its shutdown timeout.
        if self._stopping is not None:
            self._stopping.set()
        await super().stop()

    # -- dispatch ------------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = self.request_host(request)
        site = self.world.site_at(host)
        if site is None:
            return _unresolvable(host)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        override = self._overrides.get(site.hard_case or "")
        if override is not None:
            response = await override(request, site)
            if response is not None:
                return response
        return self._serve(request, site)

    def _serve(self, request: web.Request, site: Site) -> web.Response:
        path = request.path
        if path == "/robots.txt":
            return web.Response(text=site.robots_txt, content_type="text/plain", charset="utf-8")
        page = site.page(path, request.query)
        if page is not None:
            return self._html_response(site, page, cacheable=path in site.pages)
        asset = site.asset(path)
        if asset is not None:
            return web.Response(body=asset.body, headers={"Content-Type": asset.content_type})
        response = self._html_response(site, world_pages.render_not_found(site, path), cacheable=False)
        response.set_status(404)
        return response

    def _html_response(self, site: Site, page: world_pages.Page, *, cacheable: bool) -> web.Response:
        body = self._static_bodies.get((site.domain, page.path)) if cacheable else None
        if body is None:
            body = _wire_bytes(site, page)
            if cacheable:
                self._static_bodies[(site.domain, page.path)] = body
        headers = CIMultiDict(site.tech.headers)
        # A cp1252 site that declares no charset is the point of that hard case.
        headers["Content-Type"] = "text/html" if site.encoding == "cp1252" else HTML_UTF8
        return web.Response(body=body, headers=headers)

    # -- hard cases ----------------------------------------------------------------------------------------
    async def _robots_404(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path != "/robots.txt":
            return None
        return web.Response(status=404, text="Not Found", content_type="text/plain")

    async def _robots_500(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path != "/robots.txt":
            return None
        return web.Response(status=500, text="Internal Server Error", content_type="text/plain")

    async def _hang(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path != HARD_CASE_PATHS["hang"]:
            return None
        with self._lock:
            self._hanging += 1
        try:
            # aiohttp does not cancel a handler when its client disconnects, so watch the transport.
            while not self._is_stopping() and request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(HANG_POLL_S)
        finally:
            with self._lock:
                self._hanging -= 1
        if self._is_stopping():
            return web.Response(status=503, text="Server shutting down", content_type="text/plain")
        return web.Response(status=499, reason="Client Closed Request")

    async def _flaky_503(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        key = (site.domain, request.path_qs)
        with self._lock:
            first_time = key not in self._flaky_answered
            self._flaky_answered.add(key)
        if not first_time:
            return None
        return web.Response(status=503, text="Service temporarily unavailable", content_type="text/plain",
                            headers={"Retry-After": "1"})

    async def _redirect_loop(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path not in REDIRECT_LOOP_PATHS:
            return None
        first, second = REDIRECT_LOOP_PATHS
        target = second if request.path == first else first
        return web.Response(status=302, headers={"Location": target})

    async def _redirect_offsite(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path != HARD_CASE_PATHS["redirect_offsite"] or site.redirect_target is None:
            return None
        return web.Response(status=301, headers={"Location": f"http://{site.redirect_target}/"})

    async def _key_page_offsite(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        path = HARD_CASE_PATHS["key_page_offsite"]
        if request.path != path or site.redirect_target is None:
            return None
        return web.Response(status=301, headers={"Location": f"http://{site.redirect_target}{path}"})

    async def _huge_page(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path != HARD_CASE_PATHS["huge_page"]:
            return None
        head, tail = _huge_page_frame(site)
        filler_total = HUGE_PAGE_BYTES - len(head) - len(tail)
        response = web.StreamResponse(headers={"Content-Type": HTML_UTF8})
        response.content_length = HUGE_PAGE_BYTES
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        try:
            await response.write(head)
            for chunk in _filler_chunks(filler_total):
                await response.write(chunk)
            await response.write(tail)
            await response.write_eof()
        except ConnectionError:
            pass   # the client stopped reading, which is what a size-capped crawler should do
        return response

    async def _gzip_bomb(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path != HARD_CASE_PATHS["gzip_bomb"]:
            return None
        body = await asyncio.to_thread(gzip_bomb)
        return web.Response(body=body, headers={"Content-Type": HTML_UTF8, "Content-Encoding": "gzip"})

    async def _pdf_as_html(self, request: web.Request, site: Site) -> web.StreamResponse | None:
        if request.path != HARD_CASE_PATHS["pdf_as_html"]:
            return None
        return web.Response(body=world_pages.brochure(site).body, headers={"Content-Type": "application/pdf"})

    def _is_stopping(self) -> bool:
        return self._stopping is None or self._stopping.is_set()


# -- helpers -----------------------------------------------------------------------------------------------
def _unresolvable(host: str) -> web.Response:
    body = ("<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
            f"<p>could not resolve host: {host}</p><p>The domain name does not exist (NXDOMAIN).</p>"
            "</body></html>")
    return web.Response(status=502, text=body, content_type="text/html",
                        headers={"Proxy-Status": f'sandbox-web; error=dns_error; rcode="NXDOMAIN"; details="{host}"'})


def _wire_bytes(site: Site, page: world_pages.Page) -> bytes:
    if site.js_only:
        return world_pages.js_shell(site).encode()
    return page.html.encode(site.encoding, errors="xmlcharrefreplace")


def _latency_summary(draws: list[float]) -> dict[str, float | int]:
    if not draws:
        return {"samples": 0, "median_s": 0.0, "p90_s": 0.0, "max_s": 0.0}
    ordered = sorted(draws)
    return {"samples": len(ordered), "median_s": round(statistics.median(ordered), 4),
            "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 4), "max_s": round(ordered[-1], 4)}


@functools.cache
def _filler_unit() -> bytes:
    return b"<p>Our catalogue continues with many more items, specifications and archived notices.</p>\n"


@functools.cache
def _filler_block() -> bytes:
    unit = _filler_unit()
    return unit * (64 * 1024 // len(unit))


def _filler_chunks(total: int):
    """``total`` bytes of whole paragraphs (padded with spaces), in shared blocks: no 30 MiB buffer per request."""
    block, unit = _filler_block(), _filler_unit()
    full_blocks, rest = divmod(total, len(block))
    for _ in range(full_blocks):
        yield block
    units, spaces = divmod(rest, len(unit))
    yield unit * units + b" " * spaces


def _huge_page_frame(site: Site) -> tuple[bytes, bytes]:
    about = site.pages["/about"].html.encode(site.encoding, errors="xmlcharrefreplace")
    split_at = about.index(b"</main>")
    return about[:split_at], about[split_at:]


@functools.cache
def gzip_bomb() -> bytes:
    """A valid gzip member of ~1 MiB that inflates to 1 GiB of spaces.

    After a full flush deflate restarts from an empty window, so compressing one MiB once and repeating
    the output 1,024 times is the same stream as compressing the whole GiB.
    """
    chunk = b" " * (1024 * 1024)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeats = GZIP_BOMB_INFLATED_BYTES // len(chunk)
    crc = 0
    for _ in range(repeats):
        crc = zlib.crc32(chunk, crc)
    final_block = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"   # deflate, no flags, mtime 0, max compression
    trailer = struct.pack("<II", crc, GZIP_BOMB_INFLATED_BYTES & 0xFFFFFFFF)
    return header + segment * repeats + final_block + trailer
