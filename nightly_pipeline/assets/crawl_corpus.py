"""Stage 4: tonight's targets → websites, corpus, signals and an extracted profile per company.

Website discovery, a polite crawl, the Tavily fallback for blocked or thin sites and AI extraction
(``nightly_pipeline/stages/``), within the tenant's Tavily and token budgets. A re-run of the
partition resumes: companies already done in this run are not crawled or paid for again.
"""
import asyncio
from collections import Counter
from typing import Any

import dagster as dg

from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets._night import night_stage, tonight
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db.enrichment import RunRecord
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.headcount import Headcount
from nightly_pipeline.partitions import tenant_day_partitions
from nightly_pipeline.settings import SKIPPED
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.crawl import crawl_targets, vendor_degradations
from nightly_pipeline.vendors.openai import NullOpenAIChat, OpenAIResource
from nightly_pipeline.vendors.tavily import NullTavilyClient, TavilyResource

STEP = "crawl_corpus"


def summarize(records: list[RunRecord], usage: dict[str, dict[str, int]]) -> dict[str, Any]:
    outcomes = Counter(r.outcome for r in records)
    extraction_sources = Counter((r.extraction or {}).get("source", "none") for r in records)
    pages = sum((r.signals.get("crawl") or {}).get("pages_fetched", 0) for r in records)
    return {
        "dagster/row_count": len(records),
        "pages_fetched": pages,
        "blocked": sum(n for o, n in outcomes.items() if o.startswith("crawl_")),
        "thin": outcomes.get("thin", 0),
        "fallbacks": outcomes.get("fallback", 0),
        "no_website": outcomes.get("no_website", 0),
        "errors": outcomes.get("error", 0),
        "degraded": sum(1 for r in records if r.degraded),
        "extraction_sources": dict(extraction_sources),
        "tokens": usage.get("openai", {}).get("charged", 0),
        "tavily_queries": usage.get("tavily", {}).get("charged", 0),
        "outcomes": dict(outcomes),
    }


def _preview_rows(records: list[RunRecord]) -> list[dict]:
    rows = []
    for r in records:
        profile = (r.extraction or {}).get("profile") or {}
        domain = (r.signals.get("domain") or {})
        rows.append({"company": r.name, "domain": domain.get("value") or "-",
                     "via": domain.get("source") or "-", "outcome": r.outcome,
                     "industry": profile.get("industry"),
                     "employees": Headcount.from_dict((r.extraction or {}).get("headcount")).label,
                     "extraction": (r.extraction or {}).get("source"),
                     "degraded": "; ".join(r.reasons)[:120] or "-"})
    return rows


@dg.asset(partitions_def=tenant_day_partitions, deps=[daily_targets], kinds={"python"},
          retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
          description="Each target's website, crawl signals, corpus and AI-extracted profile.")
@night_stage
def crawl_corpus(context: dg.AssetExecutionContext, database: DatabaseResource, pipeline_settings: PipelineSettings,
                 tavily: TavilyResource, openai: OpenAIResource) -> dg.MaterializeResult:
    night = tonight(context, database, pipeline_settings)
    with night.transaction() as conn:
        done = enrichment_db.done_company_ids(conn, night.run_id)
        todo_ids = [cid for cid in night.company_ids if cid not in done]
        companies = acra_db.companies_by_id(conn, todo_ids)
    context.log.info("crawl_corpus for tenant %s on %s: %d targets, %d already done in this run", night.tenant_id,
                     night.run_date, len(night.company_ids), len(done))
    tavily_client, chat = tavily.get_client(), openai.get_client()
    if night.settings.skips("tavily"):
        tavily_client = NullTavilyClient(SKIPPED)
    if night.settings.skips("extraction"):
        chat = NullOpenAIChat(SKIPPED, model=chat.model_name)
    asyncio.run(crawl_targets(night, [companies[cid] for cid in todo_ids], tavily=tavily_client, chat=chat,
                              logger=context.log))
    with night.transaction() as conn:
        records = enrichment_db.run_records(conn, night.run_id)
    metadata = summarize(records, night.budget.usage())
    degradations = vendor_degradations(tavily=tavily_client, chat=chat)
    for cause in degradations:
        context.log.warning("crawl_corpus degraded: %s", cause)
    night.record_stage(STEP, {k: v for k, v in metadata.items() if k != "dagster/row_count"}, degradations)
    metadata.update({"resumed_from_earlier_attempt": len(done), "run_id": str(night.run_id),
                     "preview": preview(_preview_rows(records),
                                        ["company", "domain", "via", "outcome", "industry", "employees",
                                         "extraction", "degraded"])})
    return dg.MaterializeResult(metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                                          for k, v in metadata.items()})
