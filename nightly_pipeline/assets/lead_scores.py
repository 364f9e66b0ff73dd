"""Stage 7: explainable scores, a rationale each, and tonight's shortlist.

Features and a weighted score (weights overridable in the tenant's ICP) with the reasons behind it;
a rationale written by the model from those reasons only, cached by feature hash, or a template
sentence without key or budget; the top SHORTLIST_DAILY_CAP scores make the shortlist.
"""
import asyncio

import dagster as dg

from nightly_pipeline.assets._metadata import preview
from nightly_pipeline.assets._night import night_stage, tonight
from nightly_pipeline.assets.verified_emails import verified_emails
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.icp import IcpError, parse_icp
from nightly_pipeline.partitions import tenant_day_partitions
from nightly_pipeline.scoring.rationale import Rationale, RationaleWriter
from nightly_pipeline.scoring.score import Score, build_features, score
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.openai import OpenAIResource
from nightly_pipeline.vendors.paid_call import unavailable_reason


@dg.asset(partitions_def=tenant_day_partitions, deps=[verified_emails], kinds={"python"},
          description="Score, bucket, reasons and rationale per target; the shortlist.")
@night_stage
def lead_scores(context: dg.AssetExecutionContext, database: DatabaseResource, pipeline_settings: PipelineSettings,
                openai: OpenAIResource) -> dg.MaterializeResult:
    night = tonight(context, database, pipeline_settings)
    settings = night.settings
    with night.transaction() as conn:
        inputs = scores_db.scoring_inputs(conn, night.run_id)
        tenant = tenants_db.get_tenant(conn)
        try:
            icp = parse_icp(tenants_db.get_icp(conn) or {})
        except IcpError as exc:
            raise dg.Failure(f"tenant {night.tenant_id}: stored ICP is invalid: {exc}", allow_retries=False) from exc
    try:
        scored = []
        for item in inputs:
            features = build_features(item.company, icp, item.crawl, item.contacts, item.verification)
            scored.append((item, features, score(features, icp.score_weights, tenant_id=night.tenant_id,
                                                 high=settings.score_bucket_high,
                                                 medium=settings.score_bucket_medium)))
    except ValueError as exc:  # score_weights naming an unknown feature, say
        raise dg.Failure(f"tenant {night.tenant_id}: cannot score: {exc}", allow_retries=False) from exc
    chat = openai.get_client()

    night.share_limits("openai", chat)

    async def write_rationales() -> list[Rationale]:
        async with chat:
            writer = RationaleWriter(chat, night)
            gate = asyncio.Semaphore(settings.sched_company_concurrency)

            async def one(name: str, result: Score) -> Rationale:
                async with gate:
                    return await writer.write(name, result)

            return await asyncio.gather(*(one(item.company["name"], result) for item, _, result in scored))

    rationales = asyncio.run(write_rationales())
    cap = tenant.daily_cap or settings.daily_cap
    with night.transaction() as conn:
        for item, features, result in scored:
            scores_db.upsert_features(conn, item.company_id, night.run_date, features.model_dump(mode="json"),
                                      result.features_hash)
        scores_db.upsert_scores(conn, night.run_date, [
            scores_db.ScoreRow(item.company_id, result.value, result.bucket, result.reasons, rationale.text,
                               rationale.source, result.features_hash)
            for (item, _, result), rationale in zip(scored, rationales)])
        scores_db.record_contributions(conn, night.run_date,
                                       {item.company_id: result.contributions for item, _, result in scored})
        shortlisted = scores_db.mark_shortlist(conn, night.run_date, cap)
        rows = scores_db.scores_for(conn, night.run_date)
    sources = {s: sum(1 for r in rationales if r.source == s) for s in ("llm", "cache", "template")}
    buckets = {b: sum(1 for _, _, r in scored if r.bucket == b) for b in ("High", "Medium", "Low")}
    degradations = []
    rejected = [r for r in rationales if r.rejected]
    unwritten = sources["template"] - len(rejected)
    if unwritten:
        cause = unavailable_reason(chat) or "OpenAI token budget exhausted or the model failed"
        degradations.append(f"{unwritten} rationales use the template sentence: {cause}")
    if rejected:
        kinds = sorted({claim.split(" ", 1)[0] for r in rejected for claim in r.rejected})
        degradations.append(f"{len(rejected)} model rationales stated facts that are not among the reasons "
                            f"({', '.join(kinds)}) and were replaced by the template sentence")
    night.record_stage("lead_scores",
                       {"scored": len(scored), "shortlisted": len(shortlisted), "buckets": buckets,
                        "rationales": sources, "rationales_rejected": len(rejected),
                        "rationale_tokens": sum(r.tokens_used for r in rationales)},
                       degradations)
    table = [{"company": r["name"], "score": round(float(r["score"]), 3), "bucket": r["bucket"],
              "top reasons": ", ".join(x["feature"] for x in r["reasons"] if x["contribution"] > 0),
              "rationale": r["rationale"]} for r in rows if r["shortlisted"]]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(scored),
        "shortlisted": len(shortlisted),
        "buckets": dg.MetadataValue.json(buckets),
        "rationale_sources": dg.MetadataValue.json(sources),
        "rationale_tokens": sum(r.tokens_used for r in rationales),
        "shortlist": preview(table, ["company", "score", "bucket", "top reasons", "rationale"]),
    })
