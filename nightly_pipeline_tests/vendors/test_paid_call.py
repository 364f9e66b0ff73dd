"""The one paid-call path on the real ledger: reserve, call, settle what the vendor reports, cache."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.db.budget import Scope
from nightly_pipeline.db.public_facts import get_extraction as get_cached
from nightly_pipeline.db.public_facts import put_extraction as put_cached
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors.paid_call import Answer, Billed, NullClient, PaidCall, VendorMeter, unavailable_reason
from nightly_pipeline_tests.kit.night import new_night
from nightly_pipeline_tests.kit.tenants import register_tenant

pytestmark = pytest.mark.database

VENDOR = "acme-maps"
ENDPOINT = "/geocode"


class VendorDown(RuntimeError):
    """What a vendor client raises when the vendor could not answer."""


@pytest.fixture
def night(db: Database) -> TenantNight:
    return new_night(db, register_tenant(db))


def meter(night: TenantNight, cap: int = 10, scope: Scope = Scope.RUN) -> VendorMeter:
    return VendorMeter(night.budget, VENDOR, cap, scope)


def ledger(night: TenantNight) -> list[dict[str, Any]]:
    with night.transaction() as conn:
        return conn.execute("""SELECT endpoint, units_reserved, units_charged, status, settled_at IS NOT NULL AS settled
                               FROM vendor_usage WHERE run_id = %s ORDER BY usage_id""", (night.run_id,)).fetchall()


def billed_nothing(error: Exception, reserved: int) -> Billed:
    return Billed(0, f"error: {type(error).__name__}")


def call(vendor_meter: VendorMeter, units: int, send, **options: Any) -> PaidCall:
    return asyncio.run(vendor_meter.call(ENDPOINT, units, send, billed_for_error=options.pop("billed_for_error",
                                                                                             billed_nothing),
                                         **options))


def test_a_call_is_reserved_settled_with_what_the_vendor_reports_then_cached(night: TenantNight) -> None:
    asked: list[int] = []

    async def send(units: int) -> Answer[dict]:
        asked.append(units)
        return Answer({"industry": "logistics"}, Billed(3, "ok: 3 credits"))

    def store(profile: dict, charged: int) -> None:
        with night.transaction() as conn:
            put_cached(conn, "corpus-1", "model-a", profile, charged)

    paid = call(meter(night), 5, send, store=store)

    assert asked == [5]
    assert (paid.value, paid.units, paid.charged, paid.problem, paid.error, paid.exhausted) == (
        {"industry": "logistics"}, 5, 3, None, None, None)
    assert ledger(night) == [{"endpoint": ENDPOINT, "units_reserved": 5, "units_charged": 3,
                              "status": "ok: 3 credits", "settled": True}]
    with night.transaction() as conn:
        assert get_cached(conn, "corpus-1", "model-a") == {"industry": "logistics"}


def test_without_budget_nothing_is_sent_reserved_or_cached(night: TenantNight) -> None:
    spent = meter(night, cap=10)
    call(spent, 8, lambda units: _answer("first", units))
    sent: list[int] = []

    async def send(units: int) -> Answer[str]:
        sent.append(units)
        return Answer("second", Billed(units, "ok"))

    paid = call(spent, 5, send, store=lambda value, charged: pytest.fail("nothing to cache"))

    assert sent == [] and paid.value is None and spent.cap_reached
    assert (paid.exhausted.remaining, paid.exhausted.cap) == (2, 10)
    assert [row["units_reserved"] for row in ledger(night)] == [8]


def test_a_failed_call_is_settled_by_the_vendors_rule_and_never_cached(night: TenantNight) -> None:
    async def send(units: int) -> Answer[str]:
        raise VendorDown("connection lost after the request went out")

    paid = call(meter(night), 4, send, errors=(VendorDown,),
                billed_for_error=lambda error, reserved: Billed(reserved, "error: maybe billed"),
                store=lambda value, charged: pytest.fail("a failure is never cached"))

    assert paid.value is None and isinstance(paid.error, VendorDown)
    assert (paid.charged, paid.problem) == (4, "error: maybe billed")
    assert ledger(night) == [{"endpoint": ENDPOINT, "units_reserved": 4, "units_charged": 4,
                              "status": "error: maybe billed", "settled": True}]


def test_an_unusable_answer_is_billed_but_not_cached(night: TenantNight) -> None:
    async def send(units: int) -> Answer[str]:
        return Answer(None, Billed(2, "invalid_output"), "reply cut short")

    paid = call(meter(night), 6, send, store=lambda value, charged: pytest.fail("nothing usable to cache"))

    assert (paid.value, paid.charged, paid.problem) == (None, 2, "reply cut short")
    assert [(r["units_charged"], r["status"]) for r in ledger(night)] == [(2, "invalid_output")]


def test_an_error_the_vendor_module_does_not_know_propagates_with_the_whole_reservation_charged(
        night: TenantNight) -> None:
    async def send(units: int) -> Answer[str]:
        raise KeyError("a bug, not a vendor failure")

    with pytest.raises(KeyError):
        call(meter(night), 3, send, errors=(VendorDown,))
    assert [(r["units_charged"], r["status"]) for r in ledger(night)] == [(3, "cancelled")]


def test_a_call_cancelled_mid_flight_leaves_its_reservation_charged(night: TenantNight) -> None:
    async def scenario() -> None:
        started = asyncio.Event()

        async def send(units: int) -> Answer[str]:
            started.set()
            await asyncio.Event().wait()  # the vendor never answers
            raise AssertionError("unreachable")

        task = asyncio.create_task(meter(night).call(ENDPOINT, 7, send, billed_for_error=billed_nothing))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # The settlement runs in a worker thread shielded from the cancellation; asyncio.run waits for it.
    asyncio.run(scenario())
    assert [(r["units_reserved"], r["units_charged"], r["status"]) for r in ledger(night)] == [(7, 7, "cancelled")]


def test_a_partial_reservation_sends_only_what_the_cap_has_left(night: TenantNight) -> None:
    capped = meter(night, cap=10)
    call(capped, 7, lambda units: _answer("first", units))
    sent: list[int] = []

    async def send(units: int) -> Answer[str]:
        sent.append(units)
        return Answer("rest", Billed(units, "ok"))

    paid = call(capped, 5, send, partial=True)

    assert sent == [3] and (paid.value, paid.units, paid.charged) == ("rest", 3, 3) and capped.cap_reached
    assert call(capped, 5, send, partial=True).exhausted is not None
    assert sent == [3]


def test_concurrent_calls_never_spend_past_the_cap(night: TenantNight) -> None:
    vendor_meter = meter(night, cap=10)
    sent: list[int] = []

    async def send(units: int) -> Answer[int]:
        sent.append(units)
        await asyncio.sleep(0)
        return Answer(units, Billed(units, "ok"))

    async def scenario() -> list[PaidCall]:
        return await asyncio.gather(*(vendor_meter.call(ENDPOINT, 1, send, billed_for_error=billed_nothing)
                                      for _ in range(25)))

    results = asyncio.run(scenario())
    assert sum(1 for r in results if r.value is not None) == len(sent) == 10
    assert night.budget.usage()[VENDOR] == {"calls": 10, "charged": 10, "reserved": 10}


def test_a_free_call_is_recorded_at_no_cost(night: TenantNight) -> None:
    asyncio.run(meter(night).record_free("/balance", "ok", started=0.0))
    assert [(r["endpoint"], r["units_reserved"], r["units_charged"], r["status"]) for r in ledger(night)] == [
        ("/balance", 0, 0, "ok")]


def test_a_null_client_names_why_its_vendor_cannot_be_called() -> None:
    async def opened(client: NullClient) -> NullClient:
        async with client as inside:
            return inside

    null = NullClient("no ACME_API_KEY")
    assert asyncio.run(opened(null)) is null
    assert unavailable_reason(null) == "no ACME_API_KEY" and unavailable_reason(object()) is None
    assert not [name for name in vars(NullClient) if not name.startswith("_") and name not in ("close",)]


async def _answer(value: str, units: int) -> Answer[str]:
    return Answer(value, Billed(units, "ok"))


def test_the_nights_meters_carry_each_vendors_cap_and_scope(db: Database) -> None:
    night = new_night(db, register_tenant(db), OPENAI_DAILY_TOKENS_CAP="1000", TAVILY_MAX_QUERIES="2",
                      LUSHA_MAX_CONTACT_LOOKUPS="3", ZEROBOUNCE_MAX_VERIFICATIONS="4")
    meters = {vendor: night.meter(vendor) for vendor in ("openai", "tavily", "lusha", "zerobounce")}
    assert {vendor: (m.vendor, m.cap, m.scope) for vendor, m in meters.items()} == {
        "openai": ("openai", 1000, Scope.DAY), "tavily": ("tavily", 2, Scope.RUN), "lusha": ("lusha", 3, Scope.RUN),
        "zerobounce": ("zerobounce", 4, Scope.RUN)}
    assert all(m.budget is night.budget for m in meters.values())
