"""Shared set-up of the discovery and Tavily fallback tests: the sandbox, a tenant's night, clients."""
from __future__ import annotations

from tavily import TavilyClient

from nightly_pipeline.crawl.crawler import CrawlerConfig
from nightly_pipeline.db import Database
from nightly_pipeline_sandbox.runner import SANDBOX_KEYS, Sandbox, SandboxConfig
from nightly_pipeline_sandbox.world import Site, World
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline_tests.kit.night import new_night
from nightly_pipeline_tests.kit.tenants import register_tenant


def fast_sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(web_latency_scale=0, vendor_latency_scale=0))


def crawler_config(sandbox: Sandbox) -> CrawlerConfig:
    return CrawlerConfig(proxy=sandbox.env["CRAWLER_PROXY"], schemes=("http",), min_interval_s=0.5,
                         allow_private_networks=True)


def tavily_client(sandbox: Sandbox, api_key: str = SANDBOX_KEYS["TAVILY_API_KEY"]) -> TavilyClient:
    return TavilyClient(api_key=api_key, api_base_url=sandbox.tavily.url)


def run_night(db: Database, max_queries: int = 10) -> TenantNight:
    """A fresh tenant's night allowed ``max_queries`` Tavily queries."""
    return new_night(db, register_tenant(db), TAVILY_MAX_QUERIES=str(max_queries))


def plain_sites(world: World) -> list[Site]:
    """Registry companies' sites without a hard case or a look-alike, in a stable order."""
    return sorted((site for site in world.sites.values()
                   if site.hard_case is None and site.uen in world.companies and site.domain not in world.lookalikes
                   and site.uen not in world.lookalikes.values()), key=lambda site: site.domain)
