"""The code location loads, and the schedule and sensor ask for the right runs."""
import datetime as dt
import zoneinfo
from pathlib import Path

import dagster as dg
import pytest

from nightly_pipeline.definitions import defs
from nightly_pipeline.instance import render_instance_yaml
from nightly_pipeline.partitions import (
    InvalidTenantKey,
    partition_key,
    tenant_day_partitions,
)
from nightly_pipeline.schedules import build_nightly_schedule, nightly_run_requests
from nightly_pipeline.sensors import partition_changes
from nightly_pipeline.settings import load_settings

SGT = zoneinfo.ZoneInfo("Asia/Singapore")
ONE_AM = dt.datetime(2026, 6, 2, 1, 0, tzinfo=SGT)
EXPECTED_ASSETS = {"companies", "icp_candidates", "daily_targets", "crawl_corpus", "contacts", "verified_emails",
                   "lead_scores", "odoo_sync"}


def test_definitions_load_and_the_job_resolves():
    job = defs.resolve_job_def("nightly_job")
    assert job.executor_def is dg.in_process_executor
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert EXPECTED_ASSETS <= keys
    for key in keys:
        spec = defs.resolve_assets_def(key)
        assert spec.partitions_def == tenant_day_partitions
    assert [d.name for d in tenant_day_partitions.partitions_defs] == ["date", "tenant"]
    assert defs.resolve_schedule_def("nightly_per_tenant").execution_timezone == "Asia/Singapore"
    assert defs.resolve_sensor_def("tenant_registry")


def test_partition_keys_round_trip_and_reject_unparseable_tenants():
    assert str(partition_key("2026-06-01", 12)) == "2026-06-01|12"
    for bad in ("a|b", "a,b", "1...2", "0", "-3", "acme", ""):
        with pytest.raises(InvalidTenantKey):
            partition_key("2026-06-01", bad)


def test_one_run_per_tenant_at_one_am_singapore():
    requests = nightly_run_requests(["2", "10", "1"], ONE_AM, load_settings({}))
    assert [str(r.partition_key) for r in requests] == ["2026-06-02|1", "2026-06-02|2", "2026-06-02|10"]
    assert [r.tags["tenant"] for r in requests] == ["1", "2", "10"]
    assert len({r.run_key for r in requests}) == 3


def test_the_date_is_the_singapore_date_of_the_tick():
    utc_evening = dt.datetime(2026, 6, 1, 17, 0, tzinfo=dt.timezone.utc)  # 01:00 on 2 June in Singapore
    assert str(nightly_run_requests(["1"], utc_evening, load_settings({}))[0].partition_key) == "2026-06-02|1"


@pytest.mark.parametrize("env, expected", [
    ({"SCHED_TENANT_INCLUDE": "1,3"}, ["1", "3"]),
    ({"SCHED_TENANT_EXCLUDE": "2"}, ["1", "3"]),
    ({"SCHED_TENANT_INCLUDE": "4"}, []),
    ({"SCHED_ENABLED": "false"}, []),
])
def test_include_exclude_and_enabled(env, expected):
    result = nightly_run_requests(["1", "2", "3"], ONE_AM, load_settings(env))
    if not expected:
        assert isinstance(result, dg.SkipReason)
    else:
        assert [r.tags["tenant"] for r in result] == expected


def test_the_schedule_fires_at_the_configured_cron_through_dagster():
    schedule = build_nightly_schedule(load_settings({"SCHED_START_CRON": "30 2 * * *"}))
    assert schedule.cron_schedule == "30 2 * * *"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["7", "8"])
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=ONE_AM,
                                            repository_def=defs.get_repository_def())
        data = defs.resolve_schedule_def("nightly_per_tenant").evaluate_tick(context)
    assert [str(r.partition_key) for r in data.run_requests] == ["2026-06-02|7", "2026-06-02|8"]


def test_a_disabled_schedule_starts_stopped():
    assert build_nightly_schedule(load_settings({"SCHED_ENABLED": "false"})).default_status == \
        dg.DefaultScheduleStatus.STOPPED


def test_sensor_partition_changes():
    requests = partition_changes(active={"1", "3"}, known={"1", "2"})
    assert requests[0].partition_keys == ["3"] and isinstance(requests[0], dg.AddDynamicPartitionsRequest)
    assert requests[1].partition_keys == ["2"] and isinstance(requests[1], dg.DeleteDynamicPartitionsRequest)
    assert partition_changes({"1"}, {"1"}) == []


def test_the_shipped_dagster_yaml_is_what_the_cli_writes():
    shipped = (Path(__file__).resolve().parents[1] / "dagster.yaml").read_text()
    assert shipped == render_instance_yaml(load_settings({}))
    custom = render_instance_yaml(load_settings({"SCHED_TENANT_CONCURRENCY": "5"}))
    assert 'key: "dagster/partition/tenant"\n        limit: 5' in custom
