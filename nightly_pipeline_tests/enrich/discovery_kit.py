"""Shared set-up of the discovery and Tavily fallback tests: the sandbox, a run's budget, clients."""
from __future__ import annotations

import datetime as dt

from tavily import TavilyClient

from nightly_pipeline.crawl.crawler import CrawlerConfig
from nightly_pipeline.db import Database
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.budget import VendorBudget
from nightly_pipeline.db.targets import create_manifest
from nightly_pipeline.sandbox.runner import SANDBOX_KEYS, Sandbox, SandboxConfig
from nightly_pipeline.sandbox.world import Site, World

RUN_DATE = dt.date(2026, 6, 1)


def fast_sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(web_latency_scale=0, vendor_latency_scale=0))


def crawler_config(sandbox: Sandbox) -> CrawlerConfig:
    return CrawlerConfig(proxy=sandbox.env["CRAWLER_PROXY"], schemes=("http",), min_interval_s=0.5,
                         allow_private_networks=True)


def tavily_client(sandbox: Sandbox, api_key: str = SANDBOX_KEYS["TAVILY_API_KEY"]) -> TavilyClient:
    return TavilyClient(api_key=api_key, api_base_url=sandbox.tavily.url)


def run_budget(db: Database) -> VendorBudget:
    """The vendor ledger of a fresh tenant's run."""
    with db.shared() as conn:
        tenant = tenants_db.register_tenant(conn, "acme", None)
    with db.tenant(tenant) as conn:
        manifest = create_manifest(conn, tenant, RUN_DATE, [], caps={}, budget_snapshot={}, dagster_run_id=None)
    return VendorBudget(db, tenant, manifest.run_id)


def plain_sites(world: World) -> list[Site]:
    """Registry companies' sites without a hard case or a look-alike, in a stable order."""
    return sorted((site for site in world.sites.values()
                   if site.hard_case is None and site.uen in world.companies and site.domain not in world.lookalikes
                   and site.uen not in world.lookalikes.values()), key=lambda site: site.domain)
