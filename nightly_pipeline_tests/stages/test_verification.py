"""Email verification through the ZeroBounce sandbox with the real httpx client and PostgreSQL: the
status policy, the cache, the per-run cap, the 5-batches-a-minute limit and outages."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.domain.contacts import VerificationPolicy
from nightly_pipeline.stages.verification import RollingWindowLimiter, VerificationReport, verify_emails
from nightly_pipeline.settings import load_settings
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors.retrying import CallRetry
from nightly_pipeline.vendors.zerobounce import NO_KEY, ZEROBOUNCE_RETRY, NullZeroBounceClient, ZeroBounceClient
from nightly_pipeline_sandbox.base import FaultConfig
from nightly_pipeline_sandbox.zerobounce import ZeroBounceServer
from nightly_pipeline_sandbox.harness import serving

pytestmark = pytest.mark.database

KEY = "zb-test-key"
STATUS_PREFIXES = {"valid": "valid", "invalid": "invalid", "catchall": "catch-all", "unknown": "unknown",
                   "spamtrap": "spamtrap", "abuse": "abuse", "donotmail": "do_not_mail"}
EXPECTED_POLICY = {"valid": "deliverable", "catch-all": "risky", "unknown": "risky", "invalid": "suppressed",
                   "spamtrap": "suppressed", "abuse": "suppressed", "do_not_mail": "suppressed"}
# Fast enough for tests, still one batch call at a time and never more than the sandbox allows.
FAST = {"batches_per_minute": 5, "period_s": 0.5}


@pytest.fixture
def tenant(db: Database) -> int:
    with db.shared() as conn:
        return tenants_db.register_tenant(conn, "acme", None)


@contextlib.contextmanager
def zerobounce_server(**options: Any) -> Iterator[ZeroBounceServer]:
    with serving(ZeroBounceServer(api_keys={KEY}, **options)) as server:
        yield server


def run_stage(server: ZeroBounceServer | None, emails: Sequence[str], night: TenantNight, *,
              key: str = KEY, bulk_url: str | None = None, max_verifications: int = 1_000,
              retry: CallRetry | None = None, **options: Any) -> VerificationReport:
    # The fleet's limiter keeps real minutes; these tests pace with the stage's own limiter against a
    # sandbox whose minute is scaled down, so the fleet's allowance is set out of the way.
    night = dataclasses.replace(
        night, settings=load_settings({"ZEROBOUNCE_MAX_VERIFICATIONS": str(max_verifications),
                                       "ZEROBOUNCE_BATCHES_PER_MINUTE": "1000", "ZEROBOUNCE_POOL_WAIT_S": "0"}))

    async def run() -> VerificationReport:
        if server is None:
            client: ZeroBounceClient | NullZeroBounceClient = NullZeroBounceClient(NO_KEY)
        else:
            base = f"{server.url}/v2"
            client = ZeroBounceClient(key, base_url=base, bulk_base_url=bulk_url or base,
                                      **({"retry": retry} if retry is not None else {}))
        async with client:
            return await verify_emails(emails, night, client, **options)
    return asyncio.run(run())


def new_night(db: Database, tenant: int) -> TenantNight:
    """A run of ``tenant`` with its own ledger (verification needs no manifest)."""
    return TenantNight(db, tenant, uuid.uuid4(), dt.date(2026, 6, 1), load_settings({}))


def cache(db: Database, tenant: int) -> dict[str, dict[str, Any]]:
    with db.tenant(tenant) as conn:
        rows = conn.execute("SELECT *, expires_at - verified_at AS ttl FROM email_verification_cache").fetchall()
    return {row["email"]: row for row in rows}


def forced(count_per_status: int) -> list[str]:
    """Addresses whose local part forces each ZeroBounce status in the sandbox."""
    return [f"{prefix}.p{i}@acme.com.sg" for prefix in STATUS_PREFIXES for i in range(count_per_status)]


def valid_addresses(count: int, tag: str = "a") -> list[str]:
    return [f"valid.{tag}{i}@firm{i % 40}.com.sg" for i in range(count)]


def test_status_policy_through_the_sandbox(db: Database, tenant: int) -> None:
    emails = forced(2)
    night = new_night(db, tenant)
    with zerobounce_server() as server:
        report = run_stage(server, [e.upper() for e in emails], night, **FAST)
        stats = server.stats()

    assert report.by_status == {status: 2 for status in STATUS_PREFIXES.values()}
    assert report.verified == 14 and report.unverified == 0 and report.degradations == []
    assert report.batch_calls == 1 and report.single_calls == 0
    assert report.credits_charged == 12 == stats["credits_used"], "unknown results are free"
    assert night.budget.usage()["zerobounce"]["charged"] == 12
    cached = cache(db, tenant)
    assert set(cached) == set(emails)
    for email, row in cached.items():
        assert row["policy"] == EXPECTED_POLICY[row["status"]] == report.policies[email]
        assert row["ttl"] == (dt.timedelta(days=1) if row["status"] == "unknown" else dt.timedelta(days=90))
    assert report.by_policy == {"deliverable": 2, "risky": 4, "suppressed": 8}


def test_a_handful_of_addresses_goes_through_single_validate(db: Database, tenant: int) -> None:
    with zerobounce_server() as server:
        report = run_stage(server, ["valid.a@acme.com.sg", "invalid.b@acme.com.sg", "valid.a@acme.com.sg"],
                           new_night(db, tenant), **FAST)
        calls = server.stats()["calls_by_endpoint"]
    assert calls == {"getcredits": 1, "validate": 2}
    assert (report.requested, report.single_calls, report.batch_calls) == (2, 2, 0)
    assert report.policies == {"valid.a@acme.com.sg": "deliverable", "invalid.b@acme.com.sg": "suppressed"}


def test_a_rerun_pays_for_nothing(db: Database, tenant: int) -> None:
    emails = forced(2)
    with zerobounce_server() as server:
        run_stage(server, emails, new_night(db, tenant), **FAST)
        requests_after_first = server.stats()["requests"]
        second_night = new_night(db, tenant)
        second = run_stage(server, emails, second_night, **FAST)
        assert server.stats()["requests"] == requests_after_first
    assert (second.cache_hits, second.verified, second.credits_charged) == (14, 0, 0)
    assert second_night.budget.usage() == {}
    assert second.by_policy == {"deliverable": 2, "risky": 4, "suppressed": 8}


def test_unknown_verdicts_are_verified_again_once_they_expire(db: Database, tenant: int) -> None:
    emails = forced(2)
    short_unknown = VerificationPolicy(ttl_by_status={"unknown": dt.timedelta(0)})
    with zerobounce_server() as server:
        run_stage(server, emails, new_night(db, tenant), policy=short_unknown, **FAST)
        second = run_stage(server, emails, new_night(db, tenant), policy=short_unknown, **FAST)
        calls = server.stats()["calls_by_endpoint"]
    assert (second.cache_hits, second.verified, second.by_status) == (12, 2, {"unknown": 2})
    assert calls["validate"] == 2 and calls["validatebatch"] == 1


def test_the_cap_trims_the_last_batch_and_reports_the_rest(db: Database, tenant: int) -> None:
    night = new_night(db, tenant)
    with zerobounce_server() as server:
        report = run_stage(server, valid_addresses(450), night, max_verifications=300, **FAST)
        stats = server.stats()

    assert stats["addresses_validated"] == report.verified == 300
    assert report.unverified == 150
    assert report.degradations == ["ZeroBounce verification cap reached (300 per run): 150 addresses stay unverified"]
    usage = night.budget.usage()["zerobounce"]
    assert usage["reserved"] == usage["charged"] == 300
    assert len(cache(db, tenant)) == 300


def scaled_clock(factor: float):
    """The sandbox's clock running ``factor`` times faster, so its rolling minute lasts 60/factor s."""
    return lambda: time.monotonic() * factor


def test_no_more_than_five_batches_in_any_rolling_minute(db: Database, tenant: int) -> None:
    # The sandbox's minute lasts 2 s here, and the limiter is given the same 2 s period.
    with zerobounce_server(clock=scaled_clock(30.0)) as server:
        report = run_stage(server, valid_addresses(1_200), new_night(db, tenant), max_verifications=1_200,
                           batches_per_minute=5, period_s=2.0)
        stats = server.stats()

    assert report.batch_calls == stats["calls_by_endpoint"]["validatebatch"] == 6
    assert stats["batch_refusals"] == 0 and report.degradations == []
    assert stats["max_batch_calls_in_60s"] == 5, "the sixth batch waited for the minute to roll over"
    assert report.verified == 1_200


def test_batches_sent_faster_than_allowed_are_throttled_and_delayed_to_next_night(db: Database, tenant: int) -> None:
    night = new_night(db, tenant)
    with zerobounce_server(clock=scaled_clock(30.0)) as server:
        report = run_stage(server, valid_addresses(1_200), night, max_verifications=1_200,
                           batches_per_minute=1_000, period_s=2.0)
        stats = server.stats()

    assert stats["batch_refusals"] >= 1
    [delayed] = report.degradations
    assert delayed.startswith("verification delayed to next night: ZeroBounce validatebatch answered 429")
    assert report.verified == 1_000 and report.unverified == 200
    assert len(cache(db, tenant)) == 1_000
    assert night.budget.usage()["zerobounce"]["charged"] == stats["credits_used"] == 1_000


def test_a_batch_lost_to_an_outage_leaves_only_its_own_addresses_for_next_night(db: Database, tenant: int) -> None:
    night = new_night(db, tenant)
    # Seed 2 answers the credit check and then fails some of the six batches with 503, not all; the
    # client makes one attempt per call, so a failed call is a lost batch (retries are tested apart).
    with zerobounce_server(seed=2, faults=FaultConfig(rate_5xx=0.3)) as server:
        report = run_stage(server, valid_addresses(1_200), night, max_verifications=1_200,
                           retry=dataclasses.replace(ZEROBOUNCE_RETRY, max_attempts=1), **FAST)
        stats = server.stats()

    assert report.batch_calls == 6
    assert 0 < report.verified < 1_200, "the batches after a lost one were still sent and verified"
    assert report.verified % 200 == 0 and report.unverified == 1_200 - report.verified
    assert report.degradations == ["verification delayed to next night: ZeroBounce validatebatch answered 503"]
    assert len(cache(db, tenant)) == report.verified == stats["addresses_validated"]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2"


def test_an_outage_delays_verification_instead_of_failing(db: Database, tenant: int) -> None:
    night = new_night(db, tenant)
    with zerobounce_server() as server:
        unreachable = run_stage(server, valid_addresses(300), night, bulk_url=closed_port_url(), **FAST)
    assert unreachable.degradations == ["verification delayed to next night: ZeroBounce validatebatch: ConnectError"]
    assert (unreachable.verified, unreachable.unverified) == (0, 300)
    assert night.budget.usage()["zerobounce"]["charged"] == 0 and cache(db, tenant) == {}

    with zerobounce_server(faults=FaultConfig(rate_5xx=1.0)) as server:
        failing = run_stage(server, valid_addresses(300), new_night(db, tenant), **FAST)
    assert failing.degradations == ["verification delayed to next night: ZeroBounce getcredits answered 503"]
    assert failing.unverified == 300


def test_an_account_running_out_of_credits_stops_verification(db: Database, tenant: int) -> None:
    night = new_night(db, tenant)
    with zerobounce_server(credits=150) as server:
        report = run_stage(server, valid_addresses(200), night, **FAST)
        stats = server.stats()
    assert report.verified == 150 and report.unverified == 50
    [refused] = report.degradations
    assert refused.startswith("ZeroBounce refused verification: ZeroBounce /validatebatch refused 50 addresses")
    assert night.budget.usage()["zerobounce"]["charged"] == stats["credits_used"] == 150


def test_without_a_key_or_budget_addresses_stay_unverified(db: Database, tenant: int) -> None:
    emails = valid_addresses(20)
    no_key = run_stage(None, emails, new_night(db, tenant))
    assert no_key.degradations == ["no ZEROBOUNCE_API_KEY: 20 addresses stay unverified"]
    assert no_key.unverified == 20

    with zerobounce_server() as server:
        no_budget = run_stage(server, emails, new_night(db, tenant), max_verifications=0, **FAST)
        assert "validatebatch" not in server.stats()["calls_by_endpoint"]
    assert no_budget.degradations == ["ZeroBounce verification cap reached (0 per run): 20 addresses stay unverified"]
    assert cache(db, tenant) == {}


def test_a_refused_key_is_reported_and_never_printed(db: Database, tenant: int,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    secret = "not-the-right-zerobounce-key"
    with caplog.at_level(logging.INFO, logger="httpx"), zerobounce_server() as server:
        report = run_stage(server, valid_addresses(10), new_night(db, tenant), key=secret, **FAST)
    assert report.degradations == [
        "ZeroBounce refused verification: ZeroBounce getcredits: the API key is not valid; addresses stay unverified"]
    assert "getcredits?api_key=" in caplog.text and secret not in caplog.text


def test_the_rolling_window_limiter_admits_a_full_window_and_never_one_more() -> None:
    from nightly_pipeline.stages.verification import RollingWindowLimiter

    limiter = RollingWindowLimiter(3, 0.3)
    starts: list[float] = []

    async def call() -> None:
        async with limiter:
            starts.append(time.monotonic())

    async def scenario() -> None:
        await asyncio.gather(*(call() for _ in range(8)))

    asyncio.run(scenario())
    assert starts[2] - starts[0] < 0.1, "a full window's allowance goes at once"
    assert all(later - earlier >= 0.3 - 0.002 for earlier, later in zip(starts, starts[3:])), \
        "any four consecutive starts span at least one window"


class CountingLimiter(RollingWindowLimiter):
    """The stage's batch pace, counting the turns taken at it."""

    def __init__(self, max_calls: int, period_s: float) -> None:
        super().__init__(max_calls, period_s)
        self.turns = 0

    async def __aenter__(self) -> None:
        self.turns += 1
        await super().__aenter__()


def test_a_run_at_its_cap_waits_for_no_batch_it_cannot_send(db: Database, tenant: int) -> None:
    # One batch per window: each turn at the limiter beyond the batches sent would cost a window.
    limiter = CountingLimiter(1, 0.5)
    with zerobounce_server() as server:
        report = run_stage(server, valid_addresses(1_200), new_night(db, tenant), max_verifications=300,
                           limiter=limiter)
        stats = server.stats()
    assert report.verified == stats["addresses_validated"] == 300
    assert report.batch_calls == stats["calls_by_endpoint"]["validatebatch"] == 2
    assert limiter.turns == 2, "no turn at the limiter for the batches past the cap"
