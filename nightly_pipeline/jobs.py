"""The nightly job: the whole graph for one tenant and date, executed in process.

The multiprocess executor costs ~3 s of worker start-up per step on our machines; parallelism
comes from async work inside steps and from several tenant runs at once.
"""
import dagster as dg

from nightly_pipeline.assets import NIGHTLY_GROUP
from nightly_pipeline.partitions import tenant_day_partitions

nightly_job = dg.define_asset_job(
    "nightly_job",
    selection=dg.AssetSelection.groups(NIGHTLY_GROUP),
    partitions_def=tenant_day_partitions,
    executor_def=dg.in_process_executor,
    description="Every stage for one tenant and date: ACRA refresh → … → Odoo sync.",
)
