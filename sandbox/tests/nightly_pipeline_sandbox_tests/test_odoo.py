"""The Odoo sandbox driven by the real odoorpc client over a loopback socket."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import odoorpc
import pytest

from nightly_pipeline_sandbox.base import FaultConfig
from nightly_pipeline_sandbox.harness import LoopThread
from nightly_pipeline_sandbox.odoo import OdooServer

ADMIN_PASSWORD = "admin-pw"


def _run(loop: LoopThread, coro: Coroutine[Any, Any, Any]) -> Any:
    return loop.run(coro, timeout=10)


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    event_loop = LoopThread("odoo-test")
    yield event_loop
    event_loop.close()


@pytest.fixture(scope="module")
def server(loop: LoopThread) -> Iterator[OdooServer]:
    odoo_server = OdooServer()
    _run(loop, odoo_server.start())
    yield odoo_server
    _run(loop, odoo_server.stop())


@pytest.fixture
def own_server(loop: LoopThread) -> Iterator[OdooServer]:
    """A server of its own, for tests that break it (outages, injected faults)."""
    odoo_server = OdooServer(databases={"ops": {"admin": ADMIN_PASSWORD}})
    _run(loop, odoo_server.start())
    yield odoo_server
    _run(loop, odoo_server.stop())


def new_database(server: OdooServer, users: dict[str, str] | None = None) -> str:
    name = f"db_{uuid.uuid4().hex[:10]}"
    server.add_database(name, users or {"admin": ADMIN_PASSWORD})
    return name


def connect(server: OdooServer, db: str, login: str = "admin", password: str = ADMIN_PASSWORD) -> odoorpc.ODOO:
    client = odoorpc.ODOO("127.0.0.1", port=server.port, protocol="jsonrpc", timeout=10)
    client.login(db, login, password)
    return client


@pytest.fixture
def db_name(server: OdooServer) -> str:
    return new_database(server)


@pytest.fixture
def odoo(server: OdooServer, db_name: str) -> odoorpc.ODOO:
    return connect(server, db_name)


def country_id(odoo: odoorpc.ODOO, code: str) -> int:
    return odoo.env["res.country"].search([("code", "=", code)])[0]


def rpc_error_name(error: odoorpc.error.RPCError) -> str:
    return error.info["data"]["name"]


# -- login and version ---------------------------------------------------------------------------
def test_login_reads_version_and_user_context(server: OdooServer, db_name: str, odoo: odoorpc.ODOO) -> None:
    assert odoo.version == "17.0"
    assert odoo.env.uid == 2
    assert odoo.env.context == {"lang": "en_US", "tz": "Asia/Singapore", "uid": 2}
    assert db_name in odoo.db.list()
    assert odoo.env.user.login == "admin"
    assert odoo.env.user.partner_id.name == "Administrator"


def test_wrong_password_raises_rpc_error(server: OdooServer, db_name: str) -> None:
    with pytest.raises(odoorpc.error.RPCError, match="Wrong login ID or password"):
        connect(server, db_name, password="not-the-password")
    assert server.stats()["databases"][db_name]["login_failures"] == 1


def test_object_calls_check_credentials_every_time(server: OdooServer, db_name: str, odoo: odoorpc.ODOO) -> None:
    params = {"service": "object", "method": "execute_kw",
              "args": [db_name, 2, "wrong", "res.partner", "search", [[]]]}
    with pytest.raises(odoorpc.error.RPCError, match="Access Denied") as denied:
        odoo.json("/jsonrpc", params)
    assert rpc_error_name(denied.value) == "odoo.exceptions.AccessDenied"
    assert denied.value.info["code"] == 200
    params["args"][1:3] = [99, ADMIN_PASSWORD]
    with pytest.raises(odoorpc.error.RPCError, match="Access Denied"):
        odoo.json("/jsonrpc", params)


def test_unknown_database_is_an_error(server: OdooServer) -> None:
    client = odoorpc.ODOO("127.0.0.1", port=server.port, protocol="jsonrpc", timeout=10)
    with pytest.raises(odoorpc.error.RPCError, match='database "missing_db" does not exist'):
        client.login("missing_db", "admin", ADMIN_PASSWORD)


def test_databases_are_isolated(server: OdooServer) -> None:
    db_a = new_database(server, {"alice": "a-pw"})
    db_b = new_database(server, {"bob": "b-pw"})
    client_a, client_b = connect(server, db_a, "alice", "a-pw"), connect(server, db_b, "bob", "b-pw")
    id_a = client_a.env["res.partner"].create({"name": "Only in A", "is_company": True})
    id_b = client_b.env["res.partner"].create({"name": "Only in B", "is_company": True})
    assert id_a == id_b
    assert client_a.env["res.partner"].search([("name", "=", "Only in B")]) == []
    assert [row["name"] for row in server.records(db_b, "res.partner") if row["id"] == id_b] == ["Only in B"]
    with pytest.raises(odoorpc.error.RPCError, match="Wrong login ID or password"):
        connect(server, db_b, "alice", "a-pw")
    assert {db_a, db_b} <= set(server.databases())


# -- res.partner ---------------------------------------------------------------------------------
def test_partner_search_create_write_read_round_trip(odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    company = partners.create({"name": "Acme Pte Ltd", "is_company": True, "company_registry": "201912345A",
                               "website": "acme.sg", "country_id": country_id(odoo, "SG")})
    contact = partners.create({"name": "Jane Tan", "parent_id": company, "email": "jane@acme.sg",
                               "function": "CTO"})
    assert partners.search([("company_registry", "=", "201912345A"), ("is_company", "=", True)]) == [company]
    assert partners.search([("parent_id", "=", company), ("email", "=ilike", "JANE@acme.sg")]) == [contact]

    assert partners.write([contact], {"email": "jane.tan@acme.sg", "phone": ""}) is True
    [row] = partners.read([contact], ["email", "phone", "parent_id", "display_name", "commercial_partner_id"])
    assert row == {"id": contact, "email": "jane.tan@acme.sg", "phone": False, "parent_id": [company, "Acme Pte Ltd"],
                   "display_name": "Acme Pte Ltd, Jane Tan", "commercial_partner_id": [company, "Acme Pte Ltd"]}

    rows = partners.search_read([("parent_id", "=", company)], fields=["name", "email"])
    assert rows == [{"id": contact, "name": "Jane Tan", "email": "jane.tan@acme.sg"}]
    [company_row] = partners.read([company], ["child_ids", "country_id", "create_date", "company_type"])
    assert company_row["child_ids"] == [contact]
    assert company_row["country_id"][1] == "Singapore"
    assert company_row["company_type"] == "company"
    assert len(company_row["create_date"]) == len("2024-01-01 00:00:00")


def test_browse_reads_and_writes_attributes(server: OdooServer, db_name: str, odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    company = partners.create({"name": "Beta LLP", "is_company": True})
    record = partners.browse(company)
    assert (record.name, record.email, record.is_company, record.type) == ("Beta LLP", False, True, "contact")
    record.email = "hello@beta.sg"
    record.country_id = country_id(odoo, "MY")
    record.write({"name": "Beta Holdings LLP"})
    [stored] = [row for row in server.records(db_name, "res.partner") if row["id"] == company]
    assert stored["email"] == "hello@beta.sg"
    assert stored["name"] == "Beta Holdings LLP"
    assert partners.browse(company).country_id.name == "Malaysia"


def test_browse_of_a_missing_id_raises(odoo: odoorpc.ODOO) -> None:
    with pytest.raises(ValueError, match="There is no 'res.partner' record with IDs \\[9999\\]"):
        odoo.env["res.partner"].browse(9999)


def test_read_many2one_as_pair_or_plain_id(odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    company = partners.create({"name": "Gamma", "is_company": True})
    contact = partners.create({"name": "Ken", "parent_id": company})
    assert partners.read([contact], ["parent_id"]) == [{"id": contact, "parent_id": [company, "Gamma"]}]
    assert partners.read([contact], ["parent_id"], load="_classic_write") == [{"id": contact, "parent_id": company}]


def test_archived_records_are_hidden_unless_active_test_is_false(odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    archived = partners.create({"name": "Old Co", "is_company": True, "company_registry": "OLD1"})
    partners.write([archived], {"active": False})
    assert partners.search([("company_registry", "=", "OLD1")]) == []
    assert partners.with_context(active_test=False).search([("company_registry", "=", "OLD1")]) == [archived]
    assert partners.search([("company_registry", "=", "OLD1"), ("active", "=", False)]) == [archived]


def test_search_options_and_lookups(odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    ids = partners.create([{"name": f"Firm {n}", "is_company": True, "ref": f"R{n}"} for n in (3, 1, 2)])
    firms = [("name", "=like", "Firm %")]
    assert partners.search(firms) == [ids[1], ids[2], ids[0]]
    assert partners.search(firms, order="ref desc", limit=2) == [ids[0], ids[2]]
    assert partners.search(firms, offset=1, order="id") == ids[1:]
    assert partners.search(firms, count=True) == 3
    assert partners.search_count(firms) == 3
    assert partners.name_search("firm 2") == [[ids[2], "Firm 2"]]
    assert partners.name_search("R3", operator="=") == [[ids[0], "Firm 3"]]
    assert odoo.env["crm.stage"].search_read([], ["name"], limit=1) == [{"id": 1, "name": "New"}]
    assert partners.default_get(["type", "active", "is_company", "name"]) == {
        "type": "contact", "active": True, "is_company": False}


def test_fields_get_describes_every_field_with_a_type(odoo: odoorpc.ODOO) -> None:
    for model in ("res.partner", "crm.lead"):
        fields = odoo.execute(model, "fields_get")
        assert all("type" in info and "string" in info for info in fields.values())
        relational = {name: info for name, info in fields.items()
                      if info["type"] in ("many2one", "one2many", "many2many")}
        assert relational and all(info.get("relation") for info in relational.values())
        assert {"id", "display_name", "create_date", "write_date", "ref", "name", "active"} <= set(fields)
    partner_fields = odoo.execute("res.partner", "fields_get")
    assert {"company_registry", "parent_id", "email", "vat", "industry_id", "category_id"} <= set(partner_fields)
    assert partner_fields["type"]["selection"][0] == ["contact", "Contact"]
    lead_fields = odoo.execute("crm.lead", "fields_get")
    assert lead_fields["name"]["required"] is True
    assert lead_fields["stage_id"]["relation"] == "crm.stage"
    assert [key for key, _ in lead_fields["priority"]["selection"]] == ["0", "1", "2", "3"]


# -- crm.lead ------------------------------------------------------------------------------------
def test_lead_create_and_search_by_partner(odoo: odoorpc.ODOO) -> None:
    company = odoo.env["res.partner"].create({"name": "Delta Pte Ltd", "is_company": True})
    leads = odoo.env["crm.lead"]
    lead = leads.create({"name": "Delta - nightly lead", "partner_id": company, "priority": "2",
                         "description": "Score 82 (A): strong ICP fit",
                         "tag_ids": [[0, 0, {"name": "leadgen:A"}]]})
    assert leads.search([("partner_id", "=", company), ("type", "=", "opportunity")]) == [lead]
    [row] = leads.read([lead], ["type", "stage_id", "user_id", "description", "tag_ids", "priority"])
    assert row["type"] == "opportunity"
    assert row["stage_id"][1] == "New"
    assert row["user_id"][0] == odoo.env.uid
    assert row["description"] == "<p>Score 82 (A): strong ICP fit</p>"
    assert odoo.env["crm.tag"].read(row["tag_ids"], ["name"])[0]["name"] == "leadgen:A"
    assert leads.browse(lead).partner_id.name == "Delta Pte Ltd"
    assert leads.search([("partner_id.name", "ilike", "delta")]) == [lead]


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "method", "args", "name", "message"), [
    ("res.partner", "create", [{"name": "X", "x_uen": "1"}], "builtins.ValueError",
     "Invalid field 'x_uen' on model 'res.partner'"),
    ("res.partner", "read", [[1], ["nope"]], "builtins.ValueError", "Invalid field 'nope' on model 'res.partner'"),
    ("res.partner", "search", [[("nope", "=", 1)]], "builtins.ValueError", "Invalid field res.partner.nope"),
    ("res.partner", "search", [["|", ("id", "=", 1)]], "builtins.ValueError", "missing operands"),
    ("res.partner", "search", [[], 0, None, "nope desc"], "builtins.ValueError", 'Invalid "order"'),
    ("x.model", "search", [[]], "odoo.exceptions.UserError", "Object x.model doesn't exist"),
    ("res.partner", "frobnicate", [], "builtins.AttributeError",
     "The method 'frobnicate' does not exist on the model 'res.partner'"),
    ("res.partner", "_write", [], "odoo.exceptions.AccessError", "Private methods"),
    ("crm.lead", "create", [{"type": "lead"}], "odoo.exceptions.ValidationError", r"Field: Opportunity \(name\)"),
    ("res.partner", "create", [{"email": "x@y.z"}], "odoo.exceptions.ValidationError", "Contacts require a name"),
    ("res.partner", "write", [[424242], {"name": "Y"}], "odoo.exceptions.MissingError", "Record does not exist"),
    ("res.partner", "write", [[1], {"type": "private"}], "builtins.ValueError", "Wrong value for res.partner.type"),
    ("res.partner", "write", [[1], {"parent_id": 1}], "odoo.exceptions.ValidationError", "recursive"),
    ("res.partner", "write", [[1], {"country_id": 9999}], "odoo.exceptions.ValidationError", "does not exist"),
    ("res.country", "create", [{"name": "Atlantis"}], "odoo.exceptions.AccessError", "not allowed to create"),
    ("res.partner", "search", [[], 0, None, None, False, "extra"], "builtins.TypeError", "positional argument"),
])
def test_errors_use_odoo_envelope(odoo: odoorpc.ODOO, model: str, method: str, args: list[Any], name: str,
                                  message: str) -> None:
    with pytest.raises(odoorpc.error.RPCError, match=message) as raised:
        odoo.execute(model, method, *args)
    assert rpc_error_name(raised.value) == name
    assert raised.value.info["message"] == "Odoo Server Error"
    assert raised.value.info["data"]["debug"].startswith("Traceback")


def test_a_failed_call_changes_nothing(server: OdooServer, db_name: str, odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    before = server.records(db_name, "res.partner")
    with pytest.raises(odoorpc.error.RPCError, match="Contacts require a name"):
        partners.create([{"name": "Fine Co", "is_company": True}, {"email": "no-name@x.sg"}])
    assert server.records(db_name, "res.partner") == before
    assert "res.partner" not in server.stats()["databases"][db_name]["creates"]


# -- batch lookups, audit, accounting ------------------------------------------------------------
def test_search_read_with_in_over_a_thousand_registries(odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    uens = [f"2020{n:05d}K" for n in range(1200)]
    ids = partners.create([{"name": f"Company {uen}", "is_company": True, "company_registry": uen}
                           for uen in uens])
    wanted = uens[100:1100]
    rows = partners.search_read([("company_registry", "in", wanted), ("is_company", "=", True)],
                                fields=["company_registry"])
    assert sorted(row["company_registry"] for row in rows) == wanted
    assert {row["id"] for row in rows} == set(ids[100:1100])


def test_duplicates_report_finds_planted_duplicates(server: OdooServer, db_name: str, odoo: odoorpc.ODOO) -> None:
    partners, leads = odoo.env["res.partner"], odoo.env["crm.lead"]
    company = partners.create({"name": "Echo Pte Ltd", "is_company": True, "company_registry": "201800001E"})
    partners.create({"name": "Echo Pte. Ltd.", "is_company": True, "company_registry": " 201800001e"})
    archived = partners.create({"name": "Echo old", "is_company": True, "company_registry": "201800001E"})
    partners.write([archived], {"active": False})
    partners.create({"name": "Other", "is_company": True, "company_registry": "201800002F"})
    first = partners.create({"name": "Sam", "parent_id": company, "email": "sam@echo.sg"})
    second = partners.create({"name": "Samuel", "parent_id": company, "email": "Sam@Echo.sg "})
    lead_ids = [leads.create({"name": f"Echo lead {n}", "partner_id": company}) for n in range(2)]
    report = server.duplicates(db_name)
    assert report == {
        "companies_by_registry": [{"company_registry": "201800001E", "ids": [company, company + 1]}],
        "contacts_by_email": [{"parent_id": company, "email": "sam@echo.sg", "ids": [first, second]}],
        "leads_by_partner": [{"partner_id": company, "ids": lead_ids}],
    }
    with urllib.request.urlopen(f"{server.url}/_sandbox/odoo/duplicates?db={db_name}", timeout=10) as response:
        assert json.load(response) == report


def test_duplicates_report_is_empty_on_a_clean_sync(server: OdooServer, db_name: str, odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    company = partners.create({"name": "Foxtrot", "is_company": True, "company_registry": "201700001F"})
    partners.create({"name": "Ann", "parent_id": company, "email": "ann@fox.sg"})
    partners.create({"name": "Ann", "parent_id": company, "email": "ann.lee@fox.sg"})
    odoo.env["crm.lead"].create({"name": "Foxtrot lead", "partner_id": company})
    assert server.duplicates(db_name) == {"companies_by_registry": [], "contacts_by_email": [],
                                          "leads_by_partner": []}


def test_admin_duplicates_endpoint_rejects_unknown_database(server: OdooServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server.url}/_sandbox/odoo/duplicates?db=nope", timeout=10)
    assert missing.value.code == 404


def test_stats_count_calls_per_model_method_and_creates(server: OdooServer, db_name: str,
                                                        odoo: odoorpc.ODOO) -> None:
    partners = odoo.env["res.partner"]
    partners.create([{"name": "One", "is_company": True}, {"name": "Two", "is_company": True}])
    partners.search([])
    partners.search([("name", "=", "One")])
    stats = server.stats()["databases"][db_name]
    assert stats["calls"]["res.partner"]["search"] == 2
    assert stats["calls"]["res.partner"]["create"] == 1
    assert stats["calls"]["res.users"]["context_get"] == 1
    assert stats["creates"] == {"res.partner": 2}


# -- outages and injected faults -----------------------------------------------------------------
def test_http500_outage_then_recovery(own_server: OdooServer) -> None:
    client = connect(own_server, "ops")
    own_server.set_outage("http500")
    with pytest.raises(urllib.error.HTTPError) as failed:
        client.env["res.partner"].search([])
    assert failed.value.code == 500
    own_server.set_outage("none")
    assert client.env["res.partner"].search_count([]) >= 1


def test_admin_endpoint_switches_the_http500_outage(own_server: OdooServer) -> None:
    client = connect(own_server, "ops")
    for kind in ("http500", "none"):
        request = urllib.request.Request(f"{own_server.url}/_sandbox/odoo/outage", method="POST",
                                         data=json.dumps({"kind": kind}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response) == {"outage": kind}
        if kind == "http500":
            with pytest.raises(urllib.error.HTTPError):
                client.env["res.partner"].search([])
    assert client.env["res.partner"].search_count([]) >= 1


def test_refuse_outage_closes_the_port_until_restored(own_server: OdooServer) -> None:
    client = connect(own_server, "ops")
    own_server.set_outage("refuse")
    with pytest.raises(urllib.error.URLError, match="refused"):
        client.env["res.partner"].search([])
    with pytest.raises(urllib.error.URLError):
        odoorpc.ODOO("127.0.0.1", port=own_server.port, protocol="jsonrpc", timeout=10)
    own_server.set_outage("none")
    assert client.env["res.partner"].search_count([]) >= 1
    assert own_server.stats()["outage"] == "none"


def test_injected_5xx_faults_reach_odoorpc(own_server: OdooServer) -> None:
    client = connect(own_server, "ops")
    own_server.faults = FaultConfig(rate_5xx=1.0)
    with pytest.raises(urllib.error.HTTPError) as failed:
        client.env["res.partner"].search([])
    assert failed.value.code == 503


def test_a_gateway_in_front_of_odoo_answers_502_or_429_with_retry_after(own_server: OdooServer) -> None:
    client = connect(own_server, "ops")
    own_server.faults = FaultConfig(rate_5xx=1.0, status_5xx=502)
    with pytest.raises(urllib.error.HTTPError) as failed:
        client.env["res.partner"].search([])
    assert failed.value.code == 502
    own_server.faults = FaultConfig(rate_429=1.0, retry_after_s=3)
    with pytest.raises(urllib.error.HTTPError) as throttled:
        client.env["res.partner"].search([])
    assert throttled.value.code == 429 and throttled.value.headers["Retry-After"] == "3"


def test_state_saved_to_a_file_survives_a_restart(loop, tmp_path):
    state = tmp_path / "odoo.json"
    first = OdooServer(databases={"crm": {"admin": ADMIN_PASSWORD}})
    _run(loop, first.start())
    try:
        partner = connect(first, "crm").env["res.partner"].create({"name": "Acme", "company_registry": "201912345K"})
    finally:
        _run(loop, first.stop())
    first.save_state(state)
    second = OdooServer(databases={"crm": {"admin": ADMIN_PASSWORD}})
    second.load_state(state)
    _run(loop, second.start())
    try:
        partners = connect(second, "crm").env["res.partner"]
        found = partners.search_read([["company_registry", "=", "201912345K"]], ["name"])
        assert found == [{"id": partner, "name": "Acme"}]
        assert partners.create({"name": "Globex"}) > partner
    finally:
        _run(loop, second.stop())
