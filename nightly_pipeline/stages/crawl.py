"""The crawl stage for one company, and for a night's targets at once.

For each target: find its website if the registry has none, crawl it politely, read the signals,
fall back to Tavily when the crawl is blocked or thin, and extract a profile. Every company runs
in its own task; per-domain politeness and the vendor budgets, not this loop, set the pace. Each
company's result is stored as soon as it is ready, so a re-run of the night resumes after it.

A website found from public pages and a site's crawl are public facts: the first run of the fleet
that needs one fetches it (:func:`~nightly_pipeline.stages.public_facts.fetch_once`), every other run
within ``PUBLIC_FACTS_MAX_AGE_HOURS`` reads it from ``public_websites`` / ``public_site_crawls``
and sends no request. The Tavily fallback stays the tenant's own (its budget, its call).

A company whose result cannot be stored fails alone: it is recorded as that company's error and the
others go on. Every value from the web or a model is cleaned before storage (``domain/sanitize.py``).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from tavily import TavilyClient

from nightly_pipeline.crawl.crawler import CrawlerConfig, SiteCrawl, SiteCrawler
from nightly_pipeline.crawl.signals import PageSignals, SiteSignals, decode_html, merge_site_signals, page_signals
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import public_facts as facts_db
from nightly_pipeline.db.acra import CompanyRow
from nightly_pipeline.db.public_facts import PublicCrawl, StoredPage
from nightly_pipeline.db.politeness import PostgresDomainGate
from nightly_pipeline.db import Database
from nightly_pipeline.domain import headcount as headcount_domain
from nightly_pipeline.domain import sanitize
from nightly_pipeline.domain.headcount import Headcount
from nightly_pipeline.settings import Settings
from nightly_pipeline.stages.discovery import DiscoveredWebsite, WebsiteDiscovery
from nightly_pipeline.stages.extraction import ExtractionResult, Extractor
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.stages.public_facts import fetch_once, max_age
from nightly_pipeline.stages.tavily_fallback import (
    FallbackContent,
    TavilyFallback,
    current_transient_failures,
    transient_failures,
)
from nightly_pipeline.vendors.openai import ChatClient
from nightly_pipeline.vendors.paid_call import unavailable_reason
from nightly_pipeline.vendors.tavily import NullTavilyClient

log = logging.getLogger(__name__)

# Companies in flight at once when no setting says (a run takes SCHED_COMPANY_CONCURRENCY).
DEFAULT_COMPANY_CONCURRENCY = 8
# The crawler's own bound on requests in flight across all domains: requests, not companies, so it
# stays apart from SCHED_COMPANY_CONCURRENCY (one company's crawl fetches several pages).
CRAWLER_REQUESTS_IN_FLIGHT = 64


def crawler_config(settings: Settings) -> CrawlerConfig:
    return CrawlerConfig(
        user_agent=settings.crawler_user_agent,
        timeout_s=settings.crawler_timeout_s,
        min_interval_s=settings.crawler_domain_min_interval_s,
        max_pages=settings.crawl_max_pages,
        proxy=settings.crawler_proxy,
        schemes=tuple(settings.crawler_schemes),
        allow_private_networks=settings.crawler_allow_private_networks,
        concurrency=CRAWLER_REQUESTS_IN_FLIGHT,
    )


@contextlib.asynccontextmanager
async def polite_crawler(settings: Settings, database_url: str) -> AsyncIterator[SiteCrawler]:
    """The stage's crawler, taking each domain's turn in the database every crawler of the fleet shares."""
    async with PostgresDomainGate.open(database_url) as gate, \
            SiteCrawler(crawler_config(settings), gate=gate) as crawler:
        yield crawler


# Crawl outcomes that may go away by themselves (the site answered 5xx or 429, or not at all).
TRANSIENT_CRAWL_OUTCOMES = frozenset({"unreachable", "error"})


@dataclasses.dataclass
class CompanyCrawl:
    """Everything the crawl stage learned about one company tonight."""

    company_id: int
    domain: str | None
    domain_source: str | None
    domain_confidence: float | None
    discovery: DiscoveredWebsite | None
    crawl: PublicCrawl | None
    signals: SiteSignals | None
    fallback: FallbackContent | None
    extraction: ExtractionResult
    reasons: list[str]
    headcount: Headcount = headcount_domain.UNKNOWN
    # Public facts this company's result read from the fleet's store instead of fetching.
    reused: tuple[str, ...] = ()
    # What failed tonight for a passing reason (a vendor's 429 or 5xx, a site that did not answer).
    transient_failures: tuple[str, ...] = ()

    @property
    def retry_next_run(self) -> bool:
        """Whether a re-run of the night should enrich the company again instead of keeping this."""
        return bool(self.transient_failures) or (self.crawl is not None
                                                 and self.crawl.outcome in TRANSIENT_CRAWL_OUTCOMES)

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
            data["crawl"] = {**self.crawl.summary, "reused": "crawl" in self.reused}
        if self.fallback is not None:
            data["fallback"] = {"pages": len(self.fallback.pages), "calls": self.fallback.calls,
                                "credits": self.fallback.credits, "reason": self.fallback.reason}
        return data


def public_crawl(crawl: SiteCrawl) -> PublicCrawl:
    """What the fleet keeps of a crawl: its summary and every readable page, decoded."""
    summary = {k: v for k, v in crawl.to_dict().items() if k != "pages"}
    summary["pages_fetched"] = len(crawl.pages)
    pages = tuple(StoredPage(page.final_url, decode_html(page.body, page.content_type), dict(page.headers))
                  for page in crawl.pages if page.ok and page.body)
    return PublicCrawl(crawl.domain, crawl.outcome, crawl.reason, summary, pages)


def _pages_from_crawl(crawl: PublicCrawl, domain: str) -> list[PageSignals]:
    return [page_signals(page.url, page.html, page.headers, domain) for page in crawl.pages]


def _website_is_public(found: DiscoveredWebsite) -> bool:
    # A site confirmed only by a search engine's summary is the tenant's (paid) judgement, not the web's.
    return not found.from_snippet


def _pages_from_fallback(content: FallbackContent, domain: str) -> list[PageSignals]:
    # Tavily returns markdown; wrapped as a document, the same extractors read its emails and phones.
    return [page_signals(url, f"<html><body><pre>{html.escape(text)}</pre></body></html>", {}, domain)
            for url, text in content.pages]


def resolve_headcount(signals: SiteSignals | None, extraction: ExtractionResult) -> Headcount:
    """Tonight's headcount: the site's structured data, then its words, then the model's reading
    (kept as a size band only)."""
    organization = signals.organization if signals is not None else {}
    count, top = organization.get("numberOfEmployees"), organization.get("numberOfEmployeesMax")
    structured = count if isinstance(count, int) and not isinstance(count, bool) else None
    if structured is not None and isinstance(top, int) and top > structured:
        return Headcount(source="structured", low=structured, high=top)
    profile = extraction.profile
    from_model = extraction.source in ("llm", "cache")
    return headcount_domain.resolve(
        structured=structured, stated=signals.headcount if signals is not None else None,
        model_estimate=profile.employees_estimate if from_model else None,
        model_confidence=profile.employees_estimate_confidence)


class CrawlStage:
    """The per-company pipeline with its collaborators; one instance per tenant run."""

    def __init__(self, *, crawler: SiteCrawler, discovery: WebsiteDiscovery, fallback: TavilyFallback,
                 extractor: Extractor, corpus_char_limit: int, db: Database,
                 facts_max_age: dt.timedelta, reuse_public_facts: bool = True) -> None:
        self.crawler = crawler
        self.discovery = discovery
        self.fallback = fallback
        self.extractor = extractor
        self.corpus_char_limit = corpus_char_limit
        self.db = db
        self.facts_max_age = facts_max_age
        self.reuse_public_facts = reuse_public_facts

    async def website(self, company: CompanyRow) -> tuple[DiscoveredWebsite | None, bool]:
        """The company's website found from public pages (None: none found), and whether it was reused."""
        def lookup() -> facts_db.PublicWebsite | None:
            with self.db.shared() as conn:
                return facts_db.fresh_website(conn, company.company_id, self.facts_max_age)

        def store(found: DiscoveredWebsite | None) -> bool:
            if found is not None and not _website_is_public(found):
                return False
            if found is None and searched_in_vain:
                # "No website" after a search that failed for a passing reason is tonight's outage,
                # not a fact: a re-run, and every other tenant, must search again.
                return False
            with self.db.shared() as conn:
                facts_db.put_website(conn, company.company_id, found.domain if found else None,
                                     found.source if found else None, found.confidence if found else None,
                                     found.evidence if found else None)
            return True

        searched_in_vain = False

        async def discover() -> facts_db.PublicWebsite | DiscoveredWebsite | None:
            nonlocal searched_in_vain
            with transient_failures() as failures:
                found = await self.discovery.discover(company)
            searched_in_vain = bool(failures)
            # The company's own record of passing failures (see enrich) must still see this search's.
            if failures and (outer := current_transient_failures()) is not None:
                outer.extend(failures)
            return found

        fetched = await fetch_once(self.db, "website", str(company.company_id), lookup=lookup, fetch=discover,
                                   store=store, reuse=self.reuse_public_facts)
        value = fetched.value
        if isinstance(value, facts_db.PublicWebsite):
            if value.domain is None:
                return None, True
            return DiscoveredWebsite(domain=value.domain, source=value.source or "name_guess",
                                     confidence=value.confidence or 0.0, evidence=value.evidence or "",
                                     candidates_tried=()), True
        return value, False

    async def site_crawl(self, domain: str) -> tuple[PublicCrawl, bool]:
        """The site's crawl, and whether it was reused from the fleet's store."""
        def lookup() -> PublicCrawl | None:
            with self.db.shared() as conn:
                return facts_db.fresh_crawl(conn, domain, self.facts_max_age)

        def store(crawl: PublicCrawl) -> bool:
            with self.db.shared() as conn:
                facts_db.put_crawl(conn, crawl)
            return True

        async def crawl_now() -> PublicCrawl:
            return public_crawl(await self.crawler.crawl_site(domain))

        fetched = await fetch_once(self.db, "crawl", domain, lookup=lookup, fetch=crawl_now, store=store,
                                   reuse=self.reuse_public_facts)
        return fetched.value, fetched.reused

    async def enrich(self, company: CompanyRow) -> CompanyCrawl:
        with transient_failures() as tavily_failures:
            result = await self._enrich(company)
        if tavily_failures:
            result.reasons.extend(tavily_failures)
            result.transient_failures = tuple(tavily_failures)
        return result

    async def _enrich(self, company: CompanyRow) -> CompanyCrawl:
        reasons: list[str] = []
        reused: list[str] = []
        domain = company.website_domain
        source = company.website_source or ("acra" if domain else None)
        confidence = company.website_confidence
        if domain and source != "acra" and not self.reuse_public_facts:
            # Found by another run's search: a run that reuses nothing searches for itself.
            domain = source = confidence = None
        discovered = None
        if not domain:
            discovered, website_reused = await self.website(company)
            if website_reused:
                reused.append("website")
            if discovered is None:
                reasons.append("no website found")
            else:
                domain, source, confidence = discovered.domain, discovered.source, discovered.confidence
        crawl, pages, fallback = None, [], None
        if domain:
            crawl, crawl_reused = await self.site_crawl(domain)
            if crawl_reused:
                reused.append("crawl")
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
        return CompanyCrawl(company_id=company.company_id, domain=domain, domain_source=source,
                            domain_confidence=confidence, discovery=discovered, crawl=crawl, signals=signals,
                            fallback=fallback, extraction=extraction, reasons=reasons,
                            headcount=resolve_headcount(signals, extraction),
                            reused=tuple(reused) + (("extraction",) if extraction.source == "cache" else ()))

    async def enrich_many(self, companies: Iterable[CompanyRow], *,
                          on_done: Callable[[CompanyCrawl], Awaitable[None]],
                          on_error: Callable[[CompanyRow, Exception], Awaitable[None]],
                          concurrency: int = DEFAULT_COMPANY_CONCURRENCY) -> None:
        """Enrich every company, handing each result to ``on_done`` as soon as it is ready.

        One company's failure, in its enrichment or in ``on_done``, goes to ``on_error`` and does not
        stop the others.
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(company: CompanyRow) -> None:
            try:
                async with gate:
                    result = await self.enrich(company)
                # Storing is inside the boundary: a result the database refuses fails this company only.
                await on_done(result)
            except Exception as exc:  # noqa: BLE001 - recorded per company, retried on the next run
                await on_error(company, exc)

        async with asyncio.TaskGroup() as group:
            for company in companies:
                group.create_task(one(company))


# -- a night's targets --------------------------------------------------------------------------------------
def run_record(result: CompanyCrawl, *, persist_corpus: bool) -> enrichment_db.CompanyRunRecord:
    extraction = {**result.extraction.to_dict(), "headcount": result.headcount.to_dict()}
    return enrichment_db.CompanyRunRecord(
        company_id=result.company_id, outcome=result.outcome, degraded=result.degraded,
        reasons=result.reasons + ([result.extraction.degraded_reason] if result.extraction.degraded_reason else []),
        signals={**result.signals_dict(), "retry_next_run": result.retry_next_run}, extraction=extraction, corpus_hash=result.extraction.corpus_hash,
        corpus=result.corpus if persist_corpus else None)


def store_result(night: TenantNight, result: CompanyCrawl) -> None:
    """The company's result in the night's record, and what it taught the shared ``companies`` row."""
    now = dt.datetime.now(dt.timezone.utc)
    with night.transaction() as conn:
        enrichment_db.save_company_run(conn, night.run_id,
                                       run_record(result, persist_corpus=night.settings.persist_crawl_corpus))
        if result.discovery is not None and _website_is_public(result.discovery):
            enrichment_db.record_website(conn, result.company_id, result.discovery.domain,
                                         result.discovery.source, result.discovery.confidence)
        if result.headcount.known:
            enrichment_db.record_headcount(conn, result.company_id, result.headcount.to_dict(),
                                           headcount_domain.SOURCE_RANK[result.headcount.source or ""],
                                           crawled_at=now)
        if result.crawl is not None or result.extraction.source != "deterministic":
            # The headcount goes in with its source above; the model's number never lands as a fact.
            profile = {k: v for k, v in result.extraction.profile.model_dump().items() if k != "employees_estimate"}
            enrichment_db.record_firmographics(conn, result.company_id, profile,
                                               source=result.extraction.source, crawled_at=now)


def store_error(night: TenantNight, company_id: int, error: Exception) -> None:
    """A company whose crawl failed: recorded as an error, which the next run of the night retries."""
    record = enrichment_db.CompanyRunRecord(
        company_id=company_id, outcome="error", degraded=True, reasons=[f"{type(error).__name__}: {error}"[:500]],
        signals={}, extraction={}, corpus_hash=None, corpus=None)
    with night.transaction() as conn:
        enrichment_db.save_company_run(conn, night.run_id, record)


async def crawl_targets(night: TenantNight, companies: Iterable[CompanyRow], *,
                        tavily: TavilyClient | NullTavilyClient, chat: ChatClient,
                        logger: logging.Logger = log) -> None:
    """Crawl, enrich and store every company of ``companies`` for the night; a company that fails is
    stored as an error (and reported to ``logger``) without stopping the others."""
    settings = night.settings
    night.share_limits("openai", chat)
    async with polite_crawler(settings, night.db.target.app_url) as crawler, chat:
        fallback = TavilyFallback(tavily, night)
        stage = CrawlStage(crawler=crawler, discovery=WebsiteDiscovery(crawler, fallback), fallback=fallback,
                           extractor=Extractor(chat, night), corpus_char_limit=settings.extract_corpus_char_limit,
                           db=night.db, facts_max_age=max_age(settings.public_facts_max_age_hours),
                           reuse_public_facts=settings.public_facts_reuse)

        async def on_done(result: CompanyCrawl) -> None:
            await asyncio.to_thread(store_result, night, result)

        async def on_error(company: CompanyRow, error: Exception) -> None:
            logger.error("crawl of company %s failed: %s: %s", company.company_id, type(error).__name__, error)
            await asyncio.to_thread(store_error, night, company.company_id, error)

        await stage.enrich_many(companies, on_done=on_done, on_error=on_error,
                                concurrency=settings.sched_company_concurrency)


def vendor_degradations(*, tavily: TavilyClient | NullTavilyClient, chat: ChatClient) -> list[str]:
    """What the night does without: the vendors that cannot be called, and why."""
    notes = []
    if (reason := unavailable_reason(chat)) is not None:
        notes.append(f"{reason}: profiles are extracted without the model (deterministic)")
    if (reason := unavailable_reason(tavily)) is not None:
        notes.append(f"{reason}: no Tavily fallback for blocked or thin sites and no web search for missing websites")
    return notes
