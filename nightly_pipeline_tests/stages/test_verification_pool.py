"""The night's ZeroBounce batches pooled across tenant runs, against the ZeroBounce sandbox with the
real client and PostgreSQL: runs of several tenants at once share full batches under the key's limit
of 5 batch calls a minute, each tenant's cap and ledger still count exactly its own addresses, and
addresses held by a taker that died are taken again once its lease runs out."""
from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from typing import Any

import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.db import public_facts as facts_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.settings import load_settings
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.stages.verification import VerificationReport, verify_emails
from nightly_pipeline.vendors.zerobounce import BATCH_BUCKET, ZeroBounceClient
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.zerobounce import ZeroBounceServer

pytestmark = pytest.mark.database

KEY = "zb-pool-key"
ADDRESSES_PER_TENANT = 60
# Long enough for three runs started together to queue their addresses before the first batch goes.
POOL_WAIT_S = 15.0


def night_of(db: Database, tenant: int, **settings: str) -> TenantNight:
    return TenantNight(db, tenant, uuid.uuid4(), dt.date(2026, 6, 1), load_settings(settings))


def addresses(tenant_tag: str, count: int = ADDRESSES_PER_TENANT) -> list[str]:
    return [f"valid.{tenant_tag}{i}@firm{i % 7}.com.sg" for i in range(count)]


def verify(server: ZeroBounceServer, emails: list[str], night: TenantNight, **options: Any) -> VerificationReport:
    """One tenant run on its own event loop with its own client, as a worker process runs it."""
    async def run() -> VerificationReport:
        base = f"{server.url}/v2"
        async with ZeroBounceClient(KEY, base_url=base, bulk_base_url=base) as client:
            return await verify_emails(emails, night, client, **options)
    return asyncio.run(run())


def tenant_cache(db: Database, tenant: int) -> set[str]:
    with db.tenant(tenant) as conn:
        return {row["email"] for row in conn.execute("SELECT email FROM email_verification_cache").fetchall()}


def queue_rows(db: Database) -> int:
    with db.shared() as conn:
        return conn.execute("SELECT count(*) AS n FROM public_verification_queue").fetchone()["n"]


def test_three_tenant_runs_at_once_share_batches_and_keep_their_own_caps(db: Database) -> None:
    with db.shared() as conn:
        tenants = [tenants_db.register_tenant(conn, f"pool-{i}", None) for i in range(3)]
    caps = {tenants[0]: "1000", tenants[1]: "1000", tenants[2]: "10"}
    nights = {t: night_of(db, t, ZEROBOUNCE_MAX_VERIFICATIONS=caps[t]) for t in tenants}
    emails = {t: addresses(f"t{t}n") for t in tenants}
    reports: dict[int, VerificationReport] = {}
    errors: list[BaseException] = []

    def run(tenant: int) -> None:
        try:
            reports[tenant] = verify(server, emails[tenant], nights[tenant], pool_wait_s=POOL_WAIT_S)
        except BaseException as error:  # surfaced below: a thread's exception is otherwise lost
            errors.append(error)

    with serving(ZeroBounceServer(api_keys={KEY})) as server:
        threads = [threading.Thread(target=run, args=(t,)) for t in tenants]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = server.stats()

    assert errors == []
    # 130 addresses fit one batch; each run alone would have sent its own.
    assert stats["calls_by_endpoint"]["validatebatch"] < len(tenants)
    assert sum(r.batch_calls for r in reports.values()) == stats["calls_by_endpoint"]["validatebatch"]
    assert stats["max_batch_calls_in_60s"] <= 5 and stats["batch_refusals"] == 0
    assert [reports[t].verified for t in tenants] == [60, 60, 10]
    assert [reports[t].unverified for t in tenants] == [0, 0, 50]
    assert reports[tenants[0]].degradations == [] and reports[tenants[1]].degradations == []
    assert reports[tenants[2]].degradations == [
        "ZeroBounce verification cap reached (10 per run): 50 addresses stay unverified"]
    for tenant in tenants:
        usage = nights[tenant].budget.usage()["zerobounce"]
        paid = reports[tenant].verified
        assert usage["reserved"] == usage["charged"] == reports[tenant].credits_charged == paid
        # Each tenant's view holds its own addresses only, whichever run's batch verified them.
        assert tenant_cache(db, tenant) == set(reports[tenant].policies) <= set(emails[tenant])
    assert stats["credits_used"] == stats["addresses_validated"] == 130
    assert queue_rows(db) == 0


class DeadTakerFirst:
    """A batch limiter whose first turn lets a taker in another process take the whole queue with a
    short lease and die before sending it."""

    def __init__(self, db: Database, lease: dt.timedelta) -> None:
        self.db = db
        self.lease = lease
        self.taken: list[str] = []

    async def __aenter__(self) -> None:
        if not self.taken:
            def take() -> list[str]:
                with self.db.shared() as conn:
                    return facts_db.take_verification_batch(conn, 200, self.lease)
            self.taken = await asyncio.to_thread(take)

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def test_addresses_of_a_taker_that_died_are_taken_again_when_its_lease_runs_out(db: Database) -> None:
    with db.shared() as conn:
        tenant = tenants_db.register_tenant(conn, "acme", None)
    night = night_of(db, tenant)
    emails = addresses("d", 30)
    dead_taker = DeadTakerFirst(db, dt.timedelta(seconds=1))
    with serving(ZeroBounceServer(api_keys={KEY})) as server:
        report = verify(server, emails, night, pool_wait_s=0.0, limiter=dead_taker)
        stats = server.stats()

    assert sorted(dead_taker.taken) == sorted(emails), "the dead taker held every address"
    assert (report.verified, report.unverified, report.degradations) == (30, 0, [])
    assert stats["calls_by_endpoint"]["validatebatch"] == report.batch_calls == 1
    assert night.budget.usage()["zerobounce"]["charged"] == 30 == stats["credits_used"]
    # The slot taken while the dead taker held everything carried no call and was given back.
    key = ZeroBounceClient(KEY).key_fingerprint
    with db.shared() as conn:
        slots = conn.execute("SELECT count(*) AS n FROM vendor_rate_calls WHERE key_sha256 = %s AND bucket = %s",
                             (key, BATCH_BUCKET)).fetchone()["n"]
    assert slots == 1
    assert queue_rows(db) == 0


def test_without_reuse_each_run_pays_for_its_own_addresses_in_batches_of_its_own(db: Database) -> None:
    with db.shared() as conn:
        tenants = [tenants_db.register_tenant(conn, f"alone-{i}", None) for i in range(3)]
    emails = addresses("same")
    reports: list[VerificationReport] = []
    with serving(ZeroBounceServer(api_keys={KEY})) as server:
        for tenant in tenants[:2]:
            night = night_of(db, tenant, PUBLIC_FACTS_REUSE="false")
            reports.append(verify(server, emails, night))
            usage = night.budget.usage()["zerobounce"]
            assert usage["reserved"] == usage["charged"] == len(emails)
        alone = server.stats()
        # The default: a third tenant takes the verdicts the night already has.
        reports.append(verify(server, emails, night_of(db, tenants[2])))
        shared = server.stats()

    assert [(r.verified, r.cache_hits, r.batch_calls, r.degradations) for r in reports[:2]] == [(60, 0, 1, [])] * 2
    assert alone["calls_by_endpoint"]["validatebatch"] == 2 and alone["addresses_validated"] == 120
    assert (reports[2].verified, reports[2].cache_hits, reports[2].batch_calls) == (0, 60, 0)
    assert shared["calls_by_endpoint"] == alone["calls_by_endpoint"]
    assert tenant_cache(db, tenants[1]) == set(emails)
    assert queue_rows(db) == 0
