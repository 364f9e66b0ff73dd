"""Keeps the ``tenants`` dynamic partitions in step with the active tenants of the app database."""

import dagster as dg

from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.jobs import nightly_job
from nightly_pipeline.partitions import TENANTS, tenant_partitions


def partition_changes(active: set[str], known: set[str]) -> list:
    requests = []
    if added := sorted(active - known, key=int):
        requests.append(tenant_partitions.build_add_request(added))
    if removed := sorted(known - active, key=lambda k: (not k.isdigit(), k)):
        requests.append(tenant_partitions.build_delete_request(removed))
    return requests


@dg.sensor(name="tenant_registry", job=nightly_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Registers a partition per active tenant with an active Odoo connection; drops the rest.")
def tenant_registry_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource) -> dg.SensorResult:
    with database.db.shared() as conn:
        active = {str(t.tenant_id) for t in tenants_db.directory(conn) if t.schedulable}
    known = set(context.instance.get_dynamic_partitions(TENANTS))
    requests = partition_changes(active, known)
    if not requests:
        return dg.SensorResult(skip_reason=f"{len(active)} active tenants, all registered")
    return dg.SensorResult(dynamic_partitions_requests=requests)
