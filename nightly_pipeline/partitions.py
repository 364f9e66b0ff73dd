"""Partitions: date (daily, Asia/Singapore) × tenant (dynamic, ``tenants``)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

import dagster as dg

from nightly_pipeline.clock import TIMEZONE

TENANTS = "tenants"
# Integer ids only: Dagster accepts '|', ',' and '...' in dynamic keys and then cannot parse them back.
TENANT_KEY = re.compile(r"^[1-9][0-9]{0,9}$")

tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANTS)
# end_offset=1 makes today's date a valid partition, so the 01:00 run and `make demo` work on today.
date_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone=TIMEZONE, end_offset=1)
tenant_day_partitions = dg.MultiPartitionsDefinition({"date": date_partitions, "tenant": tenant_partitions})


class InvalidTenantKey(ValueError):
    pass


def tenant_key(tenant_id: int | str) -> str:
    key = str(tenant_id).strip()
    if not TENANT_KEY.match(key):
        raise InvalidTenantKey(f"tenant id must be a positive integer, got {tenant_id!r}")
    return key


def partition_key(run_date: dt.date | str, tenant_id: int | str) -> dg.MultiPartitionKey:
    day = run_date.isoformat() if isinstance(run_date, dt.date) else dt.date.fromisoformat(run_date).isoformat()
    return dg.MultiPartitionKey({"date": day, "tenant": tenant_key(tenant_id)})


@dataclasses.dataclass(frozen=True)
class TenantDay:
    tenant_id: int
    run_date: dt.date

    @property
    def key(self) -> str:
        return str(partition_key(self.run_date, self.tenant_id))


def tenant_day(context: dg.AssetExecutionContext) -> TenantDay:
    """The tenant and date of a run, also when it only carries the plain ``dagster/partition`` tag."""
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):
        key = tenant_day_partitions.get_partition_key_from_str(key)
    parts = key.keys_by_dimension
    return TenantDay(int(tenant_key(parts["tenant"])), dt.date.fromisoformat(parts["date"]))
