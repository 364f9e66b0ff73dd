"""The one retry policy of vendor calls, and Odoo's use of it against the sandbox Odoo."""
import asyncio
import urllib.error
import uuid
from email.message import Message

import pytest

from nightly_pipeline.db.tenants import OdooConnection
from nightly_pipeline.vendors import odoo as odoo_vendor
from nightly_pipeline.vendors.odoo import OdooLoginError, OdooResource, OdooUnavailable
from nightly_pipeline.vendors.retrying import CallRetry, parse_retry_after
from nightly_pipeline_sandbox.base import FaultConfig
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.odoo import OdooServer

PASSWORD = "retry-test-secret"


class Transient(Exception):
    def __init__(self, retry_after_s=None):
        super().__init__("try again")
        self.retry_after_s = retry_after_s


class Fatal(Exception):
    pass


def flaky(failures):
    """A call that raises the given errors in turn, then answers "ok"; ``calls`` counts attempts."""
    pending = list(failures)

    def call():
        call.calls += 1
        if pending:
            raise pending.pop(0)
        return "ok"
    call.calls = 0
    return call


POLICY = CallRetry(lambda e: isinstance(e, Transient), lambda e: getattr(e, "retry_after_s", None),
                   base_wait_s=1.0, max_backoff_s=8.0, max_retry_after_s=30.0)


def test_a_transient_error_is_retried_and_the_answer_returned():
    waits = []
    call = flaky([Transient(), Transient()])
    assert POLICY.call(call, sleep=waits.append) == "ok"
    assert call.calls == 3 and len(waits) == 2
    # Full jitter: each wait lies between 0 and the exponential ceiling of its attempt.
    assert 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0


def test_three_attempts_at_most_then_the_last_error():
    call = flaky([Transient(), Transient(), Transient(), Transient()])
    with pytest.raises(Transient):
        POLICY.call(call, sleep=lambda s: None)
    assert call.calls == 3


def test_a_permanent_error_is_not_retried():
    call = flaky([Fatal()])
    with pytest.raises(Fatal):
        POLICY.call(call, sleep=lambda s: None)
    assert call.calls == 1


def test_retry_after_is_waited_and_one_beyond_the_cap_is_not():
    waits = []
    assert POLICY.call(flaky([Transient(retry_after_s=5)]), sleep=waits.append) == "ok"
    assert 5 <= waits[0] <= 6
    call = flaky([Transient(retry_after_s=3600)])
    with pytest.raises(Transient):
        POLICY.call(call, sleep=waits.append)
    assert call.calls == 1


def test_the_async_form_counts_attempts():
    seen = []

    async def sleep(_):
        return None

    failures = [Transient()]

    async def call():
        if failures:
            raise failures.pop()
        return "ok"

    assert asyncio.run(POLICY.acall(call, sleep=sleep, on_attempt=seen.append)) == "ok"
    assert seen == [1, 2]


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), (" 0 ", 0.0), ("1.5", 1.5), ("", None), (None, None),
                                                ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("-1", None)])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds


def _http_error(status, retry_after=None):
    headers = Message()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return urllib.error.HTTPError("http://odoo/jsonrpc", status, "x", headers, None)


@pytest.mark.parametrize(("error", "transient", "safe_for_create"), [
    (_http_error(429), True, True),
    (_http_error(502), True, True),
    (_http_error(503), True, True),
    (_http_error(500), True, False),
    (_http_error(504), True, False),
    (_http_error(404), False, False),
    (ConnectionRefusedError(), True, True),
    (urllib.error.URLError(ConnectionRefusedError()), True, True),
    (ConnectionResetError(), True, False),
    (TimeoutError(), True, False),
    (ValueError(), False, False),
])
def test_which_odoo_failures_are_retried(error, transient, safe_for_create):
    assert odoo_vendor.is_transient(error) is transient
    assert odoo_vendor.is_not_carried_out(error) is safe_for_create


def test_odoo_retry_after_is_read_from_the_answer():
    assert odoo_vendor.retry_after_of(_http_error(429, "7")) == 7.0
    assert odoo_vendor.retry_after_of(_http_error(429)) is None


# -- against the sandbox Odoo -----------------------------------------------------------------------
@pytest.fixture
def server():
    with serving(OdooServer()) as odoo_server:
        yield odoo_server
        odoo_server.set_outage("none")


@pytest.fixture
def odoo_db(server):
    name = f"tenant_{uuid.uuid4().hex[:8]}"
    server.add_database(name, {"admin": PASSWORD})
    return name


def _connection(server, odoo_db):
    return OdooConnection(url=server.url, db_name=odoo_db, username="admin", password_env="TEST_ODOO_PASSWORD",
                          active=True)


FAST = {"timeout_s": 10, "retry_base_wait_s": 0.01}


def test_a_throttling_odoo_still_answers_every_call(server, odoo_db):
    client = OdooResource(**FAST).connect(_connection(server, odoo_db), PASSWORD)
    server.faults = FaultConfig(rate_429=0.15, rate_5xx=0.15, status_5xx=502, retry_after_s=0)
    ids = [client.create("res.partner", {"name": f"Company {n}", "is_company": True}) for n in range(30)]
    found = [r for r in client.search_read("res.partner", [("is_company", "=", True)], ["id", "name"])
             if r["name"].startswith("Company ")]
    server.faults = FaultConfig()
    statuses = {r.status for r in server.request_log}
    assert {429, 502} <= statuses
    assert sorted(r["id"] for r in found) == sorted(ids) and len(set(ids)) == 30
    assert client.rpc_calls > 31


def test_odoo_down_for_good_fails_after_three_attempts(server, odoo_db):
    client = OdooResource(**FAST).connect(_connection(server, odoo_db), PASSWORD)
    server.set_outage("http500")
    before = len(server.request_log)
    with pytest.raises(OdooUnavailable):
        client.search_read("res.partner", [], ["id"])
    assert len(server.request_log) - before == 3


def test_a_refused_login_is_not_retried(server, odoo_db):
    with pytest.raises(OdooLoginError):
        OdooResource(**FAST).connect(_connection(server, odoo_db), "not-the-password")
    assert sum(1 for r in server.request_log if r.path == "/jsonrpc") == 1
