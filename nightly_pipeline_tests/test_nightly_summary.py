"""run_nightly's closing summary: the nights it ran, as `runs` prints them, and whether all finished."""
import datetime as dt

import pytest

from nightly_pipeline.db import night_stages as stages_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.nightly import PlannedRun, print_night_summary
from nightly_pipeline.settings import load_settings
from nightly_pipeline.stages.night import TenantNight

pytestmark = pytest.mark.database
DAY = dt.date(2026, 6, 1)


def a_night(db, name: str, settings) -> TenantNight:
    with db.shared() as conn:
        tenant = tenants_db.register_tenant(conn, name, None)
    with db.tenant(tenant) as conn:
        manifest = targets_db.create_manifest(conn, DAY, [], caps={}, budget_snapshot={}, dagster_run_id=None)
    return TenantNight.of(db, manifest, settings)


def test_the_summary_names_each_night_and_fails_when_one_failed(db, db_env, capsys):
    settings = load_settings()
    good, bad = a_night(db, "good", settings), a_night(db, "bad", settings)
    with good.stage("crawl_corpus"):
        good.record_stage("crawl_corpus", {"companies": 0}, [])
    assert good.finish_from_outcome() == "succeeded"
    with pytest.raises(RuntimeError), bad.stage("crawl_corpus"):
        raise RuntimeError("the crawler fell over")
    runs = [PlannedRun(good.tenant_id, "good", DAY), PlannedRun(bad.tenant_id, "bad", DAY)]
    assert print_night_summary(settings, runs) is False
    out = capsys.readouterr().out
    assert "succeeded" in out and "stage crawl_corpus failed: RuntimeError: the crawler fell over" in out
    assert f"tenant {good.tenant_id} stages" in out
    with bad.transaction() as conn:
        [stage] = stages_db.stages(conn, bad.run_id)
    assert (stage.status, stage.error) == ("failed", "RuntimeError: the crawler fell over")
    assert stage.finished_at >= stage.started_at
    assert print_night_summary(settings, runs[:1]) is True
