"""Stage 2: the tenant's ICP applied to ``companies`` → ``icp_candidate_companies`` with reasons."""

import dagster as dg

from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets.companies import companies
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.icp import IcpError, match_companies, parse_icp
from nightly_pipeline.partitions import tenant_day, tenant_day_partitions


def _describe(reasons: tuple[dict, ...]) -> str:
    return "; ".join(f"{r['criterion']}={r.get('value')}" + (f" ~ {r['matched']}" if r.get("matched") else "")
                     for r in reasons)


@dg.asset(partitions_def=tenant_day_partitions, deps=[companies], kinds={"postgres"},
          description="Companies matching the tenant's ICP, with why each matched.")
def icp_candidates(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    part = tenant_day(context)
    with database.db.tenant(part.tenant_id) as conn:
        tenant = tenants_db.get_tenant(conn)
        if tenant.status != "active":
            raise dg.Failure(f"tenant {part.tenant_id} is {tenant.status}", allow_retries=False)
        payload = tenants_db.get_icp(conn)
        try:
            icp = parse_icp(payload or {})
        except IcpError as exc:
            raise dg.Failure(f"tenant {part.tenant_id}: stored ICP is invalid: {exc}", allow_retries=False) from exc
        matches = match_companies(icp, acra_db.company_facts(conn))
        counts = targets_db.replace_icp_candidates(conn, matches, part.run_date)
        names = acra_db.companies_by_id(conn, [m.company_id for m in matches[:25]])
    if payload is None:
        context.log.warning("tenant %s has no ICP; every live company matches", part.tenant_id)
    rows = [{"company": names[m.company_id].name, "uen": names[m.company_id].uen, "score": m.score,
             "why": _describe(m.reasons)} for m in matches[:25]]
    return dg.MaterializeResult(metadata={
        "tenant_id": part.tenant_id,
        "icp_configured": payload is not None,
        "dagster/row_count": counts.current,
        "added": counts.added,
        "removed": counts.removed,
        "preview": preview(rows, ["company", "uen", "score", "why"]),
    })
