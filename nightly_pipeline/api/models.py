"""Request and response bodies of the admin API (they are also its OpenAPI schema at /docs)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nightly_pipeline.api.tokens import TOKEN_NAME

Role = Literal["viewer", "operator", "admin"]


class Problem(BaseModel):
    detail: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    dagster_instance: Literal["ok", "unreachable"]
    code_location: Literal["ok", "unavailable"]


class QueuedNight(BaseModel):
    tenant_id: int
    run_date: dt.date
    partition_key: str = Field(description="YYYY-MM-DD|TENANT_ID")
    run_id: str = Field(description="the Dagster run id")
    status: str = Field(description="the Dagster run status, QUEUED when just submitted")


class AlreadyActive(QueuedNight):
    detail: str


class FailedNight(BaseModel):
    tenant_id: int
    detail: str


class SubmittedNights(BaseModel):
    run_date: dt.date
    queued: list[QueuedNight]
    already_active: list[QueuedNight] = Field(description="nights with a run already queued or running")
    failed: list[FailedNight]


class Stage(BaseModel):
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    status: str | None


class VendorSpend(BaseModel):
    calls: int
    units: int = Field(description="units charged: queries, credits, verifications or tokens")
    cost: float | None = Field(description="units × VENDOR_UNIT_COSTS, when a price is configured")


class NightFailures(BaseModel):
    crawl_errors: int
    odoo_errors: int
    failed_stages: list[str]


class Night(BaseModel):
    tenant_id: int
    tenant_name: str
    run_date: dt.date
    partition_key: str
    status: Literal["not_started", "queued", "running", "succeeded", "partial", "failed"]
    error_summary: str | None
    manifest_id: str | None
    manifest_status: str | None
    started_at: str | None
    finished_at: str | None
    dagster_run_id: str | None
    dagster_status: str | None
    dagster_runs: int
    stages: dict[str, Stage]
    targets: int | None
    shortlisted: int
    leads_created: int | None
    leads_in_odoo: int
    degradations: list[dict[str, Any]]
    failures: NightFailures
    spend: dict[str, VendorSpend]
    cost_total: float | None
    cost_per_shortlisted_lead: float | None


class RunDetail(BaseModel):
    run_id: str
    status: str = Field(description="the Dagster run status")
    job_name: str
    partition_key: str
    tenant_id: int
    run_date: dt.date
    requested_by: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    night: Night | None


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOKEN_NAME.pattern, description="unique among active tokens")
    role: Role
    tenant_id: int | None = Field(None, ge=1, le=2_147_483_647, description="bind the token to this tenant")


class TokenInfo(BaseModel):
    name: str
    role: Role
    tenant_id: int | None
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenInfo):
    token: str = Field(description="shown this once; only its SHA-256 digest is stored")


class AuditRecord(BaseModel):
    audit_id: int
    at: dt.datetime
    token_name: str | None
    role: str | None
    action: str
    tenant: int | None
    outcome: str
    http_status: int | None
    detail: str
    client: str | None
