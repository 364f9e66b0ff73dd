"""The admin API's routes, their authorization and the audit trail.

Every route but /healthz needs a bearer token. Roles nest (viewer < operator < admin); a token
bound to a tenant reads that tenant's data only through its tenant-scoped transactions and may name
no other tenant. Every change and every refusal lands in ``api_audit``.
"""

import dataclasses
import datetime as dt
import logging
import uuid
from typing import Annotated, Any

import dagster as dg
import psycopg
from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import PoolTimeout

from nightly_pipeline.api import models
from nightly_pipeline.api import tokens
from nightly_pipeline.api.tokens import Principal, TokenRequestError
from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.db import Database, DatabaseError
from nightly_pipeline.db import admin_api as admin_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.launch import InvalidNight, LaunchError, NightLauncher, check_night, night_of_run
from nightly_pipeline.report import render_shortlist_page
from nightly_pipeline.run_report import night_report, night_reports
from nightly_pipeline.schedules import chosen_tenants
from nightly_pipeline.settings import Settings

log = logging.getLogger(__name__)
audit_log = logging.getLogger("nightly_pipeline.api.audit")

MAX_INT = 2_147_483_647
WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}
UNAVAILABLE = (DatabaseError, psycopg.OperationalError, PoolTimeout)

TenantQuery = Annotated[int | None, Query(ge=1, le=MAX_INT, description="a tenant id; default: every tenant "
                                                                         "the token may see")]
DateQuery = Annotated[dt.date | None, Query(description="YYYY-MM-DD, default: today in Singapore")]


@dataclasses.dataclass
class ApiServices:
    settings: Settings
    db: Database
    instance: dg.DagsterInstance
    launcher: NightLauncher


class Refusal(Exception):
    """A request the API turns down; the handler records it in the audit trail and answers it."""

    def __init__(self, status_code: int, detail: str, outcome: str, *, tenant: int | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status_code, self.detail, self.outcome = status_code, detail, outcome
        self.tenant, self.headers, self.extra = tenant, headers, extra or {}


def _invalid(field: str, message: str, given: object) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message,
                                    "input": str(given)}])


def _queued(run) -> models.QueuedNight:
    return models.QueuedNight(tenant_id=run.tenant_id, run_date=run.run_date, partition_key=run.partition_key,
                              run_id=run.run_id, status=run.status)


def create_app(services: ApiServices) -> FastAPI:
    app = FastAPI(
        title="nightly_pipeline admin API",
        version="1",
        description="Kick off and watch tenant nights. Authenticate with `Authorization: Bearer <token>`; "
                    "tokens come from `nightly-pipeline api token create`.")
    bearer = HTTPBearer(auto_error=False, description="a token from `nightly-pipeline api token create`")
    db, settings = services.db, services.settings

    # -- audit -------------------------------------------------------------------------------------
    def requested_tenant(request: Request) -> int | None:
        tenant = getattr(request.state, "tenant", None)
        if tenant is not None:
            return tenant
        raw = request.query_params.get("tenant_id", "")
        return int(raw) if raw.isdigit() and 0 < int(raw) <= MAX_INT else None

    def audit(request: Request, outcome: str, http_status: int, *, tenant: int | None = None,
              detail: str = "") -> None:
        principal: Principal | None = getattr(request.state, "principal", None)
        claimed: admin_db.TokenRecord | None = getattr(request.state, "claimed", None)
        who = principal or claimed
        entry = admin_db.AuditEntry(
            action=getattr(request.state, "action", None) or f"{request.method} {request.url.path}",
            outcome=outcome, token_id=who.token_id if who else None, token_name=who.name if who else None,
            role=who.role if who else None, tenant=tenant if tenant is not None else requested_tenant(request),
            http_status=http_status, detail=detail, client=request.client.host if request.client else None)
        audit_log.info("%s %s token=%s role=%s tenant=%s -> %s %s", entry.action, entry.outcome,
                       entry.token_name or "-", entry.role or "-", entry.tenant or "-", http_status, detail)
        try:
            with db.shared() as conn:
                admin_db.record_audit(conn, entry)
        except UNAVAILABLE as exc:
            log.error("could not record the audit entry for %s (%s): %s", entry.action, entry.outcome,
                      type(exc).__name__)

    @app.exception_handler(Refusal)
    def refused(request: Request, exc: Refusal) -> JSONResponse:
        audit(request, exc.outcome, exc.status_code, tenant=exc.tenant, detail=exc.detail)
        return JSONResponse({"detail": exc.detail, **jsonable_encoder(exc.extra)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # Where and what, never the values given (a misplaced secret must not reach the trail).
        summary = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
        audit(request, "invalid", 422, detail=summary)
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(DatabaseError)
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: database unavailable (%s)", request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "the database is unavailable; try again later"}, status_code=503)

    # -- authorization -----------------------------------------------------------------------------
    def authorized(action: str, role: str):
        def dependency(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
            request.state.action = action
            if credentials is None:
                raise Refusal(401, "a bearer token is required (Authorization: Bearer <token>)", "unauthenticated",
                              headers=WWW_AUTHENTICATE)
            record = tokens.authenticate(db, credentials.credentials)
            if record is None or not record.active:
                request.state.claimed = record
                raise Refusal(401, "the token is not valid", "revoked_token" if record else "bad_token",
                              headers=WWW_AUTHENTICATE)
            principal = Principal(record.token_id, record.name, record.role, record.tenant_id)
            request.state.principal = principal
            if not principal.may(role):
                raise Refusal(403, f"the {principal.role} role may not do this ({action} needs {role})",
                              "forbidden_role")
            return principal
        return dependency

    def confine(principal: Principal, tenant_id: int | None) -> None:
        """The same answer whether or not the tenant exists, so a bound token learns nothing of others."""
        if tenant_id is not None and not principal.sees(tenant_id):
            raise Refusal(403, "this token may not act for that tenant", "forbidden_tenant", tenant=tenant_id)

    # -- health ------------------------------------------------------------------------------------
    @app.get("/healthz", response_model=models.Health, tags=["health"],
             responses={503: {"model": models.Health}})
    def healthz() -> JSONResponse:
        """Whether the database, the Dagster instance and the code location can be reached (no auth)."""
        checks = {"database": "ok", "dagster_instance": "ok", "code_location": "ok"}
        try:
            with db.pool.connection(timeout=5) as conn:
                admin_db.ping(conn)
        except Exception as exc:  # noqa: BLE001 - any failure means unreachable; only its type is logged
            log.warning("healthz: database unreachable (%s)", type(exc).__name__)
            checks["database"] = "unreachable"
        try:
            services.instance.get_run_records(limit=1)
        except Exception as exc:  # noqa: BLE001
            log.warning("healthz: Dagster instance unreachable (%s)", type(exc).__name__)
            checks["dagster_instance"] = "unreachable"
        try:
            loaded = services.launcher.code_location_loaded()
        except Exception as exc:  # noqa: BLE001
            log.warning("healthz: code location unavailable (%s)", type(exc).__name__)
            loaded = False
        if not loaded:
            checks["code_location"] = "unavailable"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "unavailable", **checks},
                            status_code=200 if healthy else 503)

    # -- runs --------------------------------------------------------------------------------------
    @app.post("/admin/runs/nightly", status_code=202, tags=["runs"],
              response_model=models.QueuedNight | models.SubmittedNights,
              responses={401: {"model": models.Problem}, 403: {"model": models.Problem},
                         404: {"model": models.Problem}, 409: {"model": models.AlreadyActive},
                         429: {"model": models.Problem}, 503: {"model": models.Problem}})
    def submit_nightly(request: Request, principal: Annotated[Principal, Depends(authorized("runs.submit", "operator"))],
                       tenant_id: TenantQuery = None, date: DateQuery = None):
        """Queue a tenant's night (the whole graph) in the Dagster run queue.

        With `tenant_id`: that tenant, 202 with the run id, or 409 with the run already queued or
        running. Without: every schedulable tenant the token may see, narrowed by
        SCHED_TENANT_INCLUDE/EXCLUDE as the nightly schedule does. dagster.yaml's tag limits still
        decide when each run starts.
        """
        confine(principal, tenant_id)
        run_date = date or today_in_singapore()
        try:
            check_night(run_date)
        except InvalidNight as exc:
            raise _invalid("date", str(exc), run_date) from None
        with db.shared() as conn:
            wait = admin_db.reserve_submission(conn, principal.token_id, settings.api_submissions_per_minute)
        if wait is not None:
            seconds = max(1, int(wait + 0.999))
            raise Refusal(429, f"this token may submit {settings.api_submissions_per_minute} times a minute; "
                               f"retry in {seconds} s", "rate_limited", tenant=tenant_id,
                          headers={"Retry-After": str(seconds)})
        if tenant_id is not None:
            return submit_one(request, principal, tenant_id, run_date)
        return submit_all(request, principal, run_date)

    def submit_one(request: Request, principal: Principal, tenant_id: int, run_date: dt.date):
        with db.tenant(tenant_id) as conn:
            try:
                tenant = tenants_db.get_tenant(conn)
            except tenants_db.TenantNotFound:
                raise Refusal(404, f"no tenant {tenant_id}", "not_found", tenant=tenant_id) from None
        if not tenant.schedulable:
            raise Refusal(409, f"tenant {tenant_id} is disabled or has no active Odoo connection",
                          "not_schedulable", tenant=tenant_id)
        try:
            run = services.launcher.submit(db, tenant_id, run_date, requested_by=principal.label)
        except LaunchError as exc:
            raise Refusal(503, str(exc), "error", tenant=tenant_id) from None
        if not run.created:
            detail = f"the night {run.partition_key} already has a run {run.status.lower()}: {run.run_id}"
            raise Refusal(409, detail, "conflict", tenant=tenant_id,
                          extra=_queued(run).model_dump(mode="json"))
        audit(request, "accepted", 202, tenant=tenant_id, detail=f"queued {run.partition_key} as {run.run_id}")
        return _queued(run)

    def submit_all(request: Request, principal: Principal, run_date: dt.date):
        if principal.tenant_id is not None:
            with db.tenant(principal.tenant_id) as conn:
                visible = [tenants_db.get_tenant(conn)]
        else:
            with db.shared() as conn:
                visible = tenants_db.directory(conn)
        keys = chosen_tenants([str(t.tenant_id) for t in visible if t.schedulable], settings)
        result = models.SubmittedNights(run_date=run_date, queued=[], already_active=[], failed=[])
        for key in keys:
            tenant_id = int(key)
            try:
                run = services.launcher.submit(db, tenant_id, run_date, requested_by=principal.label)
            except LaunchError as exc:
                audit(request, "error", 503, tenant=tenant_id, detail=str(exc))
                result.failed.append(models.FailedNight(tenant_id=tenant_id, detail=str(exc)))
                continue
            if run.created:
                audit(request, "accepted", 202, tenant=tenant_id, detail=f"queued {run.partition_key} as {run.run_id}")
                result.queued.append(_queued(run))
            else:
                audit(request, "conflict", 202, tenant=tenant_id,
                      detail=f"{run.partition_key} already has run {run.run_id} {run.status}")
                result.already_active.append(_queued(run))
        if not keys:
            audit(request, "accepted", 202, detail="no schedulable tenant to run")
        if result.failed and not result.queued and not result.already_active:
            return JSONResponse(result.model_dump(mode="json"), status_code=503)
        return result

    @app.get("/admin/runs", response_model=list[models.Night], tags=["runs"],
             responses={401: {"model": models.Problem}, 403: {"model": models.Problem},
                        404: {"model": models.Problem}})
    def list_nights(principal: Annotated[Principal, Depends(authorized("runs.list", "viewer"))],
                    date: DateQuery = None, tenant_id: TenantQuery = None):
        """Each tenant-night of a date: status, stage durations, counts, degradations and spend."""
        confine(principal, tenant_id)
        run_date = date or today_in_singapore()
        wanted = tenant_id or principal.tenant_id
        try:
            return night_reports(db, services.instance, settings, run_date, [wanted] if wanted else None)
        except tenants_db.TenantNotFound:
            raise Refusal(404, f"no tenant {wanted}", "not_found", tenant=wanted) from None

    @app.get("/admin/runs/{run_id}", response_model=models.RunDetail, tags=["runs"],
             responses={401: {"model": models.Problem}, 404: {"model": models.Problem}})
    def run_detail(principal: Annotated[Principal, Depends(authorized("runs.get", "viewer"))],
                   run_id: Annotated[uuid.UUID, Path(description="a Dagster run id")]):
        """A Dagster run's status and the tenant-night it belongs to."""
        record = services.instance.get_run_record_by_id(str(run_id))
        night = night_of_run(record.dagster_run) if record else None
        # Another tenant's run reads exactly like one that does not exist.
        if night is None or not principal.sees(night[0]):
            raise Refusal(404, f"no tenant-night run {run_id}", "not_found")
        tenant_id, run_date = night
        run = record.dagster_run
        try:
            report = night_report(db, services.instance, settings, tenant_id, run_date)
        except tenants_db.TenantNotFound:
            report = None
        stamp = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat() if t else None  # noqa: E731
        return models.RunDetail(
            run_id=run.run_id, status=run.status.value, job_name=run.job_name,
            partition_key=f"{run_date.isoformat()}|{tenant_id}", tenant_id=tenant_id, run_date=run_date,
            requested_by=run.tags.get("nightly_pipeline/requested_by"),
            created_at=record.create_timestamp.isoformat() if record.create_timestamp else None,
            started_at=stamp(record.start_time), finished_at=stamp(record.end_time), night=report)

    @app.get("/admin/shortlist/{tenant_id}", response_class=HTMLResponse, tags=["runs"],
             responses={401: {"model": models.Problem}, 403: {"model": models.Problem},
                        404: {"model": models.Problem}})
    def shortlist_page(principal: Annotated[Principal, Depends(authorized("shortlist.page", "viewer"))],
                       tenant_id: Annotated[int, Path(ge=1, le=MAX_INT, description="a tenant id")],
                       date: DateQuery = None) -> HTMLResponse:
        """The night's shortlist as the same self-contained page `nightly-pipeline report` writes."""
        confine(principal, tenant_id)
        run_date = date or today_in_singapore()
        try:
            page = render_shortlist_page(db, tenant_id, run_date, unit_prices=settings.vendor_unit_costs)
        except tenants_db.TenantNotFound:
            raise Refusal(404, f"no tenant {tenant_id}", "not_found", tenant=tenant_id) from None
        # The page fetches nothing; the policy makes a browser hold it to that.
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                                      "img-src data:; base-uri 'none'; form-action 'none'",
                                           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

    # -- tokens and audit (admin) -----------------------------------------------------------------
    def token_info(record: admin_db.TokenRecord) -> models.TokenInfo:
        return models.TokenInfo(name=record.name, role=record.role, tenant_id=record.tenant_id,
                                created_by=record.created_by, created_at=record.created_at,
                                last_used_at=record.last_used_at, revoked_at=record.revoked_at)

    @app.get("/admin/tokens", response_model=list[models.TokenInfo], tags=["tokens"])
    def list_tokens(principal: Annotated[Principal, Depends(authorized("tokens.list", "admin"))],
                    include_revoked: bool = False):
        """Every token's name, role, tenant and use; never a token or its digest."""
        with db.shared() as conn:
            return [token_info(r) for r in admin_db.list_tokens(conn, include_revoked=include_revoked)]

    @app.post("/admin/tokens", status_code=201, response_model=models.TokenCreated, tags=["tokens"],
              responses={409: {"model": models.Problem}})
    def create_token(request: Request, body: models.TokenRequest,
                     principal: Annotated[Principal, Depends(authorized("tokens.create", "admin"))]):
        """Issue a token; the response is the only place it ever appears."""
        request.state.tenant = body.tenant_id
        try:
            record, token = tokens.issue_token(db, body.name, body.role, body.tenant_id, principal.label)
        except TokenRequestError as exc:
            raise Refusal(422, str(exc), "invalid", tenant=body.tenant_id) from None
        except admin_db.TokenNameTaken as exc:
            raise Refusal(409, str(exc), "conflict", tenant=body.tenant_id) from None
        except admin_db.UnknownTenant as exc:
            raise Refusal(422, str(exc), "invalid", tenant=body.tenant_id) from None
        audit(request, "created", 201, tenant=body.tenant_id, detail=f"token {record.name} ({record.role})")
        return models.TokenCreated(**token_info(record).model_dump(), token=token)

    @app.delete("/admin/tokens/{name}", response_model=models.TokenInfo, tags=["tokens"],
                responses={404: {"model": models.Problem}})
    def revoke_token(request: Request, name: str,
                     principal: Annotated[Principal, Depends(authorized("tokens.revoke", "admin"))]):
        """Revoke the active token of that name; requests with it get 401 from now on."""
        with db.shared() as conn:
            try:
                record = admin_db.revoke_token(conn, name)
            except admin_db.TokenNotFound as exc:
                raise Refusal(404, str(exc), "not_found") from None
        audit(request, "revoked", 200, tenant=record.tenant_id, detail=f"token {record.name}")
        return token_info(record)

    @app.get("/admin/audit", response_model=list[models.AuditRecord], tags=["audit"])
    def audit_trail(principal: Annotated[Principal, Depends(authorized("audit.list", "admin"))],
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                    action: Annotated[str | None, Query(max_length=64)] = None,
                    token_name: Annotated[str | None, Query(max_length=63)] = None):
        """The newest audit entries first."""
        with db.shared() as conn:
            return admin_db.audit_trail(conn, limit=limit, action=action, token_name=token_name)

    return app
