"""The Tavily fallback against the sandbox Tavily server, metered by the real vendor ledger."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pytest
from tavily import TavilyClient
from tavily.errors import UsageLimitExceededError

from nightly_pipeline.crawl.crawler import SiteCrawler
from nightly_pipeline.crawl.signals import decode_html, main_text
from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.stages.tavily_fallback import (
    FallbackContent,
    SearchHit,
    TavilyFallback,
)
from nightly_pipeline_sandbox.base import FaultConfig
from nightly_pipeline_sandbox.runner import SANDBOX_KEYS, Sandbox
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.db import rate_limits
from nightly_pipeline.vendors import tavily as tavily_vendor
from nightly_pipeline.vendors.tavily import NullTavilyClient, RetryingTavilyClient, TavilyResource
from nightly_pipeline_tests.kit.discovery import (
    crawler_config,
    plain_sites,
    run_night,
    tavily_client,
)

pytestmark = pytest.mark.database


@pytest.fixture
def night(db, sandbox: Sandbox) -> TenantNight:
    sandbox.tavily.reset()
    return run_night(db, max_queries=10)


def site_content(fallback_args: tuple[Any, ...], domain: str, **options: Any) -> FallbackContent:
    async def scenario() -> FallbackContent:
        return await TavilyFallback(*fallback_args).site_content(domain, **options)

    return asyncio.run(scenario())


def test_the_fallback_reads_the_javascript_only_site_the_crawler_cannot(sandbox: Sandbox,
                                                                        night: TenantNight) -> None:
    site = sandbox.world.sites[sandbox.world.hard_cases["js_only"]]

    async def own_crawl_text() -> str:
        async with SiteCrawler(crawler_config(sandbox)) as crawler:
            crawl = await crawler.crawl_site(site.domain)
        return "\n".join(main_text(decode_html(page.body, page.content_type)) for page in crawl.pages)

    crawled_text = asyncio.run(own_crawl_text())
    with tavily_client(sandbox) as client:
        content = site_content((client, night), site.domain, scheme="http")
    fallback_text = "\n".join(text for _, text in content.pages)
    pitch = site.industry.pitch[0]
    assert site.uen not in crawled_text and pitch not in crawled_text
    assert site.uen in fallback_text and pitch in fallback_text
    assert 1 < len(content.pages) <= 6 and content.calls == 1 and content.credits > 0
    assert content.pages[0][0] == f"https://{site.domain}/"
    assert {registrable_domain(url) for url, _ in content.pages} == {site.domain}
    assert night.budget.usage()["tavily"] == {"calls": 1, "charged": 1, "reserved": 1}
    assert sandbox.tavily.stats()["calls"] == {"crawl": 1}


def test_32_concurrent_fallbacks_never_spend_more_than_the_query_cap(sandbox: Sandbox, night: TenantNight) -> None:
    domains = [site.domain for site in plain_sites(sandbox.world)[:32]]
    assert len(domains) == 32

    async def scenario(client: TavilyClient) -> list[FallbackContent]:
        fallback = TavilyFallback(client, night, max_concurrent_calls=8)
        return await asyncio.gather(*(fallback.site_content(domain, scheme="http") for domain in domains))

    with tavily_client(sandbox) as client:
        results = asyncio.run(scenario(client))
    served = [result for result in results if result.pages]
    refused = [result for result in results if not result.pages]
    assert sandbox.tavily.stats()["requests"] == 10
    assert night.budget.usage()["tavily"] == {"calls": 10, "charged": 10, "reserved": 10}
    assert len(served) == 10 and all(result.calls == 1 for result in served)
    assert len(refused) == 22
    assert all(result.calls == 0 and result.reason.endswith(": Tavily query budget exhausted (0 of 10 left)")
               for result in refused)


def test_without_a_key_nothing_is_called_or_reserved(sandbox: Sandbox, night: TenantNight) -> None:
    domain = plain_sites(sandbox.world)[0].domain

    async def scenario() -> tuple[FallbackContent, list[SearchHit]]:
        fallback = TavilyFallback(NullTavilyClient("no TAVILY_API_KEY"), night)
        return await fallback.site_content(domain), await fallback.search("Pearl Apps Singapore")

    content, hits = asyncio.run(scenario())
    assert content == FallbackContent(domain=domain, reason="no TAVILY_API_KEY")
    assert hits == []
    assert sandbox.tavily.stats()["requests"] == 0
    assert night.budget.usage() == {}


def test_a_rate_limited_tavily_gives_an_empty_result_and_charges_nothing(sandbox: Sandbox,
                                                                        night: TenantNight) -> None:
    domain = plain_sites(sandbox.world)[0].domain
    sandbox.tavily.faults.rate_429 = 1.0
    try:
        with tavily_client(sandbox) as client:
            content = site_content((client, night), domain, scheme="http")
    finally:
        sandbox.tavily.faults.rate_429 = 0.0
    assert content.pages == () and content.credits == 0 and content.calls == 2
    assert content.reason.count("rate limited by Tavily (HTTP 429)") == 2
    assert sandbox.tavily.stats()["by_status"] == {"429": 2}
    assert night.budget.usage()["tavily"] == {"calls": 2, "charged": 0, "reserved": 2}
    assert _ledger_statuses(night) == ["error: UsageLimitExceededError"] * 2


def test_a_crawl_refused_by_its_own_rate_limit_falls_back_to_extracting_the_home_page(
        sandbox: Sandbox, night: TenantNight) -> None:
    site = plain_sites(sandbox.world)[1]
    sandbox.tavily.crawl_per_minute = 0
    try:
        with tavily_client(sandbox) as client:
            content = site_content((client, night), site.domain, scheme="http")
    finally:
        sandbox.tavily.crawl_per_minute = 100
    assert [url for url, _ in content.pages] == [f"http://{site.domain}/"]
    assert site.uen in content.pages[0][1]
    assert content.calls == 2 and content.credits == 1
    assert "crawl" in content.reason and "429" in content.reason
    assert night.budget.usage()["tavily"] == {"calls": 2, "charged": 1, "reserved": 2}


def test_a_rejected_key_is_reported_without_the_key_and_not_retried_elsewhere(sandbox: Sandbox,
                                                                             night: TenantNight) -> None:
    wrong_key = "tvly-not-the-sandbox-key"
    with tavily_client(sandbox, api_key=wrong_key) as client:
        content = site_content((client, night), plain_sites(sandbox.world)[0].domain)
    assert content.pages == () and content.calls == 1
    assert "rejected the API key (HTTP 401)" in content.reason and wrong_key not in content.reason
    assert night.budget.usage()["tavily"] == {"calls": 1, "charged": 0, "reserved": 1}


class ScriptedTavily:
    """Answers crawl and extract with fixed bodies, as a misbehaving vendor might."""

    def __init__(self, crawl: Mapping[str, Any], extract: Mapping[str, Any]) -> None:
        self._crawl, self._extract = crawl, extract

    def crawl(self, url: str, **options: Any) -> Mapping[str, Any]:
        return self._crawl

    def extract(self, urls: list[str], **options: Any) -> Mapping[str, Any]:
        return self._extract


def test_only_http_pages_of_the_requested_site_are_kept(night: TenantNight) -> None:
    crawl = {"results": [
        {"url": "https://www.acme.com.sg/", "raw_content": "Acme home"},
        {"url": "https://shop.acme.com.sg/cart", "raw_content": "Acme shop"},
        {"url": "https://acme.com.sg.evil.example/", "raw_content": "phishing"},
        {"url": "http://169.254.169.254/latest/meta-data", "raw_content": "cloud secrets"},
        {"url": "javascript:alert(1)", "raw_content": "script"},
        {"url": "ftp://acme.com.sg/file", "raw_content": "file"},
        {"url": "https://acme.com.sg/empty", "raw_content": "   "},
        {"url": None, "raw_content": "no url"},
        "not an object",
        {"url": "https://www.acme.com.sg/", "raw_content": "duplicate"},
    ], "usage": {"credits": 2}}
    content = site_content((ScriptedTavily(crawl, {}), night), "acme.com.sg")
    assert content.pages == (("https://www.acme.com.sg/", "Acme home"), ("https://shop.acme.com.sg/cart", "Acme shop"))
    assert content.credits == 2


def test_an_answer_that_is_not_an_object_counts_the_query_but_yields_nothing(night: TenantNight) -> None:
    content = site_content((ScriptedTavily([], []), night), "acme.com.sg")  # type: ignore[arg-type]
    assert content.pages == () and content.calls == 2
    assert content.reason.count("Tavily's answer could not be read") == 2
    assert night.budget.usage()["tavily"] == {"calls": 2, "charged": 2, "reserved": 2}


def test_search_returns_hits_with_their_domains(sandbox: Sandbox, night: TenantNight) -> None:
    site = plain_sites(sandbox.world)[0]

    async def scenario(client: TavilyClient) -> list[SearchHit]:
        return await TavilyFallback(client, night).search(f"{site.display_name} Singapore")

    with tavily_client(sandbox) as client:
        hits = asyncio.run(scenario(client))
    assert hits[0].domain == site.domain and hits[0].url == f"https://{site.domain}/"
    assert site.display_name in hits[0].content and hits[0].score == 1.0
    assert night.budget.usage()["tavily"] == {"calls": 1, "charged": 1, "reserved": 1}


def _ledger_statuses(night: TenantNight) -> list[str]:
    with night.transaction() as conn:
        rows = conn.execute("SELECT status FROM vendor_usage WHERE run_id = %s ORDER BY usage_id",
                            (night.run_id,)).fetchall()
    return [row["status"] for row in rows]


# -- the resource -------------------------------------------------------------------------------------------
def resource_client(resource: TavilyResource) -> TavilyClient | NullTavilyClient:
    with dg.build_resources({"tavily": resource}) as resources:
        return resources.tavily.get_client()


def test_the_resource_builds_a_null_client_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    client = resource_client(TavilyResource(settings=PipelineSettings()))
    assert isinstance(client, NullTavilyClient) and client.reason == "no TAVILY_API_KEY"
    monkeypatch.setenv("TAVILY_API_KEY", "   ")
    assert isinstance(resource_client(TavilyResource(settings=PipelineSettings())), NullTavilyClient)


def test_the_resource_uses_its_own_values_else_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-abc")
    monkeypatch.setenv("TAVILY_BASE_URL", "http://127.0.0.1:8")
    from_settings = resource_client(TavilyResource(settings=PipelineSettings()))
    assert isinstance(from_settings, TavilyClient)
    assert (from_settings.api_key, from_settings.base_url) == ("tvly-abc", "http://127.0.0.1:8")
    own_url = resource_client(TavilyResource(settings=PipelineSettings(), base_url="http://127.0.0.1:9/"))
    assert isinstance(own_url, TavilyClient) and own_url.base_url == "http://127.0.0.1:9"
    monkeypatch.delenv("TAVILY_BASE_URL")
    default_url = resource_client(TavilyResource(settings=PipelineSettings()))
    assert isinstance(default_url, TavilyClient) and default_url.base_url == "https://api.tavily.com"
    resource = TavilyResource(settings=PipelineSettings())
    assert "tvly-abc" not in repr(resource)


# -- per-call retries -----------------------------------------------------------------------------------------
def test_a_throttled_call_is_retried_after_the_wait_tavily_names(sandbox: Sandbox) -> None:
    waits: list[float] = []
    client = RetryingTavilyClient(SANDBOX_KEYS["TAVILY_API_KEY"], api_base_url=sandbox.tavily.url, sleep=waits.append)
    sandbox.tavily.reset()
    saved = sandbox.tavily.faults
    sandbox.tavily.faults = FaultConfig(rate_429=1.0, retry_after_s=2)
    try:
        with pytest.raises(UsageLimitExceededError):
            client.search("anything Singapore", max_results=1)
    finally:
        sandbox.tavily.faults = saved
    assert [r.status for r in sandbox.tavily.request_log] == [429, 429, 429]
    assert len(waits) == 2 and all(wait >= 2 for wait in waits)
    assert client.search("anything Singapore", max_results=1)["results"] is not None
    client.close()


def test_every_attempt_of_a_retried_call_waits_its_own_turn_of_the_key(sandbox: Sandbox, night: TenantNight) -> None:
    # A retry is one more request against the key's per-minute limit, so the fleet counts it too.
    client = RetryingTavilyClient(SANDBOX_KEYS["TAVILY_API_KEY"], api_base_url=sandbox.tavily.url,
                                  sleep=lambda _: None)
    saved = sandbox.tavily.faults
    sandbox.tavily.faults = FaultConfig(rate_429=1.0, retry_after_s=0)
    try:
        hits = asyncio.run(_search(TavilyFallback(client, night), "anything Singapore"))
    finally:
        sandbox.tavily.faults = saved
        client.close()
    assert hits == [] and [r.status for r in sandbox.tavily.request_log] == [429, 429, 429]
    with night.db.shared() as conn:
        admitted = rate_limits.busiest_window(conn, tavily_vendor.fingerprint(client), tavily_vendor.REQUESTS_BUCKET,
                                              3600)
    assert admitted == 3


async def _search(fallback: TavilyFallback, query: str) -> list[SearchHit]:
    return await fallback.search(query)
