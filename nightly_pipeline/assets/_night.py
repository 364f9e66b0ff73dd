"""What every stage after daily_targets starts from: the tenant's night for the run's partition."""
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
