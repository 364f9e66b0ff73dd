"""The code location: it assembles; every stage computes in its own module."""
from typing import Any

import dagster as dg

from nightly_pipeline import assets
from nightly_pipeline.asset_checks import night_checks
from nightly_pipeline.assets import NIGHTLY_GROUP
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.jobs import nightly_job
from nightly_pipeline.vendors.odoo import OdooResource
from nightly_pipeline.schedules import build_nightly_schedule
from nightly_pipeline.sensors import (night_cancelled_sensor, night_failed_sensor, night_watch_sensor,
                                      tenant_registry_sensor)
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.lusha import LushaResource
from nightly_pipeline.vendors.openai import OpenAIResource
from nightly_pipeline.vendors.tavily import TavilyResource
from nightly_pipeline.vendors.zerobounce import ZeroBounceResource

nightly_assets = dg.load_assets_from_package_module(assets, group_name=NIGHTLY_GROUP)


def default_resources(settings: Any = None, database: DatabaseResource | None = None) -> dict[str, Any]:
    """Every resource, configured from the environment when a run starts (nothing baked in).

    ``settings`` is ``PipelineSettings.configure_at_launch(...)``: configured when a run launches
    (non-secret overrides may come with it), and one resource that the vendor resources share, so a
    run reads its settings once.
    """
    settings = settings or PipelineSettings.configure_at_launch()
    return {"database": database or DatabaseResource(), "pipeline_settings": settings,
            "openai": OpenAIResource(settings=settings), "tavily": TavilyResource(settings=settings),
            "lusha": LushaResource(settings=settings), "zerobounce": ZeroBounceResource(settings=settings),
            "odoo": OdooResource()}


defs = dg.Definitions(
    assets=nightly_assets,
    asset_checks=night_checks,
    jobs=[nightly_job],
    schedules=[build_nightly_schedule()],
    sensors=[tenant_registry_sensor, night_failed_sensor, night_cancelled_sensor, night_watch_sensor],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
