"""A tenant's night for stage tests: a real manifest in the database and settings from given variables."""
from __future__ import annotations

import datetime as dt

from nightly_pipeline.db import Database
from nightly_pipeline.db.targets import create_manifest
from nightly_pipeline.domain.targets import Target, Tier
from nightly_pipeline.settings import load_settings
from nightly_pipeline.stages.night import TenantNight

RUN_DATE = dt.date(2026, 6, 1)


def new_night(db: Database, tenant_id: int, company_ids: list[int] = (), *, run_date: dt.date = RUN_DATE,
              **env: str) -> TenantNight:
    """A night with its run manifest (``company_ids`` as the targets) and settings from ``env`` alone."""
    targets = [Target(company_id=cid, tier=Tier.NEVER_SEEN, match_score=1.0, last_targeted_on=None)
               for cid in company_ids]
    with db.tenant(tenant_id) as conn:
        manifest = create_manifest(conn, run_date, targets, caps={}, budget_snapshot={}, dagster_run_id=None)
    return TenantNight.of(db, manifest, load_settings(env))
