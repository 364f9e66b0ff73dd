"""Crawling company websites: robots.txt, the home page and a few key pages per site.

:class:`SiteCrawler` owns the crawl's shared state (one HTTP client, the domain scheduler and
the robots cache) and crawls many sites at once, each within its own time and byte budget.

A page that a redirect took to another registrable domain is another site's content, not the
company's: it is dropped (and the reason kept in :attr:`SiteCrawl.dropped_pages`). A home page
that leaves the site ends the crawl as ``redirected_offsite``.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import time
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

from nightly_pipeline.crawl.fetcher import (
    NETWORK_ERROR_KINDS,
    Fetcher,
    FetchResult,
    RequestLedger,
    RetryPolicy,
    track_requests,
)
from nightly_pipeline.crawl.pages import registrable_domain, select_key_pages
from nightly_pipeline.crawl.politeness import DomainGate, DomainScheduler
from nightly_pipeline.crawl.robots import RobotsInfo
from nightly_pipeline.crawl.signals import decode_html
from nightly_pipeline.crawl.ssrf import AddressPolicy, SSRFError
from nightly_pipeline.crawl.transport import (
    Resolver,
    ShardedClient,
    build_sharded_crawl_client,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

Outcome = Literal["ok", "blocked_robots", "unreachable", "not_html", "redirected_offsite", "error"]
Coverage = Literal["full", "partial"]

DEFAULT_USER_AGENT = "NightlyPipelineBot/1.0 (company website enrichment; obeys robots.txt)"
_SCHEMES = ("https", "http")


@dataclass(frozen=True)
class CrawlerConfig:
    user_agent: str = DEFAULT_USER_AGENT
    timeout_s: float = 15.0
    min_interval_s: float = 0.5
    max_crawl_delay_s: float = 10.0
    max_pages: int = 6
    max_body_bytes: int = 5_000_000
    max_redirects: int = 5
    domain_time_budget_s: float = 120.0
    domain_byte_budget: int = 15_000_000
    concurrency: int = 64
    proxy: str | None = None
    schemes: tuple[str, ...] = _SCHEMES
    allow_private_networks: bool = False
    max_attempts: int = 3
    allow_nonstandard_ports: bool = False
    allowed_endpoints: frozenset[str] = frozenset()
    backoff_base_s: float = 0.5
    max_retry_after_s: float = 30.0

    def __post_init__(self) -> None:
        unknown = [scheme for scheme in self.schemes if scheme not in _SCHEMES]
        if unknown or not self.schemes:
            raise ValueError(f"schemes must be a non-empty sequence of https/http, got {self.schemes!r}")

    def address_policy(self) -> AddressPolicy:
        return AddressPolicy(allow_private_networks=self.allow_private_networks,
                             allow_nonstandard_ports=self.allow_nonstandard_ports,
                             extra_allowed=self.allowed_endpoints)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
                           max_retry_after_s=self.max_retry_after_s)


@dataclass
class SiteCrawl:
    """Everything fetched from one company website, and why the crawl ended as it did."""

    domain: str
    base_url: str | None
    outcome: Outcome
    reason: str
    pages: list[FetchResult]
    robots: RobotsInfo | None
    requests_made: int
    bytes_downloaded: int
    started_at: dt.datetime
    finished_at: dt.datetime
    coverage: Coverage = "full"
    skipped_pages: list[str] = field(default_factory=list)
    dropped_pages: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary without page bodies."""
        return {
            "domain": self.domain,
            "base_url": self.base_url,
            "outcome": self.outcome,
            "reason": self.reason,
            "coverage": self.coverage,
            "pages": [page.to_dict() for page in self.pages],
            "skipped_pages": list(self.skipped_pages),
            "dropped_pages": [dict(dropped) for dropped in self.dropped_pages],
            "robots": None if self.robots is None else self.robots.to_dict(),
            "requests_made": self.requests_made,
            "bytes_downloaded": self.bytes_downloaded,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
        }


@dataclass
class _Opening:
    """How a site's first requests went: robots.txt and the home page on some scheme."""

    base_url: str | None
    robots: RobotsInfo | None
    home: FetchResult | None
    outcome: Outcome
    reason: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class _BudgetExhausted(Exception):
    """The site's time budget ran out."""


class SiteCrawler:
    """Crawls company websites with one shared client; use as ``async with``."""

    def __init__(self, config: CrawlerConfig | None = None, resolver: Resolver | None = None, *,
                 verify: ssl.SSLContext | bool = True, gate: DomainGate | None = None) -> None:
        """``gate`` spaces requests per domain for every crawler that shares it (the pipeline passes
        the PostgreSQL gate); without one, only this crawler's own requests are spaced."""
        self.config = config or CrawlerConfig()
        self._policy = self.config.address_policy()
        self._resolver = resolver
        self._verify = verify
        self._gate = gate
        self._client: ShardedClient | None = None
        self._scheduler: DomainScheduler | None = None
        self._fetcher: Fetcher | None = None

    async def __aenter__(self) -> SiteCrawler:
        config = self.config
        self._client = build_sharded_crawl_client(
            concurrency=config.concurrency, policy=self._policy, user_agent=config.user_agent,
            timeout_s=config.timeout_s, proxy=config.proxy, resolver=self._resolver, verify=self._verify)
        self._scheduler = DomainScheduler(config.min_interval_s, max_interval_s=config.max_crawl_delay_s,
                                          max_in_flight=config.concurrency, gate=self._gate,
                                          request_s=config.timeout_s)
        self._fetcher = Fetcher(
            self._client, policy=self._policy, scheduler=self._scheduler, user_agent=config.user_agent,
            timeout_s=config.timeout_s, max_body_bytes=config.max_body_bytes,
            max_redirects=config.max_redirects, max_crawl_delay_s=config.max_crawl_delay_s,
            retry=config.retry_policy())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
        if self._scheduler is not None:
            await self._scheduler.aclose()
        if self._client is not None:
            await self._client.aclose()
        self._client = None
        self._scheduler = None
        self._fetcher = None

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            raise RuntimeError("SiteCrawler is used outside 'async with'")
        return self._fetcher

    def _candidate_urls(self, domain: str) -> list[str]:
        """Home page URLs to try: the given URL as is, or each configured scheme for a domain."""
        value = domain.strip()
        if "://" in value:
            return [value]
        host = value.strip("/").rstrip(".")
        return [f"{scheme}://{host}/" for scheme in self.config.schemes]

    async def _open_site(self, domain: str, deadline: float) -> _Opening:
        """robots.txt then the home page, falling back to the next scheme on network failure."""
        last_failure = "no scheme to try"
        for base_url in self._candidate_urls(domain):
            try:
                self._policy.check_url(base_url)
            except SSRFError as exc:
                return _Opening(base_url, None, None, "error", str(exc))
            robots = await _before(deadline, self.fetcher.robots.get(base_url))
            if robots.network_failure:
                if robots.error_kind == "ssrf":
                    return _Opening(base_url, robots, None, "error", robots.reason)
                last_failure = f"{base_url}: {robots.reason}"
                continue
            if robots.outcome == "unreachable":
                return _Opening(base_url, robots, None, "unreachable",
                                f"{robots.reason} (RFC 9309: the site counts as unreachable)")
            if not robots.can_fetch(base_url):
                return _Opening(base_url, robots, None, "blocked_robots", "robots.txt disallows the home page")
            home = await _before(deadline, self.fetcher.fetch(base_url))
            if home.error_kind in NETWORK_ERROR_KINDS:
                last_failure = f"{base_url}: {home.error}"
                continue
            outcome, reason = _home_outcome(home)
            return _Opening(base_url, robots, home, outcome, reason)
        return _Opening(None, None, None, "unreachable", last_failure)

    async def crawl_site(self, domain: str, *, max_pages: int | None = None) -> SiteCrawl:
        """Crawl one site: robots.txt, home page, then up to ``max_pages`` key pages."""
        page_limit = self.config.max_pages if max_pages is None else max_pages
        started_at = _now()
        deadline = time.monotonic() + self.config.domain_time_budget_s
        with track_requests() as ledger:
            try:
                opening = await self._open_site(domain, deadline)
            except _BudgetExhausted:
                opening = _Opening(None, None, None, "unreachable",
                                   f"time budget of {self.config.domain_time_budget_s:g} s ran out "
                                   "before the home page answered")
            site = registrable_domain(opening.base_url or domain)
            dropped: list[dict[str, str]] = []
            if opening.home is not None and (offsite := _offsite_drop(opening.home, site)) is not None:
                dropped.append(offsite)
                opening = _Opening(opening.base_url, opening.robots, None, "redirected_offsite",
                                   offsite["reason"])
            pages = [] if opening.home is None else [opening.home]
            coverage: Coverage = "full"
            skipped: list[str] = []
            if opening.outcome == "ok" and opening.home is not None:
                key_pages, coverage, skipped = await self._fetch_key_pages(opening.home, page_limit,
                                                                           deadline, ledger)
                for page in key_pages:
                    offsite = _offsite_drop(page, site)
                    if offsite is None:
                        pages.append(page)
                    else:
                        dropped.append(offsite)
        return SiteCrawl(
            domain=domain, base_url=opening.base_url, outcome=opening.outcome, reason=opening.reason,
            pages=pages, robots=opening.robots, requests_made=ledger.requests,
            bytes_downloaded=ledger.body_bytes, started_at=started_at, finished_at=_now(),
            coverage=coverage, skipped_pages=skipped, dropped_pages=dropped)

    async def _fetch_key_pages(self, home: FetchResult, page_limit: int, deadline: float,
                               ledger: RequestLedger) -> tuple[list[FetchResult], Coverage, list[str]]:
        """Fetch the home page's key pages until done or a site budget runs out."""
        html = decode_html(home.body, home.content_type)
        key_pages = [url for url in select_key_pages(home.final_url, html, page_limit)
                     if url != home.final_url]
        fetched: list[FetchResult] = []
        for index, url in enumerate(key_pages):
            remaining_bytes = self.config.domain_byte_budget - ledger.body_bytes
            if remaining_bytes <= 0 or time.monotonic() >= deadline:
                return fetched, "partial", key_pages[index:]
            try:
                page = await _before(deadline, self.fetcher.fetch(
                    url, max_bytes=min(self.config.max_body_bytes, remaining_bytes)))
            except _BudgetExhausted:
                return fetched, "partial", key_pages[index:]
            fetched.append(page)
        return fetched, "full", []

    async def fetch_home_page(self, domain: str) -> FetchResult | None:
        """The home page of ``domain`` for website discovery, or None when nothing answers.

        Obeys robots.txt like a crawl; a site whose robots.txt blocks the home page still
        answered, so its (refused) result is returned rather than None.
        """
        deadline = time.monotonic() + self.config.domain_time_budget_s
        try:
            opening = await self._open_site(domain, deadline)
        except _BudgetExhausted:
            return None
        if opening.home is not None:
            return opening.home
        if opening.outcome == "blocked_robots" and opening.base_url is not None:
            return FetchResult(url=opening.base_url, final_url=opening.base_url, status=None, headers={},
                               body=b"", content_type=None, truncated=False, error=opening.reason,
                               elapsed_s=0.0, attempts=0, redirects=[], error_kind="robots")
        return None

    async def crawl_many(self, domains: Iterable[str], *,
                         max_pages: int | None = None) -> AsyncIterator[SiteCrawl]:
        """Crawl ``domains`` with at most ``config.concurrency`` sites in flight.

        Results are yielded as sites finish. A site whose crawl fails unexpectedly yields an
        ``error`` outcome instead of ending the whole crawl.
        """
        pending = iter(domains)
        finished: asyncio.Queue[SiteCrawl | None] = asyncio.Queue()

        async def worker() -> None:
            try:
                for domain in pending:
                    finished.put_nowait(await self._crawl_site_safely(domain, max_pages))
            finally:
                finished.put_nowait(None)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, self.config.concurrency))]
        try:
            running = len(workers)
            while running:
                item = await finished.get()
                if item is None:
                    running -= 1
                else:
                    yield item
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _crawl_site_safely(self, domain: str, max_pages: int | None) -> SiteCrawl:
        started_at = _now()
        try:
            return await self.crawl_site(domain, max_pages=max_pages)
        except Exception as exc:
            logger.exception("crawl of %s failed unexpectedly", domain)
            return SiteCrawl(domain=domain, base_url=None, outcome="error",
                             reason=f"unexpected {type(exc).__name__}: {exc}", pages=[], robots=None,
                             requests_made=0, bytes_downloaded=0, started_at=started_at,
                             finished_at=_now())


async def _before(deadline: float, operation: Coroutine[Any, Any, T]) -> T:
    """Run ``operation`` unless the monotonic ``deadline`` passes first."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        operation.close()
        raise _BudgetExhausted
    try:
        async with asyncio.timeout(remaining):
            return await operation
    except TimeoutError as exc:
        raise _BudgetExhausted from exc


def _offsite_drop(page: FetchResult, site: str | None) -> dict[str, str] | None:
    """Why ``page`` is not the site's own content (a redirect left the site), or None when it is."""
    landed = registrable_domain(page.final_url)
    if site is None or landed is None or landed == site:
        return None
    return {"url": page.url, "final_url": page.final_url,
            "reason": f"redirected to {landed}, another registrable domain than {site}: not this company's content"}


def _home_outcome(home: FetchResult) -> tuple[Outcome, str]:
    if home.error is None:
        return "ok", f"home page answered HTTP {home.status}"
    kind = home.error_kind
    if kind == "robots":
        return "blocked_robots", f"home page redirect blocked: {home.error}"
    if kind == "not_html":
        return "not_html", f"home page is not HTML: {home.error}"
    if kind == "http_status" and home.status is not None and (home.status >= 500 or home.status == 429):
        return "unreachable", f"home page answered HTTP {home.status} after {home.attempts} attempts"
    return "error", f"home page failed: {home.error}"
