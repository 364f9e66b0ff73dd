"""The crawl stage for one company, and for a night's targets at once.

For each target: find its website if the registry has none, crawl it politely, read the signals,
fall back to Tavily when the crawl is blocked or thin, and extract a profile. Every company runs
in its own task; per-domain politeness and the vendor budgets, not this loop, set the pace.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from nightly_pipeline.crawl.crawler import CrawlerConfig, SiteCrawl, SiteCrawler
from nightly_pipeline.crawl.signals import PageSignals, SiteSignals, decode_html, merge_site_signals, page_signals
from nightly_pipeline.db.politeness import PostgresDomainGate
from nightly_pipeline.enrich.discovery import DiscoveredWebsite, WebsiteDiscovery
from nightly_pipeline.enrich.extraction import ExtractionResult, Extractor
from nightly_pipeline.enrich.tavily_fallback import FallbackContent, TavilyFallback
from nightly_pipeline.settings import Settings

# Companies in flight at once; the crawler separately bounds domains in flight and spaces requests.
DEFAULT_COMPANY_CONCURRENCY = 64


def crawler_config(settings: Settings) -> CrawlerConfig:
    return CrawlerConfig(
        user_agent=settings.crawler_user_agent,
        timeout_s=settings.crawler_timeout_s,
        min_interval_s=settings.crawler_domain_min_interval_s,
        max_pages=settings.crawl_max_pages,
        proxy=settings.crawler_proxy,
        schemes=tuple(settings.crawler_schemes),
        allow_private_networks=settings.crawler_allow_private_networks,
        concurrency=max(DEFAULT_COMPANY_CONCURRENCY, settings.sched_company_concurrency),
    )


@contextlib.asynccontextmanager
async def polite_crawler(settings: Settings, database_url: str) -> AsyncIterator[SiteCrawler]:
    """The stage's crawler, taking each domain's turn in the database every crawler of the fleet shares."""
    async with PostgresDomainGate.open(database_url) as gate, \
            SiteCrawler(crawler_config(settings), gate=gate) as crawler:
        yield crawler


@dataclasses.dataclass
class CompanyCrawl:
    """Everything the crawl stage learned about one company tonight."""

    company_id: int
    domain: str | None
    domain_source: str | None
    domain_confidence: float | None
    discovery: DiscoveredWebsite | None
    crawl: SiteCrawl | None
    signals: SiteSignals | None
    fallback: FallbackContent | None
    extraction: ExtractionResult
    reasons: list[str]

    @property
    def outcome(self) -> str:
        if self.domain is None:
            return "no_website"
        if self.fallback is not None and self.fallback.pages:
            return "fallback"
        if self.crawl is None or self.crawl.outcome != "ok":
            return f"crawl_{self.crawl.outcome if self.crawl else 'skipped'}"
        return "thin" if self.signals is None or self.signals.is_thin else "crawled"

    @property
    def degraded(self) -> bool:
        return bool(self.reasons) or self.extraction.degraded

    @property
    def corpus(self) -> str:
        return self.signals.corpus if self.signals else ""

    def signals_dict(self) -> dict[str, Any]:
        """Signals for storage: the corpus itself is stored only when PERSIST_CRAWL_CORPUS is on."""
        data = self.signals.to_dict() if self.signals else {}
        data.pop("corpus", None)
        data["domain"] = {"value": self.domain, "source": self.domain_source, "confidence": self.domain_confidence}
        if self.crawl is not None:
            data["crawl"] = {k: v for k, v in self.crawl.to_dict().items() if k != "pages"}
            data["crawl"]["pages_fetched"] = len(self.crawl.pages)
        if self.fallback is not None:
            data["fallback"] = {"pages": len(self.fallback.pages), "calls": self.fallback.calls,
                                "credits": self.fallback.credits, "reason": self.fallback.reason}
        return data


def _pages_from_crawl(crawl: SiteCrawl, domain: str) -> list[PageSignals]:
    pages = []
    for page in crawl.pages:
        if not page.ok or not page.body:
            continue
        text = decode_html(page.body, page.content_type)
        pages.append(page_signals(page.final_url, text, page.headers, domain))
    return pages


def _pages_from_fallback(content: FallbackContent, domain: str) -> list[PageSignals]:
    # Tavily returns markdown; wrapped as a document, the same extractors read its emails and phones.
    return [page_signals(url, f"<html><body><pre>{html.escape(text)}</pre></body></html>", {}, domain)
            for url, text in content.pages]


class CrawlStage:
    """The per-company pipeline with its collaborators; one instance per tenant run."""

    def __init__(self, *, crawler: SiteCrawler, discovery: WebsiteDiscovery, fallback: TavilyFallback,
                 extractor: Extractor, corpus_char_limit: int) -> None:
        self.crawler = crawler
        self.discovery = discovery
        self.fallback = fallback
        self.extractor = extractor
        self.corpus_char_limit = corpus_char_limit

    async def enrich(self, company: Mapping[str, Any]) -> CompanyCrawl:
        reasons: list[str] = []
        domain = company.get("website_domain")
        source = company.get("website_source") or ("acra" if domain else None)
        confidence = company.get("website_confidence")
        discovered = None
        if not domain:
            discovered = await self.discovery.discover(company)
            if discovered is None:
                reasons.append("no website found")
            else:
                domain, source, confidence = discovered.domain, discovered.source, discovered.confidence
        crawl, pages, fallback = None, [], None
        if domain:
            crawl = await self.crawler.crawl_site(domain)
            pages = _pages_from_crawl(crawl, domain)
            blocked = crawl.outcome != "ok"
            thin = not pages or sum(p.text_chars for p in pages) < 250
            if blocked or thin:
                reasons.append(f"crawl {crawl.outcome}: {crawl.reason}" if blocked else "crawl thin")
                fallback = await self.fallback.site_content(domain)
                if fallback.pages:
                    pages += _pages_from_fallback(fallback, domain)
                else:
                    reasons.append(f"no fallback: {fallback.reason}")
        signals = merge_site_signals(pages, corpus_char_limit=self.corpus_char_limit) if pages else None
        extraction = await self.extractor.extract(company, signals.corpus if signals else "", signals)
        return CompanyCrawl(company_id=company["company_id"], domain=domain, domain_source=source,
                            domain_confidence=confidence, discovery=discovered, crawl=crawl, signals=signals,
                            fallback=fallback, extraction=extraction, reasons=reasons)

    async def enrich_many(self, companies: Iterable[Mapping[str, Any]], *,
                          on_done: Callable[[CompanyCrawl], Awaitable[None]],
                          on_error: Callable[[Mapping[str, Any], Exception], Awaitable[None]],
                          concurrency: int = DEFAULT_COMPANY_CONCURRENCY) -> None:
        """Enrich every company, handing each result to ``on_done`` as soon as it is ready.

        One company's failure goes to ``on_error`` and does not stop the others.
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(company: Mapping[str, Any]) -> None:
            try:
                async with gate:
                    result = await self.enrich(company)
            except Exception as exc:  # noqa: BLE001 - recorded per company, retried on the next run
                await on_error(company, exc)
                return
            await on_done(result)

        async with asyncio.TaskGroup() as group:
            for company in companies:
                group.create_task(one(company))
