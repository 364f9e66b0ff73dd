"""The fetcher: size caps after decompression, redirects, content types, retries, timeouts."""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gzip
import random
import zlib
from collections.abc import Callable

import brotli
import pytest
from aiohttp import web

from nightly_pipeline.crawl import fetcher as fetcher_module
from nightly_pipeline.crawl.fetcher import (
    Fetcher,
    FetchResult,
    RetryPolicy,
    parse_retry_after,
)
from nightly_pipeline.crawl.fetcher_decoding import (
    DECODE_STEP,
    BodyDecoder,
    BrotliDecoder,
    UnsupportedEncoding,
    ZlibDecoder,
    make_decoder,
)
from nightly_pipeline.crawl.politeness import DomainScheduler
from nightly_pipeline.crawl.ssrf import AddressPolicy
from nightly_pipeline.crawl.transport import build_crawl_client
from nightly_pipeline_tests.kit.net import (
    HangingPage,
    RawHttpServer,
    StaticResolver,
    VirtualHosts,
    closed_port,
    running,
)

HOST = "acme.com.sg"
OTHER = "other.com.sg"
CAP = 5_000_000
AGENT = "NightlyPipelineBot/1.0 (test)"
CLOCK_EPSILON_S = 0.001
BOMB_SIZE = 64 * 1024 * 1024


@functools.cache
def gzip_bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    return b"".join([compressor.compress(zeros) for _ in range(BOMB_SIZE // len(zeros))] + [compressor.flush()])


@functools.cache
def brotli_bomb() -> bytes:
    compressor = brotli.Compressor(quality=5)
    zeros = bytes(1024 * 1024)
    return b"".join([compressor.process(zeros) for _ in range(BOMB_SIZE // len(zeros))] + [compressor.finish()])


def _site() -> VirtualHosts:
    site = VirtualHosts()
    for host in (HOST, OTHER):
        site.page(host, "/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    return site


def _fetch_all(urls: list[str], *, timeout_s: float = 5.0, min_interval_s: float = 0.0,
               retry: RetryPolicy = RetryPolicy(backoff_base_s=0.01), headers: dict[str, str] | None = None,
               max_bytes: int | None = None) -> list[FetchResult]:
    policy = AddressPolicy(allow_private_networks=True, allow_nonstandard_ports=True)

    async def scenario() -> list[FetchResult]:
        client = build_crawl_client(policy=policy, user_agent=AGENT, timeout_s=timeout_s, max_connections=8,
                                    resolver=StaticResolver({HOST: ["127.0.0.1"], OTHER: ["127.0.0.1"]}))
        async with client:
            fetcher = Fetcher(client, policy=policy, scheduler=DomainScheduler(min_interval_s), user_agent=AGENT,
                              timeout_s=timeout_s, max_body_bytes=CAP, retry=retry, rng=random.Random(7))
            return [await fetcher.fetch(url, headers=headers, max_bytes=max_bytes) for url in urls]

    return asyncio.run(scenario())


def _streamed(total: int, *, declare_length: bool) -> Callable[[web.Request], object]:
    chunk = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        if declare_length:
            response.content_length = total
        await response.prepare(request)
        sent = 0
        try:
            while sent < total:
                piece = chunk[: total - sent]
                await response.write(piece)
                sent += len(piece)
        except (ConnectionError, RuntimeError):
            return response
        await response.write_eof()
        return response

    return handler


@pytest.mark.parametrize("declare_length", [False, True])
def test_a_30_mb_page_stops_at_the_cap(declare_length: bool) -> None:
    site = _site()
    site.route(HOST, "/huge", _streamed(30_000_000, declare_length=declare_length))
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/huge")])
    assert result.ok
    assert result.truncated
    assert len(result.body) == CAP


def _compressed_page(body: bytes, encoding: str) -> Callable[[web.Request], object]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": "text/html", "Content-Encoding": encoding})

    return handler


@pytest.mark.parametrize(("encoding", "bomb"), [("gzip", gzip_bomb), ("br", brotli_bomb)])
def test_compression_bombs_stop_at_the_cap_without_inflating_further(
        encoding: str, bomb: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    decoders: list[BodyDecoder] = []

    def recording_make_decoder(content_encoding: str | None) -> BodyDecoder:
        decoders.append(make_decoder(content_encoding))
        return decoders[-1]

    monkeypatch.setattr(fetcher_module, "make_decoder", recording_make_decoder)
    site = _site()
    site.route(HOST, "/bomb", _compressed_page(bomb(), encoding))
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/bomb")])
    assert result.truncated
    assert len(result.body) == CAP
    body_decoder = decoders[-1]
    assert type(body_decoder) is type(make_decoder(encoding))
    assert CAP < body_decoder.decoded_bytes <= CAP + DECODE_STEP


@pytest.mark.parametrize("decoder_factory", [lambda: ZlibDecoder(gzip=True), BrotliDecoder])
def test_decoders_bound_the_output_of_a_single_huge_chunk(decoder_factory: Callable[[], BodyDecoder]) -> None:
    bomb = gzip_bomb() if isinstance(decoder_factory(), ZlibDecoder) else brotli_bomb()
    decoder = decoder_factory()
    output = decoder.decode(bomb, 1_000_001)
    assert 1_000_001 <= len(output) <= 1_000_001 + DECODE_STEP
    assert decoder.decoded_bytes == len(output)


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),
    ("br", brotli.compress),
    ("identity", lambda data: data),
    (None, lambda data: data),
])
def test_decoders_round_trip_in_small_chunks(encoding: str | None, encode: Callable[[bytes], bytes]) -> None:
    original = b"<html>" + "caf\u00e9 ".encode() * 5000 + b"</html>"
    encoded = encode(original)
    decoder = make_decoder(encoding)
    output = b"".join(decoder.decode(encoded[i:i + 100], 10_000_000) for i in range(0, len(encoded), 100))
    assert output == original


@pytest.mark.parametrize("encoding", ["zstd", "compress", "gzip, br"])
def test_unknown_or_stacked_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        make_decoder(encoding)


def test_redirect_loop_stops_after_five_redirects() -> None:
    site = _site()
    site.redirect(HOST, "/a", "/b")
    site.redirect(HOST, "/b", "/a")
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/a")])
    assert result.error_kind == "too_many_redirects"
    assert len(result.redirects) == 5
    assert result.attempts == 6
    assert len([hit for hit in site.hits if hit.path in ("/a", "/b")]) == 6


def test_redirect_chain_is_followed_and_reported() -> None:
    site = _site()
    site.redirect(HOST, "/old", "/newer", status=301)
    site.page(OTHER, "/final", "<html>final</html>")
    with running(site):
        site.redirect(HOST, "/newer", site.port_url(OTHER, "/final#section"), status=308)
        [result] = _fetch_all([site.port_url(HOST, "/old")])
    assert result.ok
    assert result.final_url == site.port_url(OTHER, "/final")
    assert result.redirects == [site.port_url(HOST, "/newer"), site.port_url(OTHER, "/final")]
    assert len(site.hits_for(OTHER, "/robots.txt")) == 1


def test_cross_origin_redirects_drop_credentials() -> None:
    site = _site()
    site.redirect(HOST, "/start", "/same-origin")
    site.page(OTHER, "/landing", "<html>landing</html>")
    with running(site):
        site.redirect(HOST, "/same-origin", site.port_url(OTHER, "/landing"))
        [result] = _fetch_all([site.port_url(HOST, "/start")],
                              headers={"Authorization": "Bearer secret", "Cookie": "session=1", "X-Trace": "t"})
    assert result.ok
    same_origin = site.hits_for(HOST, "/same-origin")[0].headers
    cross_origin = site.hits_for(OTHER, "/landing")[0].headers
    assert same_origin["Authorization"] == "Bearer secret" and same_origin["Cookie"] == "session=1"
    assert "Authorization" not in cross_origin and "Cookie" not in cross_origin
    assert cross_origin["X-Trace"] == "t"


def test_cookies_set_by_one_response_are_not_sent_later() -> None:
    site = _site()
    site.page(HOST, "/set", "<html>set</html>", headers={"Set-Cookie": "tracker=abc; Path=/"})
    site.page(HOST, "/next", "<html>next</html>")
    with running(site):
        results = _fetch_all([site.port_url(HOST, "/set"), site.port_url(HOST, "/next")])
    assert all(result.ok for result in results)
    assert "Cookie" not in site.hits_for(HOST, "/next")[0].headers
    assert site.hits_for(HOST, "/next")[0].headers["User-Agent"] == AGENT


def test_non_html_is_skipped_by_header_and_by_extension() -> None:
    site = _site()
    site.page(HOST, "/about", b"%PDF-1.7 binary", content_type="application/pdf")
    site.page(HOST, "/brochure.pdf", b"%PDF-1.7 binary", content_type="application/pdf")
    with running(site):
        pdf, by_extension = _fetch_all([site.port_url(HOST, "/about"), site.port_url(HOST, "/brochure.pdf")])
    assert pdf.error_kind == "not_html" and pdf.body == b"" and pdf.status == 200
    assert by_extension.error_kind == "binary_url" and by_extension.attempts == 0
    assert site.hits_for(HOST, "/brochure.pdf") == []


def _untyped(body: bytes) -> RawHttpServer:
    return RawHttpServer(response=b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_a_missing_content_type_is_sniffed() -> None:
    html, png = _untyped(b"<!DOCTYPE html><html><body>ok</body></html>"), _untyped(b"\x89PNG\r\n\x1a\n....")
    with running(html, png):
        untyped_html, untyped_png = _fetch_all([f"http://127.0.0.1:{html.port}/", f"http://127.0.0.1:{png.port}/"])
    assert untyped_html.ok and untyped_html.content_type is None
    assert untyped_html.body.startswith(b"<!DOCTYPE html>")
    assert untyped_png.error_kind == "not_html"


def _fails_then_succeeds(failures: list[tuple[int, dict[str, str]]]) -> Callable[[web.Request], object]:
    remaining = list(failures)

    async def handler(request: web.Request) -> web.StreamResponse:
        if remaining:
            status, headers = remaining.pop(0)
            return web.Response(status=status, headers=headers, text="busy")
        return web.Response(text="<html>finally</html>", content_type="text/html")

    return handler


def test_503_then_200_waits_for_retry_after() -> None:
    site = _site()
    site.route(HOST, "/busy", _fails_then_succeeds([(503, {"Retry-After": "1"})]))
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/busy")])
    assert result.ok and result.attempts == 2
    first, second = site.hits_for(HOST, "/busy")
    assert second.at - first.at >= 1.0 - CLOCK_EPSILON_S


def test_429_is_retried() -> None:
    site = _site()
    site.route(HOST, "/limited", _fails_then_succeeds([(429, {"Retry-After": "0"}), (429, {})]))
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/limited")])
    assert result.ok and result.attempts == 3
    assert len(site.hits_for(HOST, "/limited")) == 3


def test_at_most_three_attempts() -> None:
    site = _site()
    site.route(HOST, "/down", _fails_then_succeeds([(503, {})] * 10))
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/down")])
    assert result.error_kind == "http_status" and result.status == 503
    assert result.attempts == 3
    assert len(site.hits_for(HOST, "/down")) == 3


def test_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    site = _site()
    site.route(HOST, "/later", _fails_then_succeeds([(503, {"Retry-After": "3600"})]))
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/later")])
    assert result.status == 503 and result.attempts == 1
    assert "Retry-After 3600" in (result.error or "")


def test_client_errors_are_not_retried() -> None:
    site = _site()
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/missing")])
    assert result.status == 404 and result.error_kind == "http_status" and result.attempts == 1


def test_connect_errors_are_retried() -> None:
    port = closed_port()

    async def scenario() -> FetchResult:
        policy = AddressPolicy(allow_private_networks=True, allow_nonstandard_ports=True)
        client = build_crawl_client(policy=policy, user_agent=AGENT, timeout_s=2, max_connections=2)
        async with client:
            fetcher = Fetcher(client, policy=policy, scheduler=DomainScheduler(0.0), user_agent=AGENT,
                              retry=RetryPolicy(backoff_base_s=0.01))
            return await fetcher.fetch(f"http://127.0.0.1:{port}/", obey_robots=False)

    result = asyncio.run(scenario())
    assert result.error_kind == "connect" and result.attempts == 3


def test_a_hanging_page_times_out() -> None:
    site = _site()
    hanging = HangingPage(site)
    site.route(HOST, "/hang", hanging)
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/hang")], timeout_s=0.5)
        assert hanging.closed.wait(5)
    hung = site.hits_for(HOST, "/hang")
    assert result.error_kind == "timeout" and result.attempts == 1
    assert len(hung) == 1
    assert hanging.closed_at[0] - hung[0].at >= 0.5 - CLOCK_EPSILON_S


def test_full_jitter_backoff_and_retry_after_floor() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=8.0, max_retry_after_s=30.0)
    rng = random.Random(1)
    for failed_attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 8.0)):
        delays = [policy.delay_before_retry(failed_attempt, None, rng) for _ in range(500)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9
    assert all(policy.delay_before_retry(1, 5.0, rng) >= 5.0 for _ in range(100))
    assert policy.delay_before_retry(1, 31.0, rng) is None


def test_retry_after_parsing() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_explicit_byte_limit_applies() -> None:
    site = _site()
    site.page(HOST, "/page", "<html>" + "y" * 5000 + "</html>")
    with running(site):
        [result] = _fetch_all([site.port_url(HOST, "/page")], max_bytes=1000)
    assert result.truncated and len(result.body) == 1000
