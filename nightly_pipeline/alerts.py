"""Alerts about a tenant's night: POSTed as JSON to ALERT_WEBHOOK_URL, once per night and outcome.

A night that ends ``failed`` or ``partial``, or that is not finished by NIGHT_SLA (Singapore time on
the night's date), is sent as a Slack-compatible body (``text``) with the night's fields beside it.
Whoever notices the outcome first (the stage that finished the night, the run failure sensor, the
alert sensor's sweep) claims the alert in ``night_alerts`` before sending, so a second observer or a
second sensor tick sends nothing; an alert that could not be delivered is released for a later tick.
Everything sent is redacted: no vendor key, database or webhook URL, or tenant Odoo password.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
from collections.abc import Iterable
from typing import Any

import httpx
import tenacity

from nightly_pipeline.clock import TIMEZONE
from nightly_pipeline.db import Database
from nightly_pipeline.db import night_stages as stages_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.settings import Settings

log = logging.getLogger(__name__)

ALERTED_STATUSES = ("failed", "partial")
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER_S = 60.0
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@")
_SECRET_QUERY = re.compile(r"(?i)\b(api_?key|apikey|token|password|secret|key)=([^&\s]+)")
_SECRET_HEADER = re.compile(r"(?i)\b(authorization|api_key|x-api-key)(\"?\s*[:=]\s*\"?)(bearer\s+)?[^\s\",};&]+")
MASK = "***"


class AlertNotDelivered(RuntimeError):
    """The webhook refused the alert, or could not be reached, on every attempt."""


def redact(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """``text`` without credentials: URL user-info, key-like query parameters and headers, and each of
    ``secrets`` (exact values, longest first) replaced by ``***``."""
    if text is None:
        return None
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _SECRET_QUERY.sub(rf"\1={MASK}", text)
    return _SECRET_HEADER.sub(rf"\1\2{MASK}", text)


def known_secrets(settings: Settings, odoo_password_envs: Iterable[str] = ()) -> list[str]:
    """Every secret value this process holds that an error message might echo."""
    values = [field.get_secret_value() for field in (
        settings.openai_api_key, settings.tavily_api_key, settings.lusha_api_key, settings.zerobounce_api_key,
        settings.database_url, settings.database_admin_url, settings.alert_webhook_url) if field is not None]
    values += [os.environ[name] for name in odoo_password_envs if os.environ.get(name)]
    return values


@dataclasses.dataclass(frozen=True)
class NightAlert:
    tenant_id: int
    tenant_name: str
    run_date: dt.date
    outcome: str  # failed, partial or sla_missed
    status: str
    error_summary: str | None
    stage: str | None

    def body(self, secrets: Iterable[str] = ()) -> dict[str, Any]:
        secrets = list(secrets)
        summary = redact(self.error_summary, secrets)
        if self.outcome == "sla_missed":
            headline = f"night of {self.run_date} not finished by its SLA (status {self.status})"
        else:
            headline = f"night of {self.run_date} ended {self.status}"
        where = f" at stage {self.stage}" if self.stage else ""
        text = f"nightly_pipeline: tenant {self.tenant_id} ({self.tenant_name}) {headline}{where}"
        if summary:
            text += f": {summary}"
        return {"text": redact(text, secrets), "tenant_id": self.tenant_id,
                "tenant_name": redact(self.tenant_name, secrets), "run_date": self.run_date.isoformat(),
                "status": self.status, "outcome": self.outcome, "error_summary": summary, "stage": self.stage}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"webhook answered HTTP {response.status_code}")
        self.response = response


def _wait(backoff: tenacity.wait.wait_base):
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableStatus) and (after := _retry_after(error.response)) is not None:
            return after
        return backoff(state)
    return wait


def post_alert(url: str, body: dict[str, Any], *, initial_backoff_s: float = 1.0, timeout_s: float = 10.0) -> None:
    """POST ``body`` to the webhook: at most three attempts, exponential backoff with jitter between
    them, or the server's Retry-After; :class:`AlertNotDelivered` when none got a 2xx."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(MAX_ATTEMPTS),
        wait=_wait(tenacity.wait_exponential_jitter(initial=initial_backoff_s, max=30, jitter=initial_backoff_s)),
        retry=tenacity.retry_if_exception_type((_RetryableStatus, httpx.TransportError)),
        reraise=True)
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            for attempt in retrying:
                with attempt:
                    response = client.post(url, json=body)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _RetryableStatus(response)
                    if response.status_code >= 300:
                        raise AlertNotDelivered(f"webhook answered HTTP {response.status_code}")
    except _RetryableStatus as exc:
        raise AlertNotDelivered(f"{exc} after {MAX_ATTEMPTS} attempts") from None
    except httpx.TransportError as exc:
        raise AlertNotDelivered(f"webhook unreachable after {MAX_ATTEMPTS} attempts: {type(exc).__name__}") from None


def send_once(db: Database, settings: Settings, alert: NightAlert, *, initial_backoff_s: float = 1.0) -> bool:
    """Send ``alert`` unless this night's alert for its outcome was claimed already; whether it was sent.

    Without ALERT_WEBHOOK_URL nothing is sent and nothing recorded.
    """
    if settings.alert_webhook_url is None:
        return False
    with db.tenant(alert.tenant_id) as conn:
        if not stages_db.claim_alert(conn, alert.run_date, alert.outcome):
            return False
        connection = tenants_db.get_odoo_connection(conn)
    secrets = known_secrets(settings, [connection.password_env] if connection else [])
    try:
        post_alert(settings.alert_webhook_url.get_secret_value(), alert.body(secrets),
                   initial_backoff_s=initial_backoff_s)
    except AlertNotDelivered as exc:
        log.warning("alert for tenant %s night %s (%s) not delivered: %s", alert.tenant_id, alert.run_date,
                    alert.outcome, exc)
        with db.tenant(alert.tenant_id) as conn:
            stages_db.release_alert(conn, alert.run_date, alert.outcome)
        return False
    with db.tenant(alert.tenant_id) as conn:
        stages_db.alert_sent(conn, alert.run_date, alert.outcome)
    return True


def night_alert(db: Database, tenant_id: int, run_date: dt.date, outcome: str | None = None) -> NightAlert | None:
    """The alert a night's recorded state calls for: its final status when ``failed`` or ``partial``
    (or ``outcome`` when given, e.g. ``sla_missed``); None when it calls for none."""
    with db.tenant(tenant_id) as conn:
        tenant = tenants_db.get_tenant(conn)
        state = stages_db.night_state(conn, run_date)
        if state is None and outcome != "sla_missed":
            return None
        recorded = stages_db.stages(conn, state.run_id) if state is not None else []
    status = state.status if state else "not_started"
    # The stage to blame: the last that failed, or for a late night the one still running.
    blamed = [s.stage for s in recorded
              if s.status == "failed" and status == "failed" or s.status == "running" and outcome == "sla_missed"]
    stage = blamed[-1] if blamed else None
    if outcome is None:
        if status not in ALERTED_STATUSES:
            return None
        outcome = status
    return NightAlert(tenant_id, tenant.name, run_date, outcome, status,
                      state.error_summary if state else None, stage)


def alert_night(db: Database, settings: Settings, tenant_id: int, run_date: dt.date, **kwargs: Any) -> bool:
    """Send the alert the night's final status calls for, once; whether one was sent now."""
    alert = night_alert(db, tenant_id, run_date)
    return alert is not None and send_once(db, settings, alert, **kwargs)


def sla_deadline(settings: Settings, run_date: dt.date) -> dt.datetime:
    """When the night of ``run_date`` should be finished: NIGHT_SLA on that date, Singapore time."""
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(run_date, settings.night_sla, tzinfo=ZoneInfo(TIMEZONE))


def sla_missed(settings: Settings, finished_at: dt.datetime | None, run_date: dt.date, now: dt.datetime) -> bool:
    deadline = sla_deadline(settings, run_date)
    return now >= deadline and (finished_at is None or finished_at > deadline)
