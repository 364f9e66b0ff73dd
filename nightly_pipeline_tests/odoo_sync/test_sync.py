"""The Odoo sync against the Odoo sandbox through the real odoorpc client: nothing is ever created
twice, failures stay per record, an outage fails the step with nothing logged, and the JSON-RPC
call count stays flat however many records are unchanged."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db.tenants import OdooConnection
from nightly_pipeline.scoring.score import build_features, score
from nightly_pipeline.odoo_sync import OdooSync, SyncContact, SyncRecord, SyncReport, sync_and_record
from nightly_pipeline.odoo_sync.records import MergeDecision
from nightly_pipeline.vendors.odoo import (
    OdooClient,
    OdooConfigError,
    OdooLoginError,
    OdooResource,
    OdooUnavailable,
    endpoint,
    masked_rpc_payload,
    password_from_env,
)
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.odoo import OdooServer
from nightly_pipeline_tests.kit.scoring import (
    CEO,
    INFO,
    SOFTWARE_ICP,
    company_row,
    crawl_row,
    create_run,
    insert_company,
    insert_contact,
    insert_verification,
    save_crawl,
)
from nightly_pipeline_tests.kit.tenants import register_tenant

pytestmark = pytest.mark.database

PASSWORD = "odoo-test-secret"
TENANT = 3
MIN_EXPORT = 0.66
RUN_DATE = dt.date(2026, 6, 1)


class SimulatedCrash(BaseException):
    """The process dying mid-sync: not an error the sync may catch."""


# -- fixtures and helpers --------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[OdooServer]:
    with serving(OdooServer()) as odoo_server:
        yield odoo_server
        odoo_server.set_outage("none")


@pytest.fixture
def odoo_db(server: OdooServer) -> str:
    name = f"tenant_{uuid.uuid4().hex[:8]}"
    server.add_database(name, {"admin": PASSWORD})
    return name


def connection(server: OdooServer, odoo_db: str) -> OdooConnection:
    return OdooConnection(url=server.url, db_name=odoo_db, username="admin", password_env="TEST_ODOO_PASSWORD",
                          active=True)


def connect(server: OdooServer, odoo_db: str) -> OdooClient:
    return OdooResource(timeout_s=10).connect(connection(server, odoo_db), PASSWORD)


def record(n: int, *, score: float = 0.8, bucket: str | None = None, contacts: tuple[SyncContact, ...] | None = None,
           domain: str | None = "default", name: str | None = None, uen: str | None = None) -> SyncRecord:
    bucket = bucket or ("High" if score >= 0.66 else "Medium" if score >= 0.33 else "Low")
    if contacts is None:
        contacts = (SyncContact(f"ceo@company{n}.sg", f"Chief {n}", "CEO", "+65 6000 00{n:02d}", True),)
    return SyncRecord(
        company_id=n, uen=uen or f"2020{n:05d}A", name=name or f"COMPANY {n} PTE. LTD.",
        domain=f"company{n}.sg" if domain == "default" else domain, street="1 ANSON ROAD", zip="079903",
        contacts=contacts, score=score, bucket=bucket,
        reasons=({"feature": "industry_match", "value": "SSIC 62011 matches 62011", "contribution": 0.15},
                 {"feature": "employee_fit", "value": "headcount unknown", "contribution": -0.08}),
        rationale=f"Company {n} fits the ICP.")


def sync(server: OdooServer, odoo_db: str, records: list[SyncRecord], *, cls: type[OdooSync] = OdooSync,
         min_bucket: str = "Medium", score_min_export: float = MIN_EXPORT) -> SyncReport:
    return cls(connect(server, odoo_db), TENANT, score_min_export=score_min_export, min_bucket=min_bucket).sync(records)


def companies(server: OdooServer, odoo_db: str) -> list[dict[str, Any]]:
    return [p for p in server.records(odoo_db, "res.partner") if p["is_company"] and p["company_registry"]]


def children(server: OdooServer, odoo_db: str, parent_id: int) -> list[dict[str, Any]]:
    return [p for p in server.records(odoo_db, "res.partner") if p["parent_id"] == parent_id]


def leads(server: OdooServer, odoo_db: str) -> list[dict[str, Any]]:
    return server.records(odoo_db, "crm.lead")


def creates(server: OdooServer, odoo_db: str) -> dict[str, int]:
    return server.stats()["databases"][odoo_db]["creates"]


def no_duplicates(server: OdooServer, odoo_db: str) -> bool:
    return all(not groups for groups in server.duplicates(odoo_db).values())


def counts(report: SyncReport, model: str) -> tuple[int, int, int, int]:
    c = report.counts[model]
    return c.created, c.updated, c.unchanged, c.failed


# -- create once, never again ----------------------------------------------------------------------
def test_first_sync_creates_company_contacts_and_lead_and_a_rerun_creates_nothing(server: OdooServer,
                                                                                  odoo_db: str) -> None:
    high = record(1, score=0.9, contacts=(SyncContact("Mei@Company1.sg", "Tan Mei", "CEO", "+65 6000 0001", True),
                                          SyncContact("info@company1.sg")))
    medium = record(2, score=0.5)
    low = record(3, score=0.1)

    first = sync(server, odoo_db, [high, medium, low])

    assert (first.skipped, len(first.outcomes)) == (1, 2)
    assert counts(first, "company") == (2, 0, 0, 0) and counts(first, "contact") == (3, 0, 0, 0)
    assert counts(first, "lead") == (1, 0, 0, 0)
    [company] = [p for p in companies(server, odoo_db) if p["company_registry"] == high.uen]
    assert (company["name"], company["website"], company["zip"]) == (high.name, "https://company1.sg", "079903")
    assert company["country_id"] == next(c["id"] for c in server.records(odoo_db, "res.country") if c["code"] == "SG")
    contacts = children(server, odoo_db, company["id"])
    assert sorted((c["email"], c["name"], c["function"]) for c in contacts) == [
        ("info@company1.sg", "info@company1.sg", False), ("mei@company1.sg", "Tan Mei", "CEO")]
    outcome = first.outcomes[0]
    assert (outcome.operation, outcome.partner_id) == ("create", company["id"])
    assert sorted(outcome.contact_partner_ids) == sorted(c["id"] for c in contacts)
    [lead] = leads(server, odoo_db)
    assert lead["name"] == f"{high.name} [np-{TENANT}-{high.uen}]" and lead["partner_id"] == company["id"]
    assert (lead["contact_name"], lead["email_from"], lead["priority"]) == ("Tan Mei", "mei@company1.sg", "2")
    assert "Lead score:</strong> 0.90 (High)" in lead["description"]
    assert "Company 1 fits the ICP." in lead["description"]
    assert "a headcount outside the ICP&#x27;s range, or unknown (lowers the score by 0.08)" in lead["description"]
    assert outcome.lead_id == lead["id"] and first.outcomes[1].lead_id is None
    created = creates(server, odoo_db)

    again = sync(server, odoo_db, [high, medium, low])

    assert creates(server, odoo_db) == created
    assert no_duplicates(server, odoo_db)
    assert [o.operation for o in again.outcomes] == ["unchanged", "unchanged"]
    assert counts(again, "company") == (0, 0, 2, 0) and counts(again, "contact") == (0, 0, 3, 0)
    assert counts(again, "lead") == (0, 0, 1, 0)
    assert [(o.partner_id, sorted(o.contact_partner_ids), o.lead_id) for o in again.outcomes] == \
        [(o.partner_id, sorted(o.contact_partner_ids), o.lead_id) for o in first.outcomes]


@pytest.mark.parametrize(("min_bucket", "score_min_export", "partners", "lead_uens"), [
    ("Medium", 0.66, {"202000001A", "202000002A"}, {"202000001A"}),
    ("High", 0.66, {"202000001A"}, {"202000001A"}),
    ("Medium", 0.4, {"202000001A", "202000002A"}, {"202000001A", "202000002A"}),
    ("Low", 0.95, {"202000001A", "202000002A", "202000003A"}, set()),
])
def test_companies_and_leads_only_at_or_above_their_thresholds(server: OdooServer, odoo_db: str, min_bucket: str,
                                                               score_min_export: float, partners: set[str],
                                                               lead_uens: set[str]) -> None:
    report = sync(server, odoo_db, [record(1, score=0.9), record(2, score=0.5), record(3, score=0.2)],
                  min_bucket=min_bucket, score_min_export=score_min_export)

    assert {p["company_registry"] for p in companies(server, odoo_db)} == partners
    assert {o.uen for o in report.outcomes if o.lead_id is not None} == lead_uens
    assert {lead["name"].split("-")[-1].rstrip("]") for lead in leads(server, odoo_db)} == lead_uens


def test_an_existing_company_found_by_domain_or_name_is_reused_and_given_the_uen(server: OdooServer,
                                                                                 odoo_db: str) -> None:
    odoo = connect(server, odoo_db)
    by_domain = odoo.create("res.partner", {"name": "Acme Freight", "is_company": True,
                                            "website": "https://www.acme.sg/about"})
    by_name = odoo.create("res.partner", {"name": "BETA TRADING PTE. LTD.", "is_company": True,
                                          "street": "9 Beta Street"})
    other_entity = odoo.create("res.partner", {"name": "GAMMA PTE. LTD.", "is_company": True,
                                               "company_registry": "199900001Z"})
    records = [record(1, domain="acme.sg", name="ACME FREIGHT PTE. LTD."),
               record(2, domain=None, name="BETA TRADING PTE. LTD."),
               record(3, domain=None, name="GAMMA PTE. LTD.")]

    report = sync(server, odoo_db, records)

    acme, beta, gamma = report.outcomes
    assert (acme.partner_id, acme.operation) == (by_domain, "update")
    assert MergeDecision(matched_by="domain", partner_id=by_domain) in acme.merge_decisions
    assert MergeDecision(decision="kept the name in Odoo", field="name", odoo="Acme Freight",
                         ours="ACME FREIGHT PTE. LTD.") in acme.merge_decisions
    assert [d for d in acme.merge_decisions if d.field == "website"] == []
    assert (beta.partner_id, beta.merge_decisions[0]) == (by_name, MergeDecision(matched_by="name",
                                                                                 partner_id=by_name))
    assert MergeDecision(decision="kept the value in Odoo", record=records[1].uen, field="street",
                         odoo="9 Beta Street", ours="1 ANSON ROAD") in beta.merge_decisions
    assert gamma.operation == "create" and gamma.partner_id not in (by_domain, by_name, other_entity)
    assert MergeDecision(decision="not reused: same name but another UEN", partner_id=other_entity,
                         odoo_uen="199900001Z") in gamma.merge_decisions
    stored = {p["id"]: p for p in server.records(odoo_db, "res.partner")}
    assert stored[by_domain]["company_registry"] == records[0].uen
    assert stored[by_domain]["name"] == "Acme Freight" and stored[by_domain]["website"] == "https://www.acme.sg/about"
    assert (stored[by_name]["company_registry"], stored[by_name]["street"]) == (records[1].uen, "9 Beta Street")
    assert counts(report, "company") == (1, 2, 0, 0)
    assert len(children(server, odoo_db, by_domain)) == 1

    again = sync(server, odoo_db, records)
    assert [o.partner_id for o in again.outcomes] == [by_domain, by_name, gamma.partner_id]
    assert [o.operation for o in again.outcomes] == ["unchanged"] * 3
    assert no_duplicates(server, odoo_db)


# -- failures and crashes --------------------------------------------------------------------------
class RejectedCompany(OdooSync):
    """Sends a field Odoo does not know for one UEN, so Odoo rejects that record."""

    rejected_uen = "202000002A"

    def _company_values(self, record: SyncRecord) -> dict[str, Any]:
        values = super()._company_values(record)
        return {**values, "x_uen": record.uen} if record.uen == self.rejected_uen else values


def test_a_record_odoo_rejects_fails_alone_is_logged_and_is_retried_on_the_next_run(
        server: OdooServer, odoo_db: str, db: Database) -> None:
    tenant = register_tenant(db)
    ids = [insert_company(db, company_row(n)) for n in (1, 2, 3)]
    records = [dataclasses.replace(record(n, score=0.9), company_id=cid) for n, cid in enumerate(ids, 1)]
    run_id = uuid.uuid4()

    def run(cls: type[OdooSync]) -> SyncReport:
        return sync_and_record(db, cls(connect(server, odoo_db), tenant, score_min_export=MIN_EXPORT), records,
                               run_id=run_id, score_date=RUN_DATE)

    first = run(RejectedCompany)

    assert [o.operation for o in first.outcomes] == ["create", "error", "create"]
    failed = first.outcomes[1]
    assert failed.error is not None and failed.error.startswith("company: Invalid field 'x_uen'")
    assert failed.partner_id is None and counts(first, "company") == (2, 0, 0, 1)
    with db.tenant(tenant) as conn:
        log = scores_db.sync_log(conn, run_id)
    assert [(row["company_id"], row["operation"], row["error"] is not None) for row in log] == [
        (ids[0], "create", False), (ids[1], "error", True), (ids[2], "create", False)]
    assert log[0]["partner_id"] == first.outcomes[0].partner_id and len(log[0]["contact_partner_ids"]) == 1

    second = run(OdooSync)

    assert [o.operation for o in second.outcomes] == ["unchanged", "create", "unchanged"]
    assert len(companies(server, odoo_db)) == 3 and len(leads(server, odoo_db)) == 3
    assert no_duplicates(server, odoo_db)


class CrashAfterCompany(OdooSync):
    def _create_company(self, *args: Any, **kwargs: Any) -> int:
        super()._create_company(*args, **kwargs)
        raise SimulatedCrash


def test_a_crash_right_after_the_company_is_created_leaves_nothing_to_duplicate(server: OdooServer,
                                                                              odoo_db: str) -> None:
    target = record(1, score=0.9)
    with pytest.raises(SimulatedCrash):
        sync(server, odoo_db, [target], cls=CrashAfterCompany)
    # The company came with its contact in one create, so none is missing; the lead was never made.
    [company] = companies(server, odoo_db)
    assert len(children(server, odoo_db, company["id"])) == 1 and leads(server, odoo_db) == []

    report = sync(server, odoo_db, [target])

    assert report.outcomes[0].partner_id == company["id"]
    assert counts(report, "company") == (0, 0, 1, 0) and counts(report, "contact") == (0, 0, 1, 0)
    assert counts(report, "lead") == (1, 0, 0, 0)
    assert len(companies(server, odoo_db)) == 1 and len(children(server, odoo_db, company["id"])) == 1
    assert len(leads(server, odoo_db)) == 1 and no_duplicates(server, odoo_db)


class RejectedContact(OdooSync):
    """Sends a field Odoo does not know with every contact, so Odoo rejects the contact create."""

    def _contact_values(self, contact: SyncContact) -> dict[str, Any]:
        return {**super()._contact_values(contact), "x_unknown": 1}


def test_a_contact_that_failed_to_create_is_created_exactly_once_on_the_next_run(server: OdooServer,
                                                                                odoo_db: str) -> None:
    # Created before the contact was known (an earlier night), so tonight's contact create runs alone.
    sync(server, odoo_db, [record(1, score=0.5, contacts=())])
    tonight = record(1, score=0.9)

    failed = sync(server, odoo_db, [tonight], cls=RejectedContact)

    assert failed.outcomes[0].error is not None and failed.outcomes[0].error.startswith("contact: Invalid field")
    [company] = companies(server, odoo_db)
    assert children(server, odoo_db, company["id"]) == [] and leads(server, odoo_db) == []

    retried = sync(server, odoo_db, [tonight])

    assert retried.outcomes[0].error is None
    [contact] = children(server, odoo_db, company["id"])
    assert (contact["email"], contact["function"]) == ("ceo@company1.sg", "CEO")
    assert len(companies(server, odoo_db)) == 1 and len(leads(server, odoo_db)) == 1
    assert no_duplicates(server, odoo_db)


# -- later nights ----------------------------------------------------------------------------------
def test_a_new_score_rewrites_the_lead_notes_but_never_a_salespersons_edits(server: OdooServer, odoo_db: str) -> None:
    sync(server, odoo_db, [record(1, score=0.9)])
    [lead] = leads(server, odoo_db)
    connect(server, odoo_db).write("crm.lead", [lead["id"]], {"priority": "3", "contact_name": "Mr Chief"})

    unchanged = sync(server, odoo_db, [record(1, score=0.9)])
    assert counts(unchanged, "lead") == (0, 0, 1, 0)
    assert leads(server, odoo_db)[0]["priority"] == "3"

    rescored = sync(server, odoo_db, [record(1, score=0.7)])

    assert counts(rescored, "lead") == (0, 1, 0, 0) and rescored.outcomes[0].operation == "update"
    [lead] = leads(server, odoo_db)
    assert "0.70 (High)" in lead["description"] and lead["priority"] == "2"
    assert lead["contact_name"] == "Mr Chief"
    assert MergeDecision(decision="kept the value in Odoo", record="202000001A", field="contact_name",
                         odoo="Mr Chief", ours="Chief 1") in rescored.outcomes[0].merge_decisions


def test_an_archived_lead_is_found_again_and_left_alone(server: OdooServer, odoo_db: str) -> None:
    first = sync(server, odoo_db, [record(1, score=0.9)])
    lead_id = first.outcomes[0].lead_id
    connect(server, odoo_db).write("crm.lead", [lead_id], {"active": False})

    again = sync(server, odoo_db, [record(1, score=0.75)])

    assert again.outcomes[0].lead_id == lead_id and len(leads(server, odoo_db)) == 1
    assert MergeDecision(decision="lead archived in Odoo; left as it is", lead_id=lead_id) \
        in again.outcomes[0].merge_decisions
    assert "0.90 (High)" in leads(server, odoo_db)[0]["description"]


def test_two_concurrent_syncs_of_one_tenant_create_nothing_twice(server: OdooServer, odoo_db: str,
                                                                 db: Database) -> None:
    tenant = register_tenant(db)
    ids = [insert_company(db, company_row(n)) for n in range(1, 21)]
    records = [dataclasses.replace(record(n, score=0.9), company_id=cid) for n, cid in enumerate(ids, 1)]
    clients = [connect(server, odoo_db) for _ in range(2)]
    reports: list[SyncReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(client: OdooClient) -> None:
        try:
            start.wait(timeout=10)
            reports.append(sync_and_record(db, OdooSync(client, tenant, score_min_export=MIN_EXPORT), records,
                                           run_id=None, score_date=RUN_DATE))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == [] and len(reports) == 2
    assert sorted(counts(r, "company") for r in reports) == [(0, 0, 20, 0), (20, 0, 0, 0)]
    # 20 companies, each with its contact, and 20 leads: all from the first sync.
    assert creates(server, odoo_db) == {"crm.lead": 20, "res.partner": 40}
    assert len(companies(server, odoo_db)) == 20 and no_duplicates(server, odoo_db)
    with db.tenant(tenant) as conn:
        assert len(scores_db.sync_log(conn)) == 40


# -- outages ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("outage", ["refuse", "http500"])
def test_odoo_unreachable_fails_the_step_with_nothing_logged(server: OdooServer, odoo_db: str, db: Database,
                                                            outage: str) -> None:
    tenant = register_tenant(db)
    company_id = insert_company(db, company_row(1))
    target = dataclasses.replace(record(1, score=0.9), company_id=company_id)
    odoo_sync = OdooSync(connect(server, odoo_db), tenant, score_min_export=MIN_EXPORT)
    server.set_outage(outage)  # type: ignore[arg-type]

    with pytest.raises(OdooUnavailable, match="Odoo unreachable"):
        sync_and_record(db, odoo_sync, [target], run_id=None, score_date=RUN_DATE)
    with pytest.raises(OdooUnavailable):
        OdooResource(timeout_s=10).connect(connection(server, odoo_db), PASSWORD)

    with db.tenant(tenant) as conn:
        assert scores_db.sync_log(conn) == []
    server.set_outage("none")
    assert sync_and_record(db, odoo_sync, [target], run_id=None, score_date=RUN_DATE).outcomes[0].operation == "create"


def test_a_wrong_password_is_a_login_error_that_does_not_quote_it(server: OdooServer, odoo_db: str) -> None:
    with pytest.raises(OdooLoginError) as raised:
        OdooResource(timeout_s=10).connect(connection(server, odoo_db), "not-the-password")
    assert "not-the-password" not in str(raised.value) and odoo_db in str(raised.value)


def test_the_odoo_password_never_reaches_the_log_even_at_debug(server: OdooServer, odoo_db: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records reach caplog
    client = connect(server, odoo_db)
    client.search_read("res.partner", [("is_company", "=", True)], ["id"])
    with pytest.raises(OdooLoginError):
        OdooResource(timeout_s=10).connect(connection(server, odoo_db), "not-the-password")

    sent = [r.getMessage() for r in caplog.records if r.name.startswith("odoorpc") and "(JSON,send)" in r.getMessage()]
    assert any("'login'" in message for message in sent) and any("'execute_kw'" in message for message in sent)
    for secret in (PASSWORD, "not-the-password"):
        assert secret not in caplog.text
        assert not [r for r in caplog.records if secret in r.getMessage() or secret in repr(r.args)]


def test_rpc_payloads_are_masked_where_odoorpc_puts_a_password_and_left_unchanged() -> None:
    def call(service: str, args: list[Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "method": "call", "params": {"service": service, "method": "m", "args": args}}

    login = call("common", ["db", "bot", "s3cret"])
    assert masked_rpc_payload(login)["params"]["args"] == ["db", "bot", "**********"]
    assert login["params"]["args"][2] == "s3cret"
    assert masked_rpc_payload(call("object", ["db", 2, "s3cret", "res.partner", "read", [[1]], {}]))["params"][
        "args"] == ["db", 2, "**********", "res.partner", "read", [[1]], {}]
    assert masked_rpc_payload(call("db", ["master", "db"]))["params"]["args"] == ["**********", "db"]
    assert "s3cret" not in repr(masked_rpc_payload(call("report", ["s3cret", "x"])))
    session = {"params": {"db": "db", "login": "bot", "password": "s3cret"}}
    assert masked_rpc_payload(session)["params"] == {"db": "db", "login": "bot", "password": "**********"}
    assert masked_rpc_payload({"params": {}}) == {"params": {}}


def test_connection_rows_become_odoorpc_endpoints_and_env_passwords() -> None:
    assert endpoint("https://crm.acme.sg") == ("jsonrpc+ssl", "crm.acme.sg", 443)
    assert endpoint("http://127.0.0.1:8069/") == ("jsonrpc", "127.0.0.1", 8069)
    with pytest.raises(OdooConfigError, match="path"):
        endpoint("https://acme.sg/odoo")
    with pytest.raises(OdooConfigError, match="scheme"):
        endpoint("ftp://acme.sg")
    row = OdooConnection("https://crm.acme.sg", "acme", "bot", "ACME_ODOO_PASSWORD", True)
    assert password_from_env(row, {"ACME_ODOO_PASSWORD": "s3cret"}) == "s3cret"
    with pytest.raises(OdooConfigError, match="ACME_ODOO_PASSWORD"):
        password_from_env(row, {})


@pytest.mark.parametrize("row, broken", [
    (OdooConnection("http://crm.evil.example", "acme", "bot", "ACME_ODOO_PASSWORD", True), "url"),
    (OdooConnection("https://crm.acme.sg", "acme", "bot", "OPENAI_API_KEY", True), "password_env"),
])
def test_a_stored_connection_breaking_the_rules_is_refused_before_its_variable_is_read(
        row: OdooConnection, broken: str) -> None:
    class Untouchable(dict):
        def get(self, *args, **kwargs):
            raise AssertionError("the variable was read")

    with pytest.raises(OdooConfigError, match=broken):
        password_from_env(row, Untouchable())


# -- JSON-RPC calls --------------------------------------------------------------------------------
def test_at_most_three_calls_per_created_record_and_almost_none_per_unchanged_one(server: OdooServer,
                                                                                  odoo_db: str) -> None:
    records = [record(n, score=0.9) for n in range(1, 51)]
    odoo = connect(server, odoo_db)
    server.reset()

    created = OdooSync(odoo, TENANT, score_min_export=MIN_EXPORT).sync(records)

    server_calls = sum(n for methods in server.stats()["databases"][odoo_db]["calls"].values()
                       for n in methods.values())
    assert created.rpc_calls == server_calls
    assert counts(created, "company") == (50, 0, 0, 0) and counts(created, "lead") == (50, 0, 0, 0)
    assert created.rpc_calls / 50 <= 3

    unchanged = OdooSync(odoo, TENANT, score_min_export=MIN_EXPORT).sync(records)

    assert counts(unchanged, "company") == (0, 0, 50, 0) and counts(unchanged, "lead") == (0, 0, 50, 0)
    assert unchanged.rpc_calls / 50 < 0.1


# -- what to sync, from the database ---------------------------------------------------------------
def test_records_to_sync_take_the_nights_buckets_and_earlier_failures(db: Database) -> None:
    tenant = register_tenant(db)
    ids = [insert_company(db, company_row(n)) for n in (1, 2, 3, 4)]
    earlier, tonight = RUN_DATE - dt.timedelta(days=1), RUN_DATE
    insert_contact(db, tenant, ids[0], CEO)
    insert_contact(db, tenant, ids[0], INFO)
    insert_verification(db, tenant, INFO["email"], "suppressed")
    save_crawl(db, tenant, create_run(db, tenant, ids, tonight), ids[0], crawl_row())

    def stored_score(company_id: int, value: float, bucket: str) -> scores_db.ScoreRow:
        return scores_db.ScoreRow(company_id, value, bucket, [{"feature": "phone", "value": True,
                                                               "contribution": 0.04}], "why", "template", "h")

    with db.tenant(tenant) as conn:
        scores_db.upsert_scores(conn, earlier, [stored_score(ids[3], 0.8, "High"),
                                                        stored_score(ids[2], 0.7, "High")])
        scores_db.upsert_scores(conn, tonight, [stored_score(ids[0], 0.9, "High"),
                                                        stored_score(ids[1], 0.2, "Low")])
        scores_db.insert_sync_log(conn, None, [
            scores_db.SyncLogEntry(ids[3], None, [], None, "error", [], "company: boom"),
            scores_db.SyncLogEntry(ids[2], 11, [], None, "create", [], None)])
        rows = scores_db.records_to_sync(conn, tonight, ("Medium", "High"), include_unverified=True)
        verified_only = scores_db.records_to_sync(conn, tonight, ("Medium", "High"),
                                                  include_unverified=False)

    assert [row["contacts"] for row in verified_only] == [[], []], "unverified addresses stay home by default"
    records = [SyncRecord.from_row(row) for row in rows]
    assert [r.company_id for r in records] == [ids[0], ids[3]]
    first = records[0]
    assert (first.uen, first.name, first.other_names, first.domain) == (
        "201900001K", "NIMBUS APPS 1 PTE. LTD.", ("Nimbus Apps 1",), "nimbus.sg")
    assert [c.email for c in first.contacts] == [CEO["email"]] and first.contacts[0].is_primary
    assert first.reasons[0]["feature"] == "phone" and first.score == pytest.approx(0.9)


def test_sync_results_land_on_the_scores(server: OdooServer, odoo_db: str, db: Database) -> None:
    tenant = register_tenant(db)
    company_id = insert_company(db, company_row(1))
    run_id = create_run(db, tenant, [company_id], RUN_DATE)
    save_crawl(db, tenant, run_id, company_id, crawl_row())
    insert_contact(db, tenant, company_id, CEO)
    features = build_features(company_row(1), SOFTWARE_ICP, crawl_row(), [CEO], {})
    result = score(features, tenant_id=tenant)
    with db.tenant(tenant) as conn:
        scores_db.upsert_scores(conn, RUN_DATE, [scores_db.ScoreRow(
            company_id, result.value, result.bucket, result.reasons, "Fits.", "template", result.features_hash)])
        rows = scores_db.records_to_sync(conn, RUN_DATE, ("Medium", "High"), include_unverified=True)

    report = sync_and_record(db, OdooSync(connect(server, odoo_db), tenant, score_min_export=MIN_EXPORT),
                             [SyncRecord.from_row(row) for row in rows], run_id=run_id, score_date=RUN_DATE)

    with db.tenant(tenant) as conn:
        [stored] = scores_db.scores_for(conn, RUN_DATE)
        [logged] = scores_db.sync_log(conn, run_id)
    outcome = report.outcomes[0]
    assert (stored["odoo_partner_id"], stored["odoo_lead_id"]) == (outcome.partner_id, outcome.lead_id)
    assert logged["contact_partner_ids"] == outcome.contact_partner_ids and len(outcome.contact_partner_ids) == 1
    assert logged["merge_decisions"] == [] and logged["operation"] == "create"
    [lead] = leads(server, odoo_db)
    assert ("the ICP&#x27;s keywords saas, platform and cloud on the site (raises the score by 0.12)"
            in lead["description"])
