"""What every stage after daily_targets starts from: the tenant's night for the run's partition."""
import functools
from collections.abc import Callable
from typing import Any

import dagster as dg

from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.partitions import tenant_day
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.night import ManifestMissing, TenantNight


def tonight(context: dg.AssetExecutionContext, database: DatabaseResource,
            pipeline_settings: PipelineSettings) -> TenantNight:
    """The night of the partition's tenant and date; without a manifest the step fails, not retried."""
    part = tenant_day(context)
    try:
        return TenantNight.load(database.db, part.tenant_id, part.run_date, pipeline_settings.settings)
    except ManifestMissing:
        raise dg.Failure(f"no run manifest for {part.key}: materialize daily_targets first",
                         allow_retries=False) from None


def night_stage(compute: Callable[..., Any]) -> Callable[..., Any]:
    """Run an asset's body as a stage of the partition's night (``TenantNight.stage``): timed, its end
    and error recorded in ``enrichment_run_stages``, the night ``running`` meanwhile and ``failed``
    when the body raises. Goes under ``@dg.asset``; the asset's parameters stay what Dagster sees."""
    @functools.wraps(compute)
    def run_as_stage(context: dg.AssetExecutionContext, **resources: Any) -> Any:
        night = tonight(context, resources["database"], resources["pipeline_settings"])
        with night.stage(compute.__name__, context.run.run_id):
            return compute(context, **resources)

    return run_as_stage
