"""The Dagster instance folder (``DAGSTER_HOME``) and its ``dagster.yaml``."""
from __future__ import annotations

import os
from pathlib import Path

from nightly_pipeline.settings import Settings

INSTANCE_YAML = """\
# Dagster instance settings for nightly_pipeline (written by `nightly-pipeline`; edit the
# SCHED_TENANT_CONCURRENCY environment variable rather than this file).
telemetry:
  enabled: false

concurrency:
  runs:
    max_concurrent_runs: {max_runs}
    tag_concurrency_limits:
      # At most SCHED_TENANT_CONCURRENCY tenant runs at once (schedule, backfill or CLI)...
      - key: "dagster/partition/tenant"
        limit: {tenant_concurrency}
      # ...and never two runs of the same tenant (a nightly run and a backfill of it, say).
      - key: "dagster/partition/tenant"
        value:
          applyLimitPerUniqueValue: true
        limit: 1

# The daemon fails a run stuck starting or cancelling (its worker died), so the night_failed and
# night_cancelled sensors mark its tenant-night failed; a run killed mid-step is caught by the
# night_watch sensor, which checks the worker process itself (the default launcher cannot).
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  poll_interval_seconds: 60

run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false

{storage}"""


SQLITE_STORAGE = """\
# Storage: SQLite files under DAGSTER_HOME (one machine). Set DAGSTER_PG_URL to keep runs, events
# and schedules in PostgreSQL, which every host of a deployment shares (README: Scaling out).
"""

# The URL stays in the environment: every process that opens the instance (daemon, webserver,
# run workers, Celery workers) reads DAGSTER_PG_URL itself, and no password lands in this file.
POSTGRES_STORAGE = """\
# Storage: runs, event logs and schedules in PostgreSQL (DAGSTER_PG_URL, a postgresql+psycopg2://
# URL: dagster-postgres speaks psycopg2), shared by every host of the deployment.
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
"""


def render_instance_yaml(settings: Settings) -> str:
    concurrency = settings.sched_tenant_concurrency
    storage = POSTGRES_STORAGE if settings.dagster_pg_url is not None else SQLITE_STORAGE
    return INSTANCE_YAML.format(tenant_concurrency=concurrency, max_runs=max(10, concurrency), storage=storage)


def ensure_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with a dagster.yaml (unless the operator wrote their own) and export it."""
    home = Path(settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    rendered = render_instance_yaml(settings)
    if not config.exists() or config.read_text().startswith(INSTANCE_YAML.splitlines()[0]):
        if not config.exists() or config.read_text() != rendered:
            config.write_text(rendered)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
