"""Helpers for stage tests: tenants, materializing a partition, reading its metadata."""
import dagster as dg

from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.definitions import default_resources
from nightly_pipeline.partitions import partition_key
from nightly_pipeline_sandbox.runner import ODOO_PASSWORD_ENV, ODOO_USER
from nightly_pipeline.settings_resource import PipelineSettings


def add_tenant(db, name: str, icp: dict, *, odoo_url: str = "http://127.0.0.1:9", odoo_db: str = "demo_software",
               daily_cap: int | None = None) -> int:
    with db.shared() as conn:
        tenant_id = tenants_db.register_tenant(conn, name, daily_cap)
    with db.tenant(tenant_id) as conn:
        tenants_db.upsert_odoo_connection(conn, tenants_db.OdooConnection(
            odoo_url, odoo_db, ODOO_USER, ODOO_PASSWORD_ENV, True))
        tenants_db.set_icp(conn, icp)
    return tenant_id


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
