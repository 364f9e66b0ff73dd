"""The verification stage: ZeroBounce verdicts for contact addresses, each address paid for once by
the whole fleet.

An address's verdict is a public fact: it is kept in ``public_email_verifications`` (no tenant, no
run) until its policy's expiry, and any tenant's run reuses it without a call. Each tenant keeps its
own view of its addresses' verdicts in ``email_verification_cache`` (under RLS), copied from the
fleet's. Addresses another run is verifying right now (a claim in ``public_fact_claims``) are
waited for, not sent again; a claim whose run died expires and the address is sent. Addresses
with a fresh verdict are not sent again. The rest go to
``validatebatch`` in batches of up to ``batch_size`` (single ``validate`` calls for a handful),
after a free ``getcredits`` check of the account. Each call takes the paid-call path: one unit per
address of the run's ``ZEROBOUNCE_MAX_VERIFICATIONS`` reserved (trimming the batch to what is
left), what ZeroBounce billed (every result except ``unknown``) settled, and the verdicts cached
with the policy and expiry of :class:`~nightly_pipeline.domain.contacts.VerificationPolicy`, so
``unknown`` is retried on a later night. A throttled or refused ZeroBounce stops verification for
this run without raising: the addresses stay unverified and the report says why, as it does without
a key. A batch lost to an outage leaves only its own addresses for the next night.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db import public_facts as facts_db
from nightly_pipeline.domain.contacts import VerificationPolicy
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.stages.public_facts import DEFAULT_CLAIM_TTL, POLL_S
from nightly_pipeline.vendors import zerobounce as zerobounce_vendor
from nightly_pipeline.vendors.zerobounce import (
    MAX_BATCH_SIZE,
    BatchResult,
    NullZeroBounceClient,
    Validation,
    ZeroBounceClient,
    ZeroBounceError,
    ZeroBounceRejected,
    ZeroBounceUnavailable,
)

BATCH_ENDPOINT = "/validatebatch"
SINGLE_ENDPOINT = "/validate"
CREDITS_ENDPOINT = "/getcredits"
DEFAULT_BATCH_SIZE = MAX_BATCH_SIZE
DEFAULT_BATCHES_PER_MINUTE = 5
# Fewer pending addresses than this are verified one by one, not as a batch.
SINGLE_CALLS_BELOW = 5
# ZeroBounce counts batch calls as they arrive, not as we send them: a window a tenth longer than
# the vendor's keeps network jitter from ever putting one call too many into its rolling minute.
LIMIT_MARGIN = 1.1


class RollingWindowLimiter:
    """At most ``max_calls`` starts in any rolling ``period_s`` (``async with limiter: ...``).

    A token bucket (aiolimiter) either spaces calls evenly, wasting the window's allowance, or with
    a bucket of N admits up to 2N - 1 calls inside one rolling period, which ZeroBounce answers with
    a block; this admits a full window at once and never one call more.
    """

    def __init__(self, max_calls: int, period_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_calls < 1 or period_s <= 0:
            raise ValueError("max_calls must be >= 1 and period_s > 0")
        self.max_calls = max_calls
        self.period_s = period_s
        self._clock = clock
        self._starts: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        async with self._lock:
            while len(self._starts) >= self.max_calls:
                wait = self._starts[0] + self.period_s - self._clock()
                if wait <= 0:
                    self._starts.popleft()
                else:
                    await asyncio.sleep(wait)
            self._starts.append(self._clock())

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def batch_limiter(batches_per_minute: int = DEFAULT_BATCHES_PER_MINUTE, period_s: float = 60.0) -> RollingWindowLimiter:
    """``batches_per_minute`` batch calls per rolling ``period_s`` (widened by :data:`LIMIT_MARGIN`).

    A pace within one event loop; the key's limit across processes is the client's fleet limiter.
    """
    if batches_per_minute < 1 or period_s <= 0:
        raise ValueError("batches_per_minute must be >= 1 and period_s > 0")
    return RollingWindowLimiter(batches_per_minute, period_s * LIMIT_MARGIN)


@dataclasses.dataclass
class VerificationReport:
    """What the stage did; ``policies`` maps every address with a verdict to its policy."""

    requested: int = 0
    cache_hits: int = 0
    verified: int = 0
    unverified: int = 0
    by_status: dict[str, int] = dataclasses.field(default_factory=dict)
    by_policy: dict[str, int] = dataclasses.field(default_factory=dict)
    credits_charged: int = 0
    account_credits: int | None = None
    batch_calls: int = 0
    single_calls: int = 0
    degradations: list[str] = dataclasses.field(default_factory=list)
    policies: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Counters and degradations; the per-address policies stay out of run records."""
        data = dataclasses.asdict(self)
        data.pop("policies")
        return data


def _distinct_addresses(emails: Iterable[str]) -> list[str]:
    addresses = (email.strip().lower() for email in emails if isinstance(email, str))
    return list(dict.fromkeys(address for address in addresses if "@" in address))


class _Verifier:
    """The calls of one run: the meter, the stop switch and the verdicts gathered."""

    def __init__(self, client: ZeroBounceClient, night: TenantNight, *, policy: VerificationPolicy) -> None:
        self.client = client
        self.night = night
        self.meter = night.meter("zerobounce")
        self.policy = policy
        self.validations: dict[str, Validation] = {}
        self.calls: Counter[str] = Counter()
        self.credits_charged = 0
        self.stop_reason: str | None = None
        self.lost_reason: str | None = None

    @property
    def cap_reached(self) -> bool:
        return self.meter.cap_reached

    async def account_credits(self) -> int | None:
        """The account's balance (a free call); stops the run when ZeroBounce cannot verify anything."""
        started = time.monotonic()
        try:
            credits = await self.client.credits()
        except ZeroBounceError as error:
            await self.meter.record_free(CREDITS_ENDPOINT, f"error: {type(error).__name__}", started)
            self._stop(error)
            return None
        await self.meter.record_free(CREDITS_ENDPOINT, "ok", started)
        if credits < 1:
            self.stop_reason = "ZeroBounce account has no credits left: addresses stay unverified"
        return credits

    async def verify_singly(self, emails: Sequence[str]) -> None:
        await asyncio.gather(*(self._verify(SINGLE_ENDPOINT, [email], None) for email in emails))

    async def verify_in_batches(self, emails: Sequence[str], batch_size: int,
                                limiter: RollingWindowLimiter | None) -> None:
        batches = [list(emails[i:i + batch_size]) for i in range(0, len(emails), batch_size)]
        # A batch pools many companies' addresses; SCHED_COMPANY_CONCURRENCY bounds the calls in flight.
        gate = asyncio.Semaphore(self.night.settings.sched_company_concurrency)

        async def one(batch: list[str]) -> None:
            async with gate:
                await self._verify(BATCH_ENDPOINT, batch, limiter)

        async with asyncio.TaskGroup() as group:
            for batch in batches:
                group.create_task(one(batch))

    async def _verify(self, endpoint: str, emails: list[str], limiter: RollingWindowLimiter | None) -> None:
        if self.stop_reason is not None:
            return
        async with limiter if limiter is not None else contextlib.nullcontext():
            if self.stop_reason is not None:
                return
            result = await self._paid_call(endpoint, emails)
        if result is None:
            return
        self.validations.update((v.email, v) for v in _asked(result, emails))
        if result.errors:
            first = result.errors[0]
            self._stop(ZeroBounceRejected(f"ZeroBounce {endpoint} refused {len(result.errors)} addresses: "
                                          f"{first.error}"))

    async def _paid_call(self, endpoint: str, emails: list[str]) -> BatchResult | None:
        """Verify as many of ``emails`` as the cap has left; the verdicts are cached after the call."""
        async def send(units: int) -> Any:
            self.calls[endpoint] += 1
            return zerobounce_vendor.batch_answer(await self._send(endpoint, emails[:units]))

        paid = await self.meter.call(endpoint, len(emails), send, billed_for_error=zerobounce_vendor.billed_for_error,
                                     errors=(ZeroBounceError,), store=lambda result, _: self._store(result, emails),
                                     partial=True)
        if paid.error is not None:
            self._stop(paid.error)
            return None
        self.credits_charged += paid.charged
        return paid.value

    async def _send(self, endpoint: str, emails: list[str]) -> BatchResult:
        if endpoint == BATCH_ENDPOINT:
            return await self.client.validate_batch(emails)
        return BatchResult((await self.client.validate(emails[0]),), ())

    def _stop(self, error: Exception) -> None:
        if isinstance(error, ZeroBounceUnavailable):
            # One batch lost to an outage (after the client's attempts) leaves its addresses for the
            # next night; the other batches still go. A refusal or a throttle stops them all.
            if self.lost_reason is None:
                self.lost_reason = f"verification delayed to next night: {error}"
            return
        if self.stop_reason is not None:
            return
        if isinstance(error, ZeroBounceRejected):
            self.stop_reason = f"ZeroBounce refused verification: {error}; addresses stay unverified"
        else:
            self.stop_reason = f"verification delayed to next night: {error}"

    def _store(self, result: BatchResult, emails: list[str]) -> None:
        verdicts = [(v.email, v.status, v.sub_status or None, str(self.policy.deliverability(v.status)),
                     self.policy.ttl(v.status)) for v in _asked(result, emails)]
        with self.night.db.shared() as conn:
            facts_db.put_verdicts(conn, verdicts)
        _adopt(self.night, [email for email, *_ in verdicts])


def _asked(result: BatchResult, emails: list[str]) -> list[Validation]:
    """The verdicts of the addresses asked for (ZeroBounce may answer for others too)."""
    asked = set(emails)
    return [v for v in result.validations if v.email in asked]


def _cached(night: TenantNight, addresses: list[str]) -> dict[str, facts_db.Verdict]:
    """The fleet's fresh verdicts of ``addresses``, adopted into the tenant's view."""
    with night.db.shared() as conn:
        verdicts = facts_db.fresh_verdicts(conn, addresses)
    if verdicts:
        _adopt(night, list(verdicts))
    return verdicts


def _adopt(night: TenantNight, emails: list[str]) -> None:
    """The tenant's view of these addresses: the fleet's current verdicts, copied under RLS."""
    with night.db.shared() as conn:
        verdicts = facts_db.fresh_verdicts(conn, emails)
    records = [contacts_db.VerificationRecord(v.email, v.status, v.sub_status, v.policy, v.expires_at - v.verified_at)
               for v in verdicts.values()]
    with night.transaction() as conn:
        contacts_db.put_verifications(conn, records)


def _claim(night: TenantNight, emails: list[str]) -> set[str]:
    with night.db.shared() as conn:
        return facts_db.claim_many(conn, "verification", emails, DEFAULT_CLAIM_TTL)


def _release(night: TenantNight, emails: list[str]) -> None:
    with night.db.shared() as conn:
        facts_db.release(conn, "verification", emails)


async def _wait_for_others(night: TenantNight, emails: list[str]) -> dict[str, facts_db.Verdict]:
    """Verdicts of ``emails`` that other runs are verifying, as they arrive (at most a claim's lifetime)."""
    deadline = time.monotonic() + DEFAULT_CLAIM_TTL.total_seconds()
    found: dict[str, facts_db.Verdict] = {}
    while len(found) < len(emails) and time.monotonic() < deadline:
        found.update(await asyncio.to_thread(_cached, night, [e for e in emails if e not in found]))
        if len(found) < len(emails):
            claimed = await asyncio.to_thread(_claim, night, [e for e in emails if e not in found])
            if claimed:
                # Their claimers finished or died: what they stored is taken, the rest this run sends itself.
                found.update(await asyncio.to_thread(_cached, night, sorted(claimed)))
                await asyncio.to_thread(_release, night, sorted(claimed))
                break
            await asyncio.sleep(POLL_S)
    return found


async def verify_emails(emails: Iterable[str], night: TenantNight, client: ZeroBounceClient | NullZeroBounceClient,
                        *, batch_size: int = DEFAULT_BATCH_SIZE, batches_per_minute: int | None = None,
                        period_s: float = 60.0, policy: VerificationPolicy | None = None,
                        limiter: RollingWindowLimiter | None = None) -> VerificationReport:
    """Verify the addresses without a fresh cached verdict; never raises for vendor trouble.

    ``client`` must be open on the running event loop (``async with client:``). The client's key
    limits, kept by every process together, pace its calls (see ``TenantNight.share_limits``); a
    ``limiter`` (or :func:`batch_limiter` of ``batches_per_minute`` per ``period_s`` when
    ``batches_per_minute`` is given) adds a pace of this event loop's own to the batch calls, e.g.
    for a sandbox whose minute is scaled down.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be in 1..{MAX_BATCH_SIZE}, got {batch_size}")
    policy = policy or VerificationPolicy()
    addresses = _distinct_addresses(emails)
    report = VerificationReport(requested=len(addresses))
    cached = await asyncio.to_thread(_cached, night, addresses) if addresses else {}
    report.cache_hits = len(cached)
    report.policies = {email: verdict.policy for email, verdict in cached.items()}
    pending = [address for address in addresses if address not in cached]
    if pending and isinstance(client, NullZeroBounceClient):
        report.degradations.append(f"{client.reason}: {len(pending)} addresses stay unverified")
    elif pending and isinstance(client, ZeroBounceClient):
        night.share_limits("zerobounce", client)
        mine = await asyncio.to_thread(_claim, night, pending)
        try:
            others = [address for address in pending if address not in mine]
            if others:
                arrived = await _wait_for_others(night, others)
                report.cache_hits += len(arrived)
                report.policies.update((email, verdict.policy) for email, verdict in arrived.items())
                pending = [address for address in pending if address not in arrived]
            verifier = _Verifier(client, night, policy=policy)
            if pending:
                await _verify_pending(verifier, pending, batch_size,
                                      limiter or (batch_limiter(batches_per_minute, period_s)
                                                  if batches_per_minute is not None else None), report)
        finally:
            await asyncio.to_thread(_release, night, sorted(mine))
    report.unverified = len(pending) - report.verified
    report.by_policy = dict(Counter(report.policies.values()))
    return report


async def _verify_pending(verifier: _Verifier, pending: list[str], batch_size: int,
                          limiter: RollingWindowLimiter | None,
                          report: VerificationReport) -> None:
    report.account_credits = await verifier.account_credits()
    if verifier.stop_reason is None:
        if len(pending) < SINGLE_CALLS_BELOW:
            await verifier.verify_singly(pending)
        else:
            await verifier.verify_in_batches(pending, batch_size, limiter)
    verdicts = verifier.validations.values()
    report.verified = len(verifier.validations)
    report.by_status = dict(Counter(v.status for v in verdicts))
    report.policies.update((v.email, str(verifier.policy.deliverability(v.status))) for v in verdicts)
    report.credits_charged = verifier.credits_charged
    report.batch_calls = verifier.calls[BATCH_ENDPOINT]
    report.single_calls = verifier.calls[SINGLE_ENDPOINT]
    left = len(pending) - report.verified
    if verifier.cap_reached and left:
        report.degradations.append(f"ZeroBounce verification cap reached ({verifier.meter.cap} per run): "
                                   f"{left} addresses stay unverified")
    if verifier.stop_reason is not None:
        report.degradations.append(verifier.stop_reason)
    elif verifier.lost_reason is not None:
        report.degradations.append(verifier.lost_reason)
