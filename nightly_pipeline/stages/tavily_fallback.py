"""The Tavily fallback: a company site's content when our own crawl is blocked or thin, and web search.

Every Tavily call takes the paid-call path (``vendors.paid_call``): one query of the tenant run's
``TAVILY_MAX_QUERIES`` reserved first (an atomic reservation, so concurrent workers never overspend)
and settled afterwards as ``vendors.tavily`` bills it. The credits Tavily reports go into the
ledger's status line and the result.

Tavily's crawler runs on Tavily's side, so what it returns is validated before anyone uses it:
only http(s) pages of the requested site are kept (platform-notes §4.6). Vendor failures never
raise: they come back as empty content with a short reason that never contains the key.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from tavily import TavilyClient

from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors import tavily as tavily_vendor
from nightly_pipeline.vendors.paid_call import unavailable_reason
from nightly_pipeline.vendors.tavily import NullTavilyClient

logger = logging.getLogger(__name__)

SEARCH_TIMEOUT_S = 30.0
EXTRACT_TIMEOUT_S = 30.0
CRAWL_TIMEOUT_S = 60.0
DEFAULT_MAX_CONCURRENT_CALLS = 4
# The extraction corpus is capped far below this; the cap only stops one runaway page from
# holding megabytes in memory for the rest of the run.
MAX_PAGE_CHARS = 50_000
_FAILURE_DETAIL_CHARS = 160

Endpoint = Literal["/search", "/extract", "/crawl"]
Scheme = Literal["https", "http"]


@dataclasses.dataclass(frozen=True)
class SearchHit:
    url: str
    domain: str
    title: str
    content: str
    score: float


@dataclasses.dataclass(frozen=True)
class FallbackContent:
    """What Tavily could read of one site: ``pages`` as ``(url, markdown text)``, home page first."""

    domain: str
    pages: tuple[tuple[str, str], ...] = ()
    credits: int = 0
    calls: int = 0
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class _CallOutcome:
    """One metered Tavily call: its response, or why there is none."""

    response: Mapping[str, Any] | None
    credits: int
    sent: bool
    problem: str | None
    account_refused: bool = False


def _web_url(value: Any) -> tuple[str, str] | None:
    """``(url, registrable domain)`` for an http(s) URL, or None for anything else."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    domain = registrable_domain(parts.hostname)
    return (url, domain) if domain else None


def _site_pages(response: Mapping[str, Any] | None, domain: str, limit: int) -> list[tuple[str, str]]:
    """The response's pages that belong to ``domain``, deduplicated, with text, at most ``limit``."""
    results = response.get("results") if response is not None else None
    pages: dict[str, str] = {}
    for item in results if isinstance(results, list) else []:
        if not isinstance(item, Mapping):
            continue
        located = _web_url(item.get("url"))
        text = item.get("raw_content")
        if located is None or located[1] != domain or not isinstance(text, str) or not text.strip():
            continue
        pages.setdefault(located[0], text.strip()[:MAX_PAGE_CHARS])
        if len(pages) >= limit:
            break
    return list(pages.items())


def _host(domain: str) -> str:
    """The host of a bare domain or a URL: ``https://www.Acme.sg/x`` → ``www.acme.sg``."""
    value = domain.strip()
    return (urlsplit(value if "://" in value else f"//{value}").hostname or value).rstrip(".")


def _first_failure(response: Mapping[str, Any] | None) -> str | None:
    """Tavily's reason for the first URL it could not read, from ``failed_results``."""
    if response is None:
        return None
    failed = response.get("failed_results")
    if not isinstance(failed, list) or not failed or not isinstance(failed[0], Mapping):
        return None
    error = failed[0].get("error")
    return str(error)[:_FAILURE_DETAIL_CHARS] if error else None


def _search_hits(response: Mapping[str, Any]) -> list[SearchHit]:
    results = response.get("results")
    hits = []
    for item in results if isinstance(results, list) else []:
        if not isinstance(item, Mapping):
            continue
        located = _web_url(item.get("url"))
        if located is None:
            continue
        score = item.get("score")
        hits.append(SearchHit(url=located[0], domain=located[1], title=str(item.get("title") or ""),
                              content=str(item.get("content") or ""),
                              score=float(score) if isinstance(score, (int, float)) else 0.0))
    return hits


# The Tavily calls of the current task (one company's enrichment) that failed for a passing reason
# (429, 5xx, timeout) even after their retries: the company is then worth another try by a re-run.
_TRANSIENT_FAILURES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "tavily_transient_failures", default=None)


@contextlib.contextmanager
def transient_failures() -> Iterator[list[str]]:
    """Collect the passing Tavily failures of the calls made inside the block, in this task."""
    found: list[str] = []
    token = _TRANSIENT_FAILURES.set(found)
    try:
        yield found
    finally:
        _TRANSIENT_FAILURES.reset(token)


def current_transient_failures() -> list[str] | None:
    """The list the innermost ``transient_failures`` block collects into, if any."""
    return _TRANSIENT_FAILURES.get()


class TavilyFallback:
    """Budgeted Tavily calls for one tenant run; a :class:`NullTavilyClient` means no calls at all.

    The synchronous ``TavilyClient`` runs in worker threads; at most ``max_concurrent_calls`` calls
    are in flight. The client belongs to the run's resource, which closes it.
    """

    def __init__(self, client: TavilyClient | NullTavilyClient, night: TenantNight, *,
                 max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS) -> None:
        if max_concurrent_calls < 1:
            raise ValueError(f"max_concurrent_calls must be >= 1, got {max_concurrent_calls}")
        self._client = client
        self._meter = night.meter("tavily")
        self._gate = asyncio.Semaphore(max_concurrent_calls)
        self._limiter = (night.fleet_limiter("tavily", tavily_vendor.fingerprint(client))
                         if isinstance(client, TavilyClient) else None)

    @property
    def available(self) -> bool:
        return unavailable_reason(self._client) is None

    async def search(self, query: str, max_results: int = 5) -> list[SearchHit]:
        """Web search hits with valid http(s) URLs, best first; empty when Tavily cannot be asked."""
        client = self._client
        if isinstance(client, NullTavilyClient):
            return []
        outcome = await self._metered("/search", lambda: client.search(
            query, search_depth="basic", max_results=max_results, include_usage=True, timeout=SEARCH_TIMEOUT_S))
        if outcome.response is None:
            logger.info("Tavily search for %r skipped or failed: %s", query, outcome.problem)
            return []
        return _search_hits(outcome.response)

    async def site_content(self, domain: str, *, limit: int = 6, scheme: Scheme = "https") -> FallbackContent:
        """Up to ``limit`` pages of ``domain``: a one-level Tavily crawl, else an extract of the home page."""
        if scheme not in ("https", "http"):
            raise ValueError(f"scheme must be https or http, got {scheme!r}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        site = registrable_domain(domain)
        if site is None:
            return FallbackContent(domain=domain, reason=f"{domain!r} is not a web domain")
        client = self._client
        if isinstance(client, NullTavilyClient):
            return FallbackContent(domain=site, reason=client.reason)
        home = f"{scheme}://{_host(domain)}/"
        crawl = await self._metered("/crawl", lambda: client.crawl(
            home, max_depth=1, limit=limit, extract_depth="basic", format="markdown", include_usage=True,
            timeout=CRAWL_TIMEOUT_S))
        pages = _site_pages(crawl.response, site, limit)
        if pages:
            return FallbackContent(site, tuple(pages), crawl.credits, int(crawl.sent),
                                   f"Tavily crawl of {home}: {len(pages)} pages")
        crawl_reason = f"Tavily crawl of {home}: {crawl.problem or 'no pages of the site'}"
        if not crawl.sent or crawl.account_refused:
            return FallbackContent(site, (), crawl.credits, int(crawl.sent), crawl_reason)
        extract = await self._metered("/extract", lambda: client.extract(
            [home], extract_depth="basic", format="markdown", include_usage=True, timeout=EXTRACT_TIMEOUT_S))
        pages = _site_pages(extract.response, site, 1)
        calls, credits = int(crawl.sent) + int(extract.sent), crawl.credits + extract.credits
        outcome = "1 page" if pages else (extract.problem or _first_failure(extract.response) or "no content")
        return FallbackContent(site, tuple(pages), credits, calls,
                               f"{crawl_reason}; Tavily extract of the home page: {outcome}")

    async def _metered(self, endpoint: Endpoint, call: Callable[[], Any]) -> _CallOutcome:
        """One query through the paid-call path, ``call`` made in a worker thread."""
        async def send(_: int) -> Any:
            limiter = self._limiter
            if limiter is None:
                return tavily_vendor.answer(await asyncio.to_thread(call))
            if not isinstance(self._client, tavily_vendor.RetryingTavilyClient):
                # A client that makes one attempt a call takes the turn here.
                await limiter.acquire(tavily_vendor.REQUESTS_BUCKET)
                return tavily_vendor.answer(await asyncio.to_thread(call))
            loop = asyncio.get_running_loop()

            def wait_turn() -> None:
                asyncio.run_coroutine_threadsafe(limiter.acquire(tavily_vendor.REQUESTS_BUCKET), loop).result()

            token = tavily_vendor.before_each_attempt.set(wait_turn)
            try:
                return tavily_vendor.answer(await asyncio.to_thread(call))
            finally:
                tavily_vendor.before_each_attempt.reset(token)

        async with self._gate:
            paid = await self._meter.call(endpoint, 1, send, billed_for_error=tavily_vendor.billed_for_error,
                                          errors=tavily_vendor.VENDOR_ERRORS)
        if paid.exhausted is not None:
            return _CallOutcome(None, 0, False, f"Tavily query budget exhausted "
                                                f"({paid.exhausted.remaining} of {paid.exhausted.cap} left)")
        if paid.error is not None:
            reason = tavily_vendor.describe_failure(paid.error)
            logger.warning("Tavily %s failed: %s", endpoint, reason)
            collected = _TRANSIENT_FAILURES.get()
            if collected is not None and tavily_vendor.is_transient(paid.error):
                collected.append(f"Tavily {endpoint}: {reason}")
            return _CallOutcome(None, 0, True, reason,
                                account_refused=isinstance(paid.error, tavily_vendor.ACCOUNT_ERRORS))
        response = paid.value
        return _CallOutcome(response, tavily_vendor.credits_of(response), True, None)
