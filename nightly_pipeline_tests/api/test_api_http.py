"""The admin API over real HTTP: roles, tenant binding, status codes, the queue, the audit trail."""
import datetime as dt

import dagster as dg
import pytest

from nightly_pipeline.db import admin_api as admin_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.database import administrator_transaction
from nightly_pipeline_tests.api.conftest import (
    DB_PASSWORD,
    EXCLUDED_TENANT,
    SECRETS,
    SUBMISSIONS_PER_MINUTE,
    add_tenant,
    issue,
)

pytestmark = pytest.mark.database
DAY = "2026-06-01"


def audit_rows(db) -> list[dict]:
    with db.shared() as conn:
        return list(reversed(admin_db.audit_trail(conn, limit=1000)))


def test_healthz_needs_no_token_and_names_no_details(api):
    response = api.client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "dagster_instance": "ok", "code_location": "ok"}


def test_no_token_a_bad_token_and_a_revoked_token_get_401(api, db):
    token = issue(db, "ops", "operator")
    assert api.client().get("/admin/runs").status_code == 401
    missing = api.client().post("/admin/runs/nightly", params={"tenant_id": 1})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert api.client("npa_not-a-token").get("/admin/runs").status_code == 401
    assert api.client(token).get("/admin/runs", params={"date": DAY}).status_code == 200
    with db.shared() as conn:
        admin_db.revoke_token(conn, "ops")
    revoked = api.client(token).get("/admin/runs", params={"date": DAY})
    assert revoked.status_code == 401 and revoked.json() == {"detail": "the token is not valid"}
    outcomes = [(r["action"], r["outcome"], r["token_name"], r["http_status"]) for r in audit_rows(db)]
    assert outcomes == [("runs.list", "unauthenticated", None, 401), ("runs.submit", "unauthenticated", None, 401),
                        ("runs.list", "bad_token", None, 401), ("runs.list", "revoked_token", "ops", 401)]


def test_roles_nest_viewer_reads_operator_submits_admin_manages_tokens(api, db, queue):
    tenant = add_tenant(db, "acme")
    viewer, operator, admin = issue(db, "v", "viewer"), issue(db, "o", "operator"), issue(db, "a", "admin")
    refused = api.client(viewer).post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
    assert refused.status_code == 403 and "needs operator" in refused.json()["detail"]
    assert queue.get_runs() == []
    assert api.client(viewer).get("/admin/runs", params={"date": DAY}).status_code == 200
    assert api.client(operator).get("/admin/tokens").status_code == 403
    assert api.client(operator).get("/admin/audit").status_code == 403
    assert api.client(admin).get("/admin/tokens").status_code == 200
    accepted = api.client(admin).post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
    assert accepted.status_code == 202
    forbidden = [(r["token_name"], r["role"], r["action"], r["outcome"]) for r in audit_rows(db)
                 if r["http_status"] == 403]
    assert forbidden == [("v", "viewer", "runs.submit", "forbidden_role"), ("o", "operator", "tokens.list",
                                                                            "forbidden_role"),
                         ("o", "operator", "audit.list", "forbidden_role")]


def test_a_kickoff_reaches_the_queue_with_the_partition_tags_and_a_second_one_gets_409(api, db, queue):
    tenant = add_tenant(db, "acme")
    operator = api.client(issue(db, "runbook", "operator"))
    first = operator.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
    assert first.status_code == 202
    body = first.json()
    assert body["partition_key"] == f"{DAY}|{tenant}" and body["status"] == "QUEUED"
    run = queue.get_run_by_id(body["run_id"])
    assert run.status == dg.DagsterRunStatus.QUEUED and run.job_name == "nightly_job"
    assert {k: run.tags[k] for k in ("tenant", "dagster/partition", "dagster/partition/date",
                                     "dagster/partition/tenant", "nightly_pipeline/requested_by")} == {
        "tenant": str(tenant), "dagster/partition": f"{DAY}|{tenant}", "dagster/partition/date": DAY,
        "dagster/partition/tenant": str(tenant), "nightly_pipeline/requested_by": "api:runbook"}
    assert queue.has_dynamic_partition("tenants", str(tenant))

    second = operator.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
    assert second.status_code == 409
    assert second.json()["run_id"] == body["run_id"] and "already has a run queued" in second.json()["detail"]
    assert len(queue.get_runs()) == 1
    other_day = operator.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": "2026-06-02"})
    assert other_day.status_code == 202 and other_day.json()["run_id"] != body["run_id"]

    detail = operator.get(f"/admin/runs/{body['run_id']}").json()
    assert (detail["status"], detail["tenant_id"], detail["run_date"], detail["requested_by"]) == \
        ("QUEUED", tenant, DAY, "api:runbook")
    assert detail["night"]["status"] == "queued" and detail["night"]["dagster_run_id"] == body["run_id"]
    submits = [(r["tenant"], r["outcome"], r["http_status"]) for r in audit_rows(db) if r["action"] == "runs.submit"]
    assert submits == [(tenant, "accepted", 202), (tenant, "conflict", 409), (tenant, "accepted", 202)]


def test_without_a_tenant_every_schedulable_tenant_is_queued_as_the_schedule_chooses(api, db, queue):
    ids = [add_tenant(db, name) for name in ("a", "b", "c", "d")]
    assert ids[2] == EXCLUDED_TENANT
    with administrator_transaction(db.target) as conn:
        tenants_db.set_status(conn, ids[3], "disabled")
    add_tenant(db, "no odoo", odoo_active=False)
    response = api.client(issue(db, "ops", "operator")).post("/admin/runs/nightly", params={"date": DAY})
    assert response.status_code == 202
    body = response.json()
    assert [q["tenant_id"] for q in body["queued"]] == ids[:2]
    assert body["already_active"] == [] and body["failed"] == []
    assert sorted(r.tags["tenant"] for r in queue.get_runs()) == [str(ids[0]), str(ids[1])]

    again = api.client(issue(db, "ops2", "operator")).post("/admin/runs/nightly", params={"date": DAY}).json()
    assert again["queued"] == [] and [a["run_id"] for a in again["already_active"]] == \
        [q["run_id"] for q in body["queued"]]


def test_a_tenant_that_cannot_run_is_refused_with_a_reason(api, db, queue):
    disabled = add_tenant(db, "gone")
    with administrator_transaction(db.target) as conn:
        tenants_db.set_status(conn, disabled, "disabled")
    operator = api.client(issue(db, "ops", "operator"))
    refused = operator.post("/admin/runs/nightly", params={"tenant_id": disabled, "date": DAY})
    assert refused.status_code == 409 and "disabled or has no active Odoo connection" in refused.json()["detail"]
    missing = operator.post("/admin/runs/nightly", params={"tenant_id": 999, "date": DAY})
    assert missing.status_code == 404 and missing.json() == {"detail": "no tenant 999"}
    assert operator.get("/admin/runs", params={"tenant_id": 999}).status_code == 404
    assert queue.get_runs() == []


def test_a_tenant_bound_token_sees_and_starts_only_its_tenant(api, db, queue):
    mine, other = add_tenant(db, "mine"), add_tenant(db, "other")
    theirs = api.client(issue(db, "theirs", "operator")).post(
        "/admin/runs/nightly", params={"tenant_id": other, "date": DAY}).json()
    bound = api.client(issue(db, "mine-ops", "operator", tenant_id=mine))

    for tenant in (other, 999):  # an existing tenant and one that does not exist answer alike
        response = bound.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
        assert response.status_code == 403
        assert response.json() == {"detail": "this token may not act for that tenant"}
        listing = bound.get("/admin/runs", params={"tenant_id": tenant, "date": DAY})
        assert listing.status_code == 403 and listing.json() == response.json()
    assert bound.get(f"/admin/runs/{theirs['run_id']}").status_code == 404

    everything = bound.post("/admin/runs/nightly", params={"date": DAY}).json()
    assert [q["tenant_id"] for q in everything["queued"]] == [mine]
    nights = bound.get("/admin/runs", params={"date": DAY}).json()
    assert [n["tenant_id"] for n in nights] == [mine] and nights[0]["status"] == "queued"
    unbound = api.client(issue(db, "all", "viewer")).get("/admin/runs", params={"date": DAY}).json()
    assert sorted(n["tenant_id"] for n in unbound) == [mine, other]
    refusals = [(r["token_name"], r["tenant"], r["outcome"]) for r in audit_rows(db) if r["http_status"] == 403]
    assert refusals == [("mine-ops", other, "forbidden_tenant"), ("mine-ops", other, "forbidden_tenant"),
                        ("mine-ops", 999, "forbidden_tenant"), ("mine-ops", 999, "forbidden_tenant")]


def test_a_tenant_bound_viewer_gets_its_shortlist_page_and_no_other(api, db, queue):
    mine, other = add_tenant(db, "mine"), add_tenant(db, "other")
    viewer = api.client(issue(db, "sdr", "viewer", tenant_id=mine))

    page = viewer.get(f"/admin/shortlist/{mine}", params={"date": DAY})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "Shortlist for mine" in page.text and "<script" not in page.text
    for tenant in (other, 999):  # an existing tenant and one that does not exist answer alike
        refused = viewer.get(f"/admin/shortlist/{tenant}", params={"date": DAY})
        assert refused.status_code == 403 and refused.json() == {"detail": "this token may not act for that tenant"}
    assert api.client(None).get(f"/admin/shortlist/{mine}").status_code == 401
    assert api.client(issue(db, "ops", "viewer")).get("/admin/shortlist/999").status_code == 404


def test_submissions_are_rate_limited_per_token_in_the_database(api, db, queue):
    tenant = add_tenant(db, "acme")
    busy, calm = api.client(issue(db, "busy", "operator")), api.client(issue(db, "calm", "operator"))
    codes = [busy.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY}).status_code
             for _ in range(SUBMISSIONS_PER_MINUTE + 1)]
    assert codes == [202] + [409] * (SUBMISSIONS_PER_MINUTE - 1) + [429]
    limited = busy.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY})
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert f"{SUBMISSIONS_PER_MINUTE} times a minute" in limited.json()["detail"]
    assert calm.post("/admin/runs/nightly", params={"tenant_id": tenant, "date": DAY}).status_code == 409
    assert [r["outcome"] for r in audit_rows(db) if r["token_name"] == "busy"][-2:] == ["rate_limited"] * 2


@pytest.mark.parametrize("params, where", [
    ({"tenant_id": "acme"}, ["query", "tenant_id"]),
    ({"tenant_id": 0}, ["query", "tenant_id"]),
    ({"tenant_id": 1, "date": "2026-13-01"}, ["query", "date"]),
    ({"tenant_id": 1, "date": "2025-12-31"}, ["query", "date"]),
    ({"tenant_id": 1, "date": (dt.date.today() + dt.timedelta(days=3)).isoformat()}, ["query", "date"]),
])
def test_bad_query_values_get_422_naming_the_value(api, db, queue, params, where):
    add_tenant(db, "acme")
    response = api.client(issue(db, "ops", "operator")).post("/admin/runs/nightly", params=params)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [where]
    assert [(r["outcome"], r["http_status"]) for r in audit_rows(db)] == [("invalid", 422)]
    assert queue.get_runs() == []


def test_run_ids_are_validated_and_unknown_runs_are_404(api, db):
    viewer = api.client(issue(db, "v", "viewer"))
    assert viewer.get("/admin/runs/not-a-run").status_code == 422
    assert viewer.get("/admin/runs/5f1c2a4e-0000-4000-8000-000000000000").status_code == 404


def test_admin_issues_lists_and_revokes_tokens_over_the_api(api, db, queue):
    tenant = add_tenant(db, "acme")
    admin = api.client(issue(db, "root", "admin"))
    created = admin.post("/admin/tokens", json={"name": "console", "role": "operator", "tenant_id": tenant})
    assert created.status_code == 201
    token = created.json()["token"]
    assert created.json()["tenant_id"] == tenant and token.startswith("npa_")
    assert api.client(token).post("/admin/runs/nightly", params={"date": DAY}).status_code == 202

    assert admin.post("/admin/tokens", json={"name": "console", "role": "viewer"}).status_code == 409
    assert admin.post("/admin/tokens", json={"name": "x", "role": "admin", "tenant_id": tenant}).status_code == 422
    assert admin.post("/admin/tokens", json={"name": "Bad Name", "role": "viewer"}).status_code == 422
    assert admin.post("/admin/tokens", json={"name": "y", "role": "root"}).status_code == 422
    assert admin.post("/admin/tokens", json={"name": "z", "role": "viewer", "extra": 1}).status_code == 422
    listed = admin.get("/admin/tokens").json()
    assert {t["name"]: t["role"] for t in listed} == {"console": "operator", "root": "admin"}
    assert all("token" not in t and token not in str(t) for t in listed)

    assert admin.delete("/admin/tokens/console").json()["revoked_at"] is not None
    assert api.client(token).get("/admin/runs").status_code == 401
    assert admin.delete("/admin/tokens/console").status_code == 404
    trail = admin.get("/admin/audit", params={"action": "tokens.create"}).json()
    assert [(t["outcome"], t["http_status"]) for t in reversed(trail)] == [
        ("created", 201), ("conflict", 409), ("invalid", 422), ("invalid", 422), ("invalid", 422), ("invalid", 422)]


def test_openapi_docs_are_served(api):
    assert api.client().get("/docs").status_code == 200
    paths = api.client().get("/openapi.json").json()["paths"]
    assert {"/healthz", "/admin/runs/nightly", "/admin/runs", "/admin/runs/{run_id}", "/admin/tokens",
            "/admin/audit"} <= set(paths)


def test_no_secret_in_any_response_or_log_line(api, db, queue):
    tenant = add_tenant(db, "acme")
    viewer, operator, admin = issue(db, "v", "viewer"), issue(db, "o", "operator"), issue(db, "a", "admin")
    exchanges = []
    for token, method, path, params in [
            (None, "GET", "/healthz", {}), (None, "GET", "/admin/runs", {}),
            ("npa_wrong", "GET", "/admin/runs", {}), (viewer, "POST", "/admin/runs/nightly", {"tenant_id": tenant}),
            (operator, "POST", "/admin/runs/nightly", {"tenant_id": tenant, "date": DAY}),
            (operator, "POST", "/admin/runs/nightly", {"tenant_id": tenant, "date": DAY}),
            (operator, "POST", "/admin/runs/nightly", {"tenant_id": "x"}),
            (operator, "GET", "/admin/runs", {"date": DAY}), (admin, "GET", "/admin/tokens", {}),
            (admin, "GET", "/admin/audit", {}), (admin, "GET", "/openapi.json", {})]:
        response = api.client(token).request(method, path, params=params)
        exchanges.append(f"{response.status_code} {response.headers} {response.text}")
    with db.shared() as conn:
        trail = str(admin_db.audit_trail(conn, limit=1000)) + str(admin_db.list_tokens(conn))
    everything = "\n".join(exchanges) + trail + api.log()
    secrets = [*SECRETS.values(), DB_PASSWORD, api.env["DATABASE_URL"], viewer, operator, admin]
    assert [s for s in secrets if s in everything] == []
    assert "accepted" in trail and "POST /admin/runs/nightly" in api.log()
