"""Stage 4: tonight's targets → websites, corpus, signals and an extracted profile per company.

Website discovery, a polite crawl, the Tavily fallback for blocked or thin sites and AI extraction
(``nightly_pipeline/enrich/``), within the tenant's Tavily and token budgets. A re-run of the
partition resumes: companies already done in this run are not crawled or paid for again.
"""
import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any

import dagster as dg

from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.db import Database
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db.budget import VendorBudget
from nightly_pipeline.enrich.crawl_stage import CompanyCrawl, CrawlStage, polite_crawler
from nightly_pipeline.enrich.discovery import WebsiteDiscovery
from nightly_pipeline.enrich.extraction import Extractor
from nightly_pipeline.enrich.tavily_fallback import TavilyFallback
from nightly_pipeline.partitions import tenant_day, tenant_day_partitions
from nightly_pipeline.resources import DatabaseResource, LLMResource, PipelineSettings, TavilyResource

STEP = "crawl_corpus"
# Room for a full profile with ten products and a 400-character summary; it is also what each call reserves.
EXTRACTION_MAX_OUTPUT_TOKENS = 1_000


def _record(result: CompanyCrawl, persist_corpus: bool) -> enrichment_db.CompanyRunRecord:
    extraction = result.extraction.to_dict()
    return enrichment_db.CompanyRunRecord(
        company_id=result.company_id, outcome=result.outcome, degraded=result.degraded,
        reasons=result.reasons + ([result.extraction.degraded_reason] if result.extraction.degraded_reason else []),
        signals=result.signals_dict(), extraction=extraction, corpus_hash=result.extraction.corpus_hash,
        corpus=result.corpus if persist_corpus else None)


def _persist(db: Database, tenant_id: int, run_id, result: CompanyCrawl, persist_corpus: bool) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    with db.tenant(tenant_id) as conn:
        enrichment_db.save_company_run(conn, tenant_id, run_id, _record(result, persist_corpus))
        if result.discovery is not None:
            enrichment_db.record_website(conn, result.company_id, result.discovery.domain,
                                         result.discovery.source, result.discovery.confidence)
        if result.crawl is not None or result.extraction.source != "deterministic":
            enrichment_db.record_firmographics(conn, result.company_id, result.extraction.profile.model_dump(),
                                               source=result.extraction.source, tenant_id=tenant_id,
                                               run_id=run_id, crawled_at=now)


def _persist_error(db: Database, tenant_id: int, run_id, company_id: int, error: Exception) -> None:
    record = enrichment_db.CompanyRunRecord(
        company_id=company_id, outcome="error", degraded=True, reasons=[f"{type(error).__name__}: {error}"[:500]],
        signals={}, extraction={}, corpus_hash=None, corpus=None)
    with db.tenant(tenant_id) as conn:
        enrichment_db.save_company_run(conn, tenant_id, run_id, record)


async def _crawl(stage_parts: Mapping[str, Any], companies: list[dict], db: Database, tenant_id: int, run_id,
                 persist_corpus: bool, log) -> None:
    settings = stage_parts["settings"]
    llm: LLMResource = stage_parts["llm"]
    async with polite_crawler(settings, db.target.app_url) as crawler, llm.chat_session() as chat_model:
        fallback = TavilyFallback(stage_parts["tavily_client"], stage_parts["budget"], settings.tavily_max_queries)
        stage = CrawlStage(
            crawler=crawler, discovery=WebsiteDiscovery(crawler, fallback), fallback=fallback,
            extractor=Extractor(chat_model, llm.model, db, stage_parts["budget"], settings.openai_daily_tokens_cap,
                                max_output_tokens=EXTRACTION_MAX_OUTPUT_TOKENS),
            corpus_char_limit=settings.extract_corpus_char_limit)

        async def on_done(result: CompanyCrawl) -> None:
            await asyncio.to_thread(_persist, db, tenant_id, run_id, result, persist_corpus)

        async def on_error(company: Mapping[str, Any], error: Exception) -> None:
            log.error("crawl of company %s failed: %s: %s", company["company_id"], type(error).__name__, error)
            await asyncio.to_thread(_persist_error, db, tenant_id, run_id, company["company_id"], error)

        await stage.enrich_many(companies, on_done=on_done, on_error=on_error)


def summarize(records: list[dict], usage: dict[str, dict[str, int]]) -> dict[str, Any]:
    outcomes = Counter(r["outcome"] for r in records)
    extraction_sources = Counter((r["extraction"] or {}).get("source", "none") for r in records)
    pages = sum((r["signals"].get("crawl") or {}).get("pages_fetched", 0) for r in records)
    return {
        "dagster/row_count": len(records),
        "pages_fetched": pages,
        "blocked": sum(n for o, n in outcomes.items() if o.startswith("crawl_")),
        "thin": outcomes.get("thin", 0),
        "fallbacks": outcomes.get("fallback", 0),
        "no_website": outcomes.get("no_website", 0),
        "errors": outcomes.get("error", 0),
        "degraded": sum(1 for r in records if r["degraded"]),
        "extraction_sources": dict(extraction_sources),
        "tokens": usage.get("openai", {}).get("charged", 0),
        "tavily_queries": usage.get("tavily", {}).get("charged", 0),
        "outcomes": dict(outcomes),
    }


def _preview_rows(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        profile = (r["extraction"] or {}).get("profile") or {}
        domain = (r["signals"].get("domain") or {})
        rows.append({"company": r["name"], "domain": domain.get("value") or "-",
                     "via": domain.get("source") or "-", "outcome": r["outcome"],
                     "industry": profile.get("industry"), "employees": profile.get("employees_estimate"),
                     "extraction": (r["extraction"] or {}).get("source"),
                     "degraded": "; ".join(r["reasons"])[:120] or "-"})
    return rows


@dg.asset(partitions_def=tenant_day_partitions, group_name="nightly", deps=[daily_targets], kinds={"python"},
          retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
          description="Each target's website, crawl signals, corpus and AI-extracted profile.")
def crawl_corpus(context: dg.AssetExecutionContext, database: DatabaseResource, pipeline_settings: PipelineSettings,
                 tavily: TavilyResource, llm: LLMResource) -> dg.MaterializeResult:
    part = tenant_day(context)
    settings = pipeline_settings.get()
    db = database.db
    with db.tenant(part.tenant_id) as conn:
        manifest = targets_db.get_manifest(conn, part.tenant_id, part.run_date)
        if manifest is None:
            raise dg.Failure(f"no run manifest for {part.key}: materialize daily_targets first", allow_retries=False)
        done = enrichment_db.done_company_ids(conn, part.tenant_id, manifest.run_id)
        todo_ids = [cid for cid in manifest.selected_company_ids if cid not in done]
        companies = acra_db.companies_by_id(conn, todo_ids)
    budget = VendorBudget(db, part.tenant_id, manifest.run_id)
    tavily_client = tavily.with_settings(settings).client()
    parts = {"settings": settings, "budget": budget, "tavily_client": tavily_client,
             "llm": llm.with_settings(settings)}
    context.log.info("crawl_corpus %s: %d targets, %d already done in this run", part.key,
                     len(manifest.selected_company_ids), len(done))
    try:
        asyncio.run(_crawl(parts, [companies[cid] for cid in todo_ids], db, part.tenant_id, manifest.run_id,
                           settings.persist_crawl_corpus, context.log))
    finally:
        if tavily_client is not None:
            tavily_client.close()
    with db.tenant(part.tenant_id) as conn:
        records = enrichment_db.run_records(conn, part.tenant_id, manifest.run_id)
    usage = budget.usage()
    metadata = summarize(records, usage)
    with db.tenant(part.tenant_id) as conn:
        targets_db.record_step(conn, part.tenant_id, manifest.run_id, STEP,
                               {k: v for k, v in metadata.items() if k != "dagster/row_count"}, status="running")
    metadata.update({"resumed_from_earlier_attempt": len(done), "run_id": str(manifest.run_id),
                     "preview": preview(_preview_rows(records),
                                        ["company", "domain", "via", "outcome", "industry", "employees",
                                         "extraction", "degraded"])})
    return dg.MaterializeResult(metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                                          for k, v in metadata.items()})
