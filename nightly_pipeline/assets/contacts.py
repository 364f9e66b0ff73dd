"""Stage 5: people to write to for each target, from its site and, when the site names nobody, Lusha.

Lusha lookups are batched across companies (a search names many domains, an enrich call takes the
ids of one search), stay within LUSHA_MAX_CONTACT_LOOKUPS for the run and are cached per domain for 30
days; contacts are one row per (tenant, company, email) and re-runs update them.
"""
import asyncio

import dagster as dg

from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets._night import night_stage, tonight
from nightly_pipeline.assets.crawl_corpus import crawl_corpus
from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.icp import parse_icp
from nightly_pipeline.partitions import tenant_day_partitions
from nightly_pipeline.settings import SKIPPED
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.contacts import ContactsReport, find_contacts
from nightly_pipeline.vendors.lusha import LushaResource, NullLushaClient


def preferred_titles(icp_payload: dict | None, default: list[str]) -> list[str]:
    """The tenant's ICP titles win over LUSHA_PREFERRED_TITLES."""
    titles = parse_icp(icp_payload or {}).preferred_titles
    return list(titles) if titles else list(default)


@dg.asset(partitions_def=tenant_day_partitions, deps=[crawl_corpus], kinds={"python"},
          retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
          description="Contacts per target (site first, Lusha fallback) with a primary contact each.")
@night_stage
def contacts(context: dg.AssetExecutionContext, database: DatabaseResource, pipeline_settings: PipelineSettings,
             lusha: LushaResource) -> dg.MaterializeResult:
    night = tonight(context, database, pipeline_settings)
    with night.transaction() as conn:
        records = enrichment_db.run_records(conn, night.run_id)
        titles = preferred_titles(tenants_db.get_icp(conn), night.settings.lusha_preferred_titles)
    client = NullLushaClient(SKIPPED) if night.settings.skips("lusha") else lusha.get_client()

    async def run() -> ContactsReport:
        async with client:
            return await find_contacts(records, night, client, preferred_titles=titles)

    report = asyncio.run(run())
    if night.settings.skips("lusha") and not any(SKIPPED in cause for cause in report.degradations):
        report.degradations.append(f"Lusha {SKIPPED}")
    night.record_stage("contacts", report.to_dict(), report.degradations)
    with night.transaction() as conn:
        by_company = contacts_db.contacts_of_companies(conn, night.company_ids)
        primary = contacts_db.primary_contacts(conn, night.company_ids)
    names = {r.company_id: r.name for r in records}
    primaries = [{"company": names.get(company_id, company_id), "email": c.email, "name": c.full_name,
                  "title": c.title, "source": c.source}
                 for company_id, email in primary.items()
                 for c in by_company.get(company_id, []) if c.email == email]
    for cause in report.degradations:
        context.log.warning("contacts degraded: %s", cause)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sum(len(found) for found in by_company.values()),
        "contacts_by_source": dg.MetadataValue.json(report.contacts_by_source),
        "lusha_lookups": report.lusha_contacts_enriched,
        # Lusha's key limits count requests: searches (a page each) and enrich calls, for many companies each.
        "lusha_requests": report.lusha_searches + report.lusha_enrich_calls,
        "lusha_cache_hits": report.lusha_cache_hits,
        "lusha_cap_reached": report.cap_reached,
        "companies_without_contacts": report.companies_without_contacts,
        "primary_contacts": report.primary_contacts,
        "degradations": dg.MetadataValue.json(report.degradations),
        "preview": preview(primaries, ["company", "email", "name", "title", "source"]),
    })
