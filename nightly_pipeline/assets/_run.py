"""What every stage after daily_targets needs first: the night's manifest."""
import dagster as dg

from nightly_pipeline.db import Database
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.partitions import TenantDay


def night_manifest(db: Database, part: TenantDay) -> targets_db.Manifest:
    with db.tenant(part.tenant_id) as conn:
        manifest = targets_db.get_manifest(conn, part.tenant_id, part.run_date)
    if manifest is None:
        raise dg.Failure(f"no run manifest for {part.key}: materialize daily_targets first", allow_retries=False)
    return manifest


def record_stage(db: Database, part: TenantDay, manifest: targets_db.Manifest, step: str, counters: dict,
                 degradations: list[str]) -> None:
    with db.tenant(part.tenant_id) as conn:
        targets_db.record_step(conn, part.tenant_id, manifest.run_id, step, counters, status="running")
        targets_db.record_degradations(conn, part.tenant_id, manifest.run_id, step, degradations)
