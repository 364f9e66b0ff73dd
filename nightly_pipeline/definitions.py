"""The code location: it assembles; every stage computes in its own module."""
import dagster as dg

from nightly_pipeline.assets import all_assets
from nightly_pipeline.jobs import nightly_job
from nightly_pipeline.resources import default_resources
from nightly_pipeline.schedules import build_nightly_schedule
from nightly_pipeline.sensors import tenant_registry_sensor

defs = dg.Definitions(
    assets=all_assets,
    jobs=[nightly_job],
    schedules=[build_nightly_schedule()],
    sensors=[tenant_registry_sensor],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
