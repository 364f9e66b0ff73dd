"""Alerts reach a real webhook on loopback once per night and outcome, with retries, and carry no secret."""
import datetime as dt

import pytest

from nightly_pipeline import alerts
from nightly_pipeline.db import night_stages as stages_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.settings import load_settings
from nightly_pipeline.stages.night import night_verdict
from nightly_pipeline_tests.kit.webhook import webhook_receiver

DAY = dt.date(2026, 6, 1)
BODY = {"text": "hello", "tenant_id": 1, "run_date": "2026-06-01", "status": "failed"}


def test_a_refused_post_is_retried_honouring_retry_after():
    with webhook_receiver() as receiver:
        receiver.answers = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
        alerts.post_alert(receiver.url, BODY, initial_backoff_s=0)
    assert receiver.bodies == [BODY] and len(receiver.raw) == 3


def test_three_refusals_give_up():
    with webhook_receiver() as receiver:
        receiver.answers = [(500, {})] * 4
        with pytest.raises(alerts.AlertNotDelivered, match="HTTP 500 after 3 attempts"):
            alerts.post_alert(receiver.url, BODY, initial_backoff_s=0)
    assert receiver.bodies == [] and len(receiver.raw) == 3


def test_a_client_error_is_not_retried():
    with webhook_receiver() as receiver:
        receiver.answers = [(404, {})]
        with pytest.raises(alerts.AlertNotDelivered, match="HTTP 404"):
            alerts.post_alert(receiver.url, BODY, initial_backoff_s=0)
    assert len(receiver.raw) == 1


def test_redaction_masks_credentials_keys_and_known_values():
    text = ("POST https://bot:hunter22@hooks.example/x?api_key=abc123&q=1 failed; "
            "Authorization: Bearer tok-999; lusha key sk-lusha-0001 leaked")
    redacted = alerts.redact(text, ["sk-lusha-0001"])
    for secret in ("hunter22", "bot:", "abc123", "tok-999", "sk-lusha-0001"):
        assert secret not in redacted
    assert "q=1" in redacted and "hooks.example" in redacted


def test_verdict_of_a_night():
    outcome = stages_db.NightOutcome
    assert night_verdict(outcome(0, 0, 0, ())) == ("succeeded", None)
    assert night_verdict(outcome(0, 0, 2, ())) == ("partial", "2 Odoo records failed; retried next run")
    assert night_verdict(outcome(1, 1, 0, ())) == ("partial", "1 companies failed to enrich; 1 degradations")
    assert night_verdict(outcome(0, 0, 0, ("crawl_corpus",))) == ("failed", "stage crawl_corpus failed")


def test_sla_is_six_in_singapore_on_the_nights_date():
    settings = load_settings({})
    deadline = alerts.sla_deadline(settings, DAY)
    assert deadline.astimezone(dt.timezone.utc) == dt.datetime(2026, 5, 31, 22, 0, tzinfo=dt.timezone.utc)
    assert not alerts.sla_missed(settings, None, DAY, deadline - dt.timedelta(minutes=1))
    assert alerts.sla_missed(settings, None, DAY, deadline)
    assert not alerts.sla_missed(settings, deadline - dt.timedelta(minutes=5), DAY, deadline)
    assert alerts.sla_missed(settings, deadline + dt.timedelta(minutes=5), DAY, deadline + dt.timedelta(hours=1))


@pytest.mark.database
def test_a_partial_night_is_alerted_once_without_secrets(db, monkeypatch):
    with db.shared() as conn:
        tenant = tenants_db.register_tenant(conn, "acme", None)
    monkeypatch.setenv("ACME_ODOO_PASSWORD", "odoo-pass-777")
    with db.tenant(tenant) as conn:
        tenants_db.upsert_odoo_connection(conn, tenants_db.OdooConnection(
            "http://127.0.0.1:9", "demo", "admin", "ACME_ODOO_PASSWORD", True))
        manifest = targets_db.create_manifest(conn, DAY, [], caps={}, budget_snapshot={}, dagster_run_id="r1")
        targets_db.finish_run(conn, manifest.run_id, "partial",
                              "Odoo at http://admin:odoo-pass-777@127.0.0.1:9 refused; key sk-tav-42")
    with webhook_receiver() as receiver:
        assert not alerts.alert_night(db, load_settings({}), tenant, DAY)  # no ALERT_WEBHOOK_URL: nothing
        settings = load_settings({"ALERT_WEBHOOK_URL": receiver.url, "TAVILY_API_KEY": "sk-tav-42"})
        assert alerts.alert_night(db, settings, tenant, DAY)
        assert not alerts.alert_night(db, settings, tenant, DAY)
    [body] = receiver.bodies
    assert {"text", "tenant_id", "run_date", "status", "error_summary", "stage"} <= set(body)
    assert (body["tenant_id"], body["run_date"], body["status"]) == (tenant, "2026-06-01", "partial")
    sent = b"".join(receiver.raw).decode()
    assert "odoo-pass-777" not in sent and "sk-tav-42" not in sent and "refused" in body["error_summary"]
    with db.tenant(tenant) as conn:
        assert stages_db.alerts(conn, DAY)["partial"] is not None


@pytest.mark.database
def test_an_undelivered_alert_is_released_for_the_next_tick(db):
    with db.shared() as conn:
        tenant = tenants_db.register_tenant(conn, "acme", None)
    with db.tenant(tenant) as conn:
        manifest = targets_db.create_manifest(conn, DAY, [], caps={}, budget_snapshot={}, dagster_run_id="r1")
        targets_db.finish_run(conn, manifest.run_id, "failed", "stage crawl_corpus failed: boom")
    with webhook_receiver() as receiver:
        settings = load_settings({"ALERT_WEBHOOK_URL": receiver.url})
        receiver.answers = [(503, {"Retry-After": "0"})] * 3
        assert not alerts.send_once(db, settings, alerts.night_alert(db, tenant, DAY), initial_backoff_s=0)
        assert alerts.send_once(db, settings, alerts.night_alert(db, tenant, DAY), initial_backoff_s=0)
    assert [b["status"] for b in receiver.bodies] == ["failed"]
