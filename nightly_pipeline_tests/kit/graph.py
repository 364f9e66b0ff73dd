"""Materializing a partition of the graph as a run would, and reading its metadata."""
import dagster as dg

from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.definitions import default_resources
from nightly_pipeline.partitions import partition_key
from nightly_pipeline.settings_resource import PipelineSettings


def materialize(db_target, assets, tenant_id: int, day: str, **overrides: str) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(tenant_id)])
        result = dg.materialize(
            assets, instance=instance, partition_key=partition_key(day, tenant_id),
            resources=default_resources(PipelineSettings.configure_at_launch(overrides=overrides),
                                        DatabaseResource(database_url=db_target.app_url)))
    assert result.success
    return result


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}
