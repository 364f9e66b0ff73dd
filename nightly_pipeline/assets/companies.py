"""Stage 1: registry rows new or changed in ACRA staging → normalized ``companies``.

ACRA data is shared by all tenants; the refresh is incremental (a watermark on staging's
``updated_at``), so each tenant's run pays only for what changed since any run last looked.
"""

import dagster as dg

from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.acra import normalize_many
from nightly_pipeline.partitions import tenant_day_partitions


@dg.asset(partitions_def=tenant_day_partitions, kinds={"postgres"},
          description="Normalized Singapore companies from ACRA staging (shared by all tenants).")
def companies(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    with database.db.shared() as conn:
        since = acra_db.get_watermark(conn, acra_db.COMPANIES_WATERMARK)
        rows, newest = acra_db.staging_rows_since(conn, since)
        records = list(normalize_many(rows))
        counts = acra_db.upsert_companies(conn, records, newest) if records else acra_db.UpsertCounts()
        if newest is not None:
            acra_db.set_watermark(conn, acra_db.COMPANIES_WATERMARK, newest)
        total = acra_db.count_companies(conn)
    context.log.info("companies: %d staging rows since %s; %s", len(rows), since, counts)
    return dg.MaterializeResult(metadata={
        "staging_rows_read": len(rows),
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "with_website_domain": sum(1 for r in records if r.website_domain),
        "dagster/row_count": total,
        "watermark": str(newest or since or "none"),
        "preview": preview([r.__dict__ for r in records],
                           ["uen", "name", "ssic_code", "incorporation_year", "is_live", "website_domain"]),
    })
