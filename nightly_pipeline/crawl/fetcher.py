"""Fetching one page politely and safely: the unit of work of the crawler.

For every hop of a redirect chain (at most ``max_redirects``): the SSRF guard checks the URL,
media is skipped by extension, robots.txt of that origin is consulted, and the request waits
for its domain's turn in the :class:`~.politeness.DomainScheduler`. Connect errors, 429 and
5xx are retried with exponential backoff and full jitter, honouring ``Retry-After``; each
retry waits for the domain's turn again. Bodies are streamed and decoded with bounded
decoders, and cut at the byte cap *after* decompression.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import brotli
import httpx

from nightly_pipeline.crawl.fetcher_decoding import UnsupportedEncoding, make_decoder
from nightly_pipeline.crawl.pages import (
    is_html_content_type,
    is_probably_binary_url,
    sniff_html,
)
from nightly_pipeline.crawl.politeness import DomainScheduler, politeness_key
from nightly_pipeline.crawl.robots import (
    ROBOTS_MAX_BYTES,
    ROBOTS_MAX_REDIRECTS,
    RobotsCache,
)
from nightly_pipeline.crawl.ssrf import AddressPolicy, SSRFError
from nightly_pipeline.crawl.transport import ShardedClient, UnresolvableHost

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Credentials meant for one origin must not travel to another (Scrapy GHSA-4qqq-9vqf-3h3f).
CROSS_ORIGIN_DROPPED_HEADERS = frozenset({"authorization", "cookie"})
SNIFF_BYTES = 1024

ErrorKind = Literal[
    "ssrf",                  # refused by the SSRF guard (URL or resolved address)
    "robots",                # disallowed by robots.txt
    "binary_url",            # media or document by extension: not requested
    "not_html",              # answered with a non-HTML content type
    "too_many_redirects",
    "bad_redirect",          # a redirect without a usable Location
    "timeout",
    "dns",                   # the host does not resolve (here, or at the proxy)
    "connect",               # TCP/TLS connect failed
    "protocol",              # broken HTTP or content coding
    "unsupported_encoding",
    "http_status",           # final status >= 400
]
NETWORK_ERROR_KINDS: frozenset[str] = frozenset({"timeout", "connect", "protocol"})


@dataclass
class FetchResult:
    """The outcome of fetching one URL, redirects included.

    ``attempts`` counts every HTTP request sent for this URL (all hops and retries); a URL
    refused before any request has ``attempts == 0``.
    """

    url: str
    final_url: str
    status: int | None
    headers: dict[str, str]
    body: bytes
    content_type: str | None
    truncated: bool
    error: str | None
    elapsed_s: float
    attempts: int
    redirects: list[str]
    error_kind: ErrorKind | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary; the body itself is left out, its size kept."""
        return {
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "headers": dict(self.headers),
            "body_bytes": len(self.body),
            "content_type": self.content_type,
            "truncated": self.truncated,
            "error": self.error,
            "error_kind": self.error_kind,
            "elapsed_s": round(self.elapsed_s, 3),
            "attempts": self.attempts,
            "redirects": list(self.redirects),
        }


@dataclass
class RequestLedger:
    """Requests sent and body bytes kept, for everything fetched inside :func:`track_requests`.

    A context variable rather than a return value, because robots.txt fetches triggered by a
    redirect to another host happen deep inside :meth:`Fetcher.fetch` and belong to the same
    site's account.
    """

    requests: int = 0
    body_bytes: int = 0


_current_ledger: ContextVar[RequestLedger | None] = ContextVar("crawl_request_ledger", default=None)


@contextmanager
def track_requests() -> Iterator[RequestLedger]:
    ledger = RequestLedger()
    token = _current_ledger.set(ledger)
    try:
        yield ledger
    finally:
        _current_ledger.reset(token)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``Retry-After`` is a floor unless beyond the cap."""

    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 30.0

    def delay_before_retry(self, failed_attempt: int, retry_after_s: float | None,
                           rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt, or None when the server asks too much."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (failed_attempt - 1))
        jitter = rng.uniform(0.0, ceiling)
        if retry_after_s is None:
            return jitter
        if retry_after_s > self.max_retry_after_s:
            return None
        return max(retry_after_s, jitter)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds())


@dataclass
class _Hop:
    """One URL of a redirect chain after all its attempts."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str | None = None
    truncated: bool = False
    error_kind: ErrorKind | None = None
    error: str | None = None
    location: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    attempts: int = 0


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class Fetcher:
    """Fetches URLs through one shared client, one domain turn and one robots cache."""

    def __init__(
        self,
        client: httpx.AsyncClient | ShardedClient,
        *,
        policy: AddressPolicy,
        scheduler: DomainScheduler,
        user_agent: str,
        timeout_s: float = 15.0,
        max_body_bytes: int = 5_000_000,
        max_redirects: int = 5,
        max_crawl_delay_s: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._policy = policy
        self._scheduler = scheduler
        self._timeout_s = timeout_s
        self._max_body_bytes = max_body_bytes
        self._max_redirects = max_redirects
        self._retry = retry
        self._rng = rng or random.Random()
        self.robots = RobotsCache(self._fetch_robots_txt, user_agent=user_agent,
                                  max_crawl_delay_s=max_crawl_delay_s)

    async def aclose(self) -> None:
        """Stop background work (robots.txt fetches); the client is closed by its owner."""
        await self.robots.aclose()

    async def fetch(
        self,
        url: str,
        *,
        obey_robots: bool = True,
        html_only: bool = True,
        max_bytes: int | None = None,
        max_redirects: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FetchResult:
        """Fetch ``url`` following redirects by hand; never raises for network or HTTP trouble."""
        started = time.monotonic()
        cap = self._max_body_bytes if max_bytes is None else max_bytes
        redirect_limit = self._max_redirects if max_redirects is None else max_redirects
        request_headers = dict(headers or {})
        redirects: list[str] = []
        attempts = 0
        current = url
        while True:
            hop = await self._fetch_hop(current, request_headers, obey_robots=obey_robots,
                                        html_only=html_only, cap=cap)
            attempts += hop.attempts
            if hop.location is None:
                break
            next_url = self._redirect_target(current, hop.location)
            if next_url is None:
                hop.error_kind, hop.error = "bad_redirect", f"unusable Location {hop.location!r}"
                break
            if len(redirects) >= redirect_limit:
                hop.error_kind = "too_many_redirects"
                hop.error = f"stopped after {redirect_limit} redirects (next: {next_url})"
                break
            redirects.append(next_url)
            if _origin(httpx.URL(next_url)) != _origin(httpx.URL(current)):
                request_headers = {name: value for name, value in request_headers.items()
                                   if name.lower() not in CROSS_ORIGIN_DROPPED_HEADERS}
            current = next_url
        return FetchResult(
            url=url, final_url=current, status=hop.status, headers=hop.headers, body=hop.body,
            content_type=hop.content_type, truncated=hop.truncated, error=hop.error,
            elapsed_s=time.monotonic() - started, attempts=attempts, redirects=redirects,
            error_kind=hop.error_kind)

    async def _fetch_robots_txt(self, robots_url: str) -> FetchResult:
        return await self.fetch(robots_url, obey_robots=False, html_only=False,
                                max_bytes=ROBOTS_MAX_BYTES, max_redirects=ROBOTS_MAX_REDIRECTS)

    @staticmethod
    def _redirect_target(current: str, location: str) -> str | None:
        try:
            return str(httpx.URL(current).join(location.strip()).copy_with(fragment=None))
        except (httpx.InvalidURL, UnicodeError, ValueError):
            return None

    async def _fetch_hop(self, url: str, headers: dict[str, str], *, obey_robots: bool,
                         html_only: bool, cap: int) -> _Hop:
        try:
            target = self._policy.check_url(url)
        except SSRFError as exc:
            return _Hop(error_kind="ssrf", error=str(exc))
        if html_only and is_probably_binary_url(url):
            return _Hop(error_kind="binary_url", error="not requested: media or document by extension")
        crawl_delay_s = None
        if obey_robots:
            robots = await self.robots.get(url)
            if robots.error_kind == "ssrf":
                return _Hop(error_kind="ssrf", error=f"refused {url}: {robots.reason}")
            if not robots.can_fetch(url):
                return _Hop(error_kind="robots", error=f"disallowed by robots.txt ({robots.reason})")
            crawl_delay_s = robots.crawl_delay_s
        return await self._with_retries(url, politeness_key(target.host), headers, crawl_delay_s,
                                        html_only=html_only, cap=cap)

    async def _with_retries(self, url: str, domain_key: str, headers: dict[str, str],
                            crawl_delay_s: float | None, *, html_only: bool, cap: int) -> _Hop:
        attempt = 0
        while True:
            attempt += 1
            hop = await self._attempt(url, domain_key, headers, crawl_delay_s, html_only=html_only, cap=cap)
            # A connect-time SSRF refusal sent nothing and is never retried.
            hop.attempts = attempt if hop.error_kind != "ssrf" else attempt - 1
            if not hop.retryable or attempt >= self._retry.max_attempts:
                return hop
            delay = self._retry.delay_before_retry(attempt, hop.retry_after_s, self._rng)
            if delay is None:
                hop.error = f"{hop.error}; Retry-After {hop.retry_after_s:.0f} s is beyond the cap"
                return hop
            logger.debug("retrying %s in %.2f s after %s", url, delay, hop.error)
            await asyncio.sleep(delay)

    async def _attempt(self, url: str, domain_key: str, headers: dict[str, str],
                       crawl_delay_s: float | None, *, html_only: bool, cap: int) -> _Hop:
        async with self._scheduler.slot(domain_key, crawl_delay_s=crawl_delay_s):
            hop = await self._send(url, headers, html_only=html_only, cap=cap)
        ledger = _current_ledger.get()
        if ledger is not None and hop.error_kind != "ssrf":
            ledger.requests += 1
            ledger.body_bytes += len(hop.body)
        return hop

    async def _send(self, url: str, headers: dict[str, str], *, html_only: bool, cap: int) -> _Hop:
        request = self._client.build_request("GET", url, headers=headers)
        try:
            # httpx timeouts bound each read; this bounds the whole exchange, so a server
            # dripping one byte at a time cannot hold the domain's turn for ever.
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.send(request, stream=True)
                try:
                    return await self._read_response(response, html_only=html_only, cap=cap)
                finally:
                    await response.aclose()
        except SSRFError as exc:
            return _Hop(error_kind="ssrf", error=f"refused {url}: {exc.reason}")
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return _Hop(error_kind="timeout", error=f"connect timed out: {exc}", retryable=True)
        except (TimeoutError, httpx.TimeoutException):
            # A server that accepted and then stalls is not retried: it would cost the
            # whole timeout again, and stalls rarely clear within seconds.
            return _Hop(error_kind="timeout", error=f"no complete answer within {self._timeout_s:g} s")
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, UnresolvableHost):
                # A name that does not resolve will not resolve in a second either.
                return _Hop(error_kind="dns", error=str(exc))
            return _Hop(error_kind="connect", error=f"connect failed: {exc}", retryable=True)
        except httpx.ProxyError as exc:
            # The proxy could not reach the target (CONNECT refused, unknown host).
            return _Hop(error_kind="connect", error=f"proxy refused: {exc}")
        except httpx.RemoteProtocolError as exc:
            return _Hop(error_kind="protocol", error=f"connection dropped: {exc}", retryable=True)
        except UnsupportedEncoding as exc:
            return _Hop(error_kind="unsupported_encoding", error=str(exc))
        except (httpx.HTTPError, zlib.error, brotli.error) as exc:
            return _Hop(error_kind="protocol", error=f"{type(exc).__name__}: {exc}")

    async def _read_response(self, response: httpx.Response, *, html_only: bool, cap: int) -> _Hop:
        status = response.status_code
        headers = dict(response.headers)
        content_type = response.headers.get("content-type") or None
        if status in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                return _Hop(status, headers, content_type=content_type, error_kind="bad_redirect",
                            error=f"HTTP {status} without Location")
            return _Hop(status, headers, content_type=content_type, location=location)
        if status == 502 and "dns_error" in response.headers.get("proxy-status", ""):
            # RFC 9209: the proxy could not resolve the name; retrying cannot help.
            return _Hop(status, headers, content_type=content_type, error_kind="dns",
                        error="the proxy could not resolve the host")
        if status >= 400:
            return _Hop(status, headers, content_type=content_type, error_kind="http_status",
                        error=f"HTTP {status}", retryable=status in RETRY_STATUSES,
                        retry_after_s=parse_retry_after(response.headers.get("retry-after")))
        if html_only and content_type and not is_html_content_type(content_type):
            return _Hop(status, headers, content_type=content_type, error_kind="not_html",
                        error=f"content type {content_type!r} is not HTML")
        body, truncated = await self._read_capped(response, cap)
        if html_only and not content_type and not sniff_html(body[:SNIFF_BYTES]):
            return _Hop(status, headers, content_type=content_type, error_kind="not_html",
                        error="no content type and the body does not look like HTML")
        return _Hop(status, headers, body, content_type, truncated)

    @staticmethod
    async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
        """Stream and decode the body, stopping one byte past ``cap`` decoded bytes.

        The decoded count is authoritative: a Content-Length is the *encoded* size when a
        Content-Encoding applies, and without one the count stops at the same byte.
        """
        decoder = make_decoder(response.headers.get("content-encoding"))
        chunks: list[bytes] = []
        size = 0
        async for raw in response.aiter_raw():
            piece = decoder.decode(raw, cap - size + 1)
            if size + len(piece) > cap:
                chunks.append(piece[:cap - size])
                return b"".join(chunks), True
            chunks.append(piece)
            size += len(piece)
        return b"".join(chunks), False
