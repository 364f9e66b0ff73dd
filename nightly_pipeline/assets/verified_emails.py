"""Stage 6: tonight's contact addresses verified with ZeroBounce, in batches, within budget, cached.

valid → deliverable; catch-all and unknown → risky (never counted as valid); invalid, spamtrap,
abuse and do_not_mail → suppressed (never exported). No key, no budget or a vendor outage leaves
addresses unverified until the next night instead of failing the run; the next night verifies them
after its own (within its cap), and the Odoo sync then exports their contacts.
"""
import asyncio

import dagster as dg

from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets._night import night_stage, tonight
from nightly_pipeline.assets.contacts import contacts, preferred_titles
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.partitions import tenant_day_partitions
from nightly_pipeline.settings import SKIPPED
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.contacts import assign_primary_contacts
from nightly_pipeline.stages.verification import VerificationReport, verify_emails
from nightly_pipeline.vendors.zerobounce import NullZeroBounceClient, ZeroBounceResource


@dg.asset(partitions_def=tenant_day_partitions, deps=[contacts], kinds={"python"},
          retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
          description="Deliverability of tonight's contact addresses (ZeroBounce, cached).")
@night_stage
def verified_emails(context: dg.AssetExecutionContext, database: DatabaseResource,
                    pipeline_settings: PipelineSettings, zerobounce: ZeroBounceResource) -> dg.MaterializeResult:
    night = tonight(context, database, pipeline_settings)
    company_ids = night.company_ids
    with night.transaction() as conn:
        by_company = contacts_db.contacts_of_companies(conn, company_ids)
        titles = preferred_titles(tenants_db.get_icp(conn), night.settings.lusha_preferred_titles)
        tonight_emails = sorted({c.email for found in by_company.values() for c in found})
        # Earlier nights' addresses a ZeroBounce outage or throttle left unverified catch up here,
        # after tonight's and within the run's verification cap.
        earlier = contacts_db.unverified_addresses_elsewhere(
            conn, company_ids, night.settings.zerobounce_max_verifications - len(tonight_emails))
    emails = tonight_emails + earlier
    client = NullZeroBounceClient(SKIPPED) if night.settings.skips("zerobounce") else zerobounce.get_client()

    async def run() -> VerificationReport:
        async with client:
            return await verify_emails(emails, night, client)

    report = asyncio.run(run())
    # A primary found suppressed tonight gives way to the next best address.
    assign_primary_contacts(night, company_ids, titles)
    if night.settings.skips("zerobounce") and not any(SKIPPED in cause for cause in report.degradations):
        report.degradations.append(f"ZeroBounce {SKIPPED}")
    night.record_stage("verified_emails", report.to_dict(), report.degradations)
    with night.transaction() as conn:
        primary = contacts_db.primary_contacts(conn, company_ids)
        names = {cid: row.name for cid, row in acra_db.companies_by_id(conn, list(company_ids)).items()}
    rows = [{"company": names[cid], "primary contact": email or "-",
             "verification": report.policies.get(email, "unverified") if email else "-"}
            for cid in company_ids for email in [primary.get(cid)]]
    for cause in report.degradations:
        context.log.warning("verification degraded: %s", cause)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": report.requested,
        "cache_hits": report.cache_hits,
        "verified_now": report.verified,
        "unverified": report.unverified,
        "by_status": dg.MetadataValue.json(report.by_status),
        "by_policy": dg.MetadataValue.json(report.by_policy),
        "credits_charged": report.credits_charged,
        "batch_calls": report.batch_calls,
        "degradations": dg.MetadataValue.json(report.degradations),
        "preview": preview(rows, ["company", "primary contact", "verification"]),
    })
