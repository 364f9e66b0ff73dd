"""companies → icp_candidates → daily_targets, materialized by Dagster against the real database."""
import datetime as dt
from importlib import resources

import dagster as dg
import pytest

from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import reports
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.database import administrator_transaction
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.domain.acra import parse_acra_text
from nightly_pipeline.partitions import partition_key
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
ASSETS = [companies, icp_candidates, daily_targets]
SOFTWARE_ICP = {"ssic_codes": ["62011", "62021"], "incorporation_year": {"min": 2000}}


def sample_rows():
    text = (resources.files("nightly_pipeline") / "data" / "acra_sample.csv").read_text(encoding="utf-8")
    return parse_acra_text(text).rows


@pytest.fixture
def loaded(db):
    with db.shared() as conn:
        acra_db.upsert_staging(conn, sample_rows())
    return db


def run(db_target, tenant_id, day, *, cap=None, selection=ASSETS):
    overrides = {"SHORTLIST_DAILY_CAP": str(cap)} if cap else {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant_id)])
        result = dg.materialize(selection, instance=instance, partition_key=partition_key(day, tenant_id),
                                resources={"database": DatabaseResource(database_url=db_target.app_url),
                                           "pipeline_settings": PipelineSettings(overrides=overrides)})
    assert result.success
    return {node: result.asset_materializations_for_node(node)[0].metadata
            for node in ("companies", "icp_candidates", "daily_targets")
            if any(a.key.to_user_string() == node for a in selection)}


def test_the_first_three_stages_for_one_tenant(loaded, db_target):
    tenant = add_tenant(loaded, "acme", SOFTWARE_ICP)
    md = run(db_target, tenant, dt.date(2026, 6, 1), cap=5)
    assert md["companies"]["inserted"].value == len(sample_rows())
    assert md["companies"]["with_website_domain"].value > 0
    candidates = md["icp_candidates"]["dagster/row_count"].value
    assert candidates > 5
    assert md["daily_targets"]["dagster/row_count"].value == 5
    assert md["daily_targets"]["manifest"].value == "created"
    assert "never targeted before" in md["daily_targets"]["preview"].value
    with loaded.tenant(tenant) as conn:
        rows = reports.daily_targets(conn, dt.date(2026, 6, 1))
        chosen = acra_db.companies_by_id(conn, [r["company_id"] for r in rows])
    assert all(c.ssic_code in ("62011", "62021") and c.is_live and c.incorporation_year >= 2000
               for c in chosen.values())


def test_a_rerun_reuses_the_manifest_and_refreshes_nothing(loaded, db_target):
    tenant = add_tenant(loaded, "acme", SOFTWARE_ICP)
    first = run(db_target, tenant, dt.date(2026, 6, 1), cap=4)
    again = run(db_target, tenant, dt.date(2026, 6, 1), cap=10)
    assert again["companies"]["staging_rows_read"].value == 0
    assert again["daily_targets"]["manifest"].value == "reused"
    assert again["daily_targets"]["run_id"].value == first["daily_targets"]["run_id"].value
    assert again["daily_targets"]["dagster/row_count"].value == 4


def test_later_nights_prefer_companies_never_targeted(loaded, db_target):
    tenant = add_tenant(loaded, "acme", SOFTWARE_ICP)
    run(db_target, tenant, dt.date(2026, 6, 1), cap=3)
    run(db_target, tenant, dt.date(2026, 6, 2), cap=3)
    with loaded.tenant(tenant) as conn:
        night1 = {r["company_id"] for r in reports.daily_targets(conn, dt.date(2026, 6, 1))}
        night2 = {r["company_id"] for r in reports.daily_targets(conn, dt.date(2026, 6, 2))}
    assert len(night1) == len(night2) == 3
    assert not night1 & night2


def test_tenants_get_their_own_icp_and_per_tenant_cap(loaded, db_target):
    software = add_tenant(loaded, "software house", SOFTWARE_ICP)
    logistics = add_tenant(loaded, "freight", {"ssic_codes": ["52291"]}, daily_cap=2)
    run(db_target, software, dt.date(2026, 6, 1))
    md = run(db_target, logistics, dt.date(2026, 6, 1))
    assert md["daily_targets"]["dagster/row_count"].value == 2
    with loaded.tenant(logistics) as conn:
        ssic = {c.ssic_code for c in acra_db.companies_by_id(
            conn, [r["company_id"] for r in reports.daily_targets(conn, dt.date(2026, 6, 1))]).values()}
        others = conn.execute("SELECT count(*) AS n FROM icp_candidate_companies WHERE tenant_id = %s",
                              (software,)).fetchone()["n"]
    assert ssic == {"52291"}
    assert others == 0


def test_a_changed_acra_row_is_updated_on_the_next_refresh(loaded, db_target):
    tenant = add_tenant(loaded, "acme", None)
    run(db_target, tenant, dt.date(2026, 6, 1), selection=[companies])
    row = sample_rows()[0]
    changed = parse_acra_text(
        "uen,entity_name,entity_type_description,entity_status_description,registration_incorporation_date,"
        "primary_ssic_code,primary_ssic_description,postal_code,street_name,website\n"
        f"{row.uen},RENAMED HOLDINGS PTE. LTD.,Local Company,Struck Off,2010-01-01,62011,SOFTWARE,123456,X,\n").rows
    with loaded.shared() as conn:
        assert acra_db.upsert_staging(conn, changed).updated == 1
    md = run(db_target, tenant, dt.date(2026, 6, 2), selection=[companies])
    assert (md["companies"]["staging_rows_read"].value, md["companies"]["updated"].value) == (1, 1)
    with loaded.shared() as conn:
        company = conn.execute("SELECT name, is_live FROM companies WHERE uen = %s", (row.uen,)).fetchone()
    assert company == {"name": "Renamed Holdings Pte. Ltd.", "is_live": False}


def test_a_disabled_tenant_fails_clearly(loaded, db_target):
    tenant = add_tenant(loaded, "gone", SOFTWARE_ICP)
    with administrator_transaction(db_target) as conn:
        tenants_db.set_status(conn, tenant, "disabled")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant)])
        result = dg.materialize(ASSETS, instance=instance, partition_key=partition_key("2026-06-01", tenant),
                                resources={"database": DatabaseResource(database_url=db_target.app_url),
                                           "pipeline_settings": PipelineSettings()}, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert f"tenant {tenant} is disabled" in failure.step_failure_data.error.message
