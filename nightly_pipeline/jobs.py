"""The nightly job: the whole graph for one tenant and date.

By default every step runs in the run's own process: the multiprocess executor costs ~3 s of
worker start-up per step on our machines, and parallelism comes from async work inside steps and
from several tenant runs at once. With DAGSTER_EXECUTOR=celery each step is a Celery task taken by
whichever `nightly-pipeline stack worker` is free, on this host or another (README: Scaling out).
"""
import os

import dagster as dg

from nightly_pipeline.assets import NIGHTLY_GROUP
from nightly_pipeline.partitions import tenant_day_partitions
from nightly_pipeline.settings import Settings, get_settings

BROKER_ENV = "DAGSTER_CELERY_BROKER_URL"
BACKEND_ENV = "DAGSTER_CELERY_BACKEND_URL"


def nightly_executor(settings: Settings | None = None) -> dg.ExecutorDefinition:
    settings = settings or get_settings()
    if settings.dagster_executor == "celery":
        from dagster_celery import celery_executor

        # Read from the environment when a run starts, so no broker password is stored with a run;
        # a process that loaded these definitions has them, the settings' defaults included.
        os.environ.setdefault(BROKER_ENV, settings.dagster_celery_broker_url)
        os.environ.setdefault(BACKEND_ENV, settings.dagster_celery_backend_url)
        return celery_executor.configured({"broker": {"env": BROKER_ENV}, "backend": {"env": BACKEND_ENV}},
                                          name="celery")
    return dg.in_process_executor


def build_nightly_job(settings: Settings | None = None):
    return dg.define_asset_job(
        "nightly_job",
        selection=dg.AssetSelection.groups(NIGHTLY_GROUP),
        partitions_def=tenant_day_partitions,
        executor_def=nightly_executor(settings),
        description="Every stage for one tenant and date: ACRA refresh → … → Odoo sync.",
    )


nightly_job = build_nightly_job()
