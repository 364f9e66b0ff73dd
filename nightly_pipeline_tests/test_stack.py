"""Four tenants' night on Dagster's distributed engines: PostgreSQL instance storage, the daemon and
the run queue, steps on two Celery workers started by `nightly-pipeline stack up`; the same
shortlists as the embedded default (SQLite instance, in-process executor) on an identical app
database; politeness held across the workers; nothing left running when the stack stops.

Needs the machine's PostgreSQL server (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379).
Without them the test is skipped, unless REQUIRE_DISTRIBUTED_SERVICES=1 (CI), which makes their
absence a failure.
"""
from __future__ import annotations

import os
from collections import defaultdict

import dagster as dg
import pytest

from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.settings import MIN_DOMAIN_INTERVAL_S
from nightly_pipeline_sandbox.runner import SandboxConfig
from nightly_pipeline_tests.kit import distributed as kit

pytestmark = pytest.mark.distributed
TENANTS = 4
TENANT_CONCURRENCY = 2
DAY = "2026-06-01"
ARRIVAL_JITTER_S = 0.02
WORKERS = 2
COMMON = {"SHORTLIST_DAILY_CAP": "5", "SCHED_TENANT_CONCURRENCY": str(TENANT_CONCURRENCY),
          "CRAWL_MAX_PAGES": "3"}


@pytest.fixture(scope="module")
def services() -> None:
    missing = kit.services_missing()
    if missing:
        message = "the distributed test needs " + " and ".join(missing)
        if os.environ.get("REQUIRE_DISTRIBUTED_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


def sandbox_config() -> SandboxConfig:
    # No drawn web latency: the sandbox logs a request after its latency, so with none the log's
    # times are arrival times and the gaps between them are the crawler's.
    return SandboxConfig(web_latency_scale=0, vendor_latency_scale=0)


@pytest.fixture(scope="module")
def embedded_night(services, tmp_path_factory) -> kit.NightResult:
    """The same night on the default: SQLite instance under DAGSTER_HOME, steps in the run's process."""
    return kit.run_night(tmp_path_factory.mktemp("embedded"), TENANTS, DAY, dict(COMMON), workers=0,
                         config=sandbox_config())


@pytest.fixture(scope="module")
def distributed_night(services, tmp_path_factory) -> kit.NightResult:
    with kit.fresh_database("np_dist_dagster") as dagster_db:
        extra = {**COMMON, "DAGSTER_EXECUTOR": "celery",
                 "DAGSTER_PG_URL": kit.database_url(kit.SERVER_URL, dagster_db, driver="psycopg2"),
                 "DAGSTER_CELERY_BROKER_URL": f"{kit.REDIS_URL}/{kit.BROKER_DB}",
                 "DAGSTER_CELERY_BACKEND_URL": f"{kit.REDIS_URL}/{kit.BACKEND_DB}"}
        home = tmp_path_factory.mktemp("distributed")
        result = kit.run_night(home, TENANTS, DAY, extra, workers=WORKERS, config=sandbox_config())
        assert "postgres" in (home / "dagster.yaml").read_text()
        return result


def test_a_backfill_runs_on_two_celery_workers_over_postgres_storage(distributed_night):
    night = distributed_night
    assert len(night.runs) == TENANTS
    statuses = {r.dagster_run.tags["dagster/partition/tenant"]: r.dagster_run.status for r in night.runs}
    assert set(statuses.values()) == {dg.DagsterRunStatus.SUCCESS}, (statuses, night.stack_output[-3000:])
    # Every tenant's steps went to Celery, and each worker took at least one tenant's work.
    assert set(night.workers_by_tenant) == set(statuses)
    workers = set().union(*night.workers_by_tenant.values())
    assert {w.split("@")[0] for w in workers} == {f"nightly-worker-{n}" for n in range(1, WORKERS + 1)}


def test_the_tenant_concurrency_limit_held_on_the_queue(distributed_night):
    assert kit.max_started_at_once(distributed_night.runs) <= TENANT_CONCURRENCY


def test_the_shortlists_equal_those_of_the_embedded_default(distributed_night, embedded_night):
    assert {r.dagster_run.status for r in embedded_night.runs} == {dg.DagsterRunStatus.SUCCESS}
    assert all(rows for rows in distributed_night.shortlists.values())
    assert list(distributed_night.shortlists.values()) == list(embedded_night.shortlists.values())


def test_stopping_the_stack_leaves_no_process_behind(distributed_night, embedded_night):
    for night in (distributed_night, embedded_night):
        assert night.stack_code == 0, night.stack_output[-3000:]
        assert night.process_groups and night.survivors == []


def test_politeness_held_at_the_sandbox_across_both_workers(distributed_night):
    # The per-domain gate must hold across processes (a shared gate in the app database); with
    # per-process gates two workers crawling one domain could come closer than the interval.
    times = defaultdict(list)
    for record in distributed_night.request_log:
        if not record.path.startswith("/_sandbox"):
            times[registrable_domain(record.host)].append(record.at)
    assert times
    gaps = {domain: min(b - a for a, b in zip(sorted(ts), sorted(ts)[1:]))
            for domain, ts in times.items() if len(ts) > 1}
    # Loopback delivery and the server's own handling shift an arrival by milliseconds.
    too_close = {d: round(g, 3) for d, g in gaps.items() if g < MIN_DOMAIN_INTERVAL_S - ARRIVAL_JITTER_S}
    assert too_close == {}
