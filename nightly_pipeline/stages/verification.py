"""The verification stage: ZeroBounce verdicts for contact addresses, each address paid for once by
the whole fleet, sent in batches pooled across every tenant run of the night.

An address's verdict is a public fact: it is kept in ``public_email_verifications`` (no tenant, no
run) until its policy's expiry, and any tenant's run reuses it without a call. Each tenant keeps its
own view of its addresses' verdicts in ``email_verification_cache`` (under RLS), copied from the
fleet's. Addresses another run is verifying right now (a claim in ``public_fact_claims``) are
waited for, not sent again; a claim whose run died expires and the address is sent.

ZeroBounce allows 5 ``validatebatch`` calls a minute per key, so the night's batches are shared: a
run reserves one unit of its ``ZEROBOUNCE_MAX_VERIFICATIONS`` per address it sends (trimmed to what
the cap has left) and queues those addresses in ``public_verification_queue``, which names no tenant
or run. Whenever a run has addresses waiting and gets one of the key's batch slots, it takes up to
200 of the oldest queued addresses, whoever queued them, sends them, stores their verdicts and marks
each row with how it ended; a taker that dies leaves its rows leased, and they are taken again when
the lease runs out. A run that queued an address reads how it ended, copies the verdict into its
tenant's view, and settles its reservation with what ZeroBounce billed for its own addresses (every
result except ``unknown``), so each tenant's cap and ledger count exactly its own addresses whoever
sent them. Before taking a partly filled batch, a run waits up to ``ZEROBOUNCE_POOL_WAIT_S`` for
other runs to fill it, as long as another run is verifying (one that holds verification claims). A handful of addresses goes through single ``validate`` calls instead, which
the batch limit does not count.

A throttled or refused ZeroBounce stops verification for this run without raising: its addresses
stay unverified and the report says why, as it does without a key. A batch lost to an outage leaves
only its own addresses for the next night.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import math
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
from nightly_pipeline.vendors.paid_call import Answer, Billed
from nightly_pipeline.vendors.zerobounce import (
    MAX_BATCH_SIZE,
    BatchResult,
    NullZeroBounceClient,
    Validation,
    ZeroBounceClient,
    ZeroBounceError,
    ZeroBounceRejected,
    ZeroBounceThrottled,
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
# A taker holds its batch's addresses this long; a batch of 200 can take 70 s, a retry waits for a slot.
DEFAULT_LEASE = dt.timedelta(minutes=5)
# Queued addresses that no batch took or ended for this long (every taker gone) are given up on.
STALL_LEASES = 2
CLAIM_RENEWAL_S = 60.0


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


@dataclasses.dataclass
class _Pooled:
    """This run's queued addresses not ended yet, and what ZeroBounce billed for the ended ones."""

    waiting: set[str]
    charged: int = 0
    # Every address this run queued, ended or not: its own claims, not another run's.
    queued: frozenset[str] = frozenset()
    # This run's takers between deciding to take a batch and taking it.
    seeking: int = 0


class _Verifier:
    """The calls of one run: the meter, the stop switch and the verdicts of its own addresses."""

    def __init__(self, client: ZeroBounceClient, night: TenantNight, *, policy: VerificationPolicy,
                 limiter: RollingWindowLimiter | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 lease: dt.timedelta = DEFAULT_LEASE, pool_wait_s: float | None = None) -> None:
        self.client = client
        self.night = night
        self.meter = night.meter("zerobounce")
        self.policy = policy
        self.limiter = limiter
        self.batch_size = batch_size
        self.lease = lease
        self.pool_wait_s = night.settings.zerobounce_pool_wait_s if pool_wait_s is None else pool_wait_s
        self.validations: dict[str, Validation] = {}
        self.calls: Counter[str] = Counter()
        self.credits_charged = 0
        self.stop_reason: str | None = None
        self.lost_reason: str | None = None
        self.credits_checked = False
        self.credits: int | None = None

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

    async def verify(self, emails: Sequence[str], *, pooled: bool = True) -> None:
        """Verify ``emails``: in batches pooled with the fleet's other runs, or with ``pooled=False``
        in batches of this run's own addresses only."""
        if not emails:
            return
        if not self.credits_checked:
            self.credits_checked = True
            self.credits = await self.account_credits()
        if self.stop_reason is not None:
            return
        if len(emails) < SINGLE_CALLS_BELOW:
            await self.verify_singly(emails)
        elif pooled:
            await self.verify_pooled(list(emails))
        else:
            for start in range(0, len(emails), self.batch_size):
                if self.stop_reason is not None or self.cap_reached:
                    break
                await self._verify_own(BATCH_ENDPOINT, list(emails[start:start + self.batch_size]))

    async def verify_singly(self, emails: Sequence[str]) -> None:
        await asyncio.gather(*(self._verify_single([email]) for email in emails))

    # -- pooled batches ---------------------------------------------------------------------------------
    async def verify_pooled(self, emails: list[str]) -> None:
        """Queue as many of ``emails`` as the cap has left and wait until each has ended; the
        reservation is settled with what ZeroBounce billed for these addresses, whoever sent them."""
        async def pool(units: int) -> Answer[int]:
            charged = await self._pool(emails[:units])
            return Answer(units, Billed(charged, "ok"))

        paid = await self.meter.call(BATCH_ENDPOINT, len(emails), pool,
                                     billed_for_error=zerobounce_vendor.billed_for_error,
                                     errors=(ZeroBounceError,), partial=True)
        if paid.error is not None:
            self._stop(paid.error)
        self.credits_charged += paid.charged

    async def _pool(self, own: list[str]) -> int:
        await asyncio.to_thread(self._enqueue, own)
        pooled = _Pooled(set(own), queued=frozenset(own))
        takers = max(1, min(self.night.settings.sched_company_concurrency, math.ceil(len(own) / self.batch_size)))
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch(pooled))
            for _ in range(takers):
                group.create_task(self._take_turns(pooled))
        return pooled.charged

    def _enqueue(self, emails: list[str]) -> None:
        with self.night.db.shared() as conn:
            facts_db.enqueue_verifications(conn, emails)

    async def _watch(self, pooled: _Pooled) -> None:
        """Collect this run's ended addresses until none is left; give up on them after a stall."""
        stall_s = STALL_LEASES * self.lease.total_seconds()
        progress_at = renewed_at = time.monotonic()
        while pooled.waiting:
            ended = await asyncio.to_thread(self._collect, sorted(pooled.waiting))
            if ended:
                progress_at = time.monotonic()
                for email, charged in ended.items():
                    pooled.waiting.discard(email)
                    pooled.charged += charged
            if pooled.waiting and self.stop_reason is not None:
                pooled.waiting -= await asyncio.to_thread(self._withdraw, sorted(pooled.waiting))
            if pooled.waiting and time.monotonic() - progress_at > stall_s:
                stalled = len(pooled.waiting)
                pooled.waiting -= await asyncio.to_thread(self._withdraw, sorted(pooled.waiting))
                # Still in a batch that outlived the wait: it may be billed, so it is counted.
                pooled.charged += len(pooled.waiting)
                if self.lost_reason is None:
                    self.lost_reason = (f"verification delayed to next night: {stalled} queued addresses "
                                        "found no ZeroBounce batch in time")
                pooled.waiting.clear()
            if pooled.waiting and time.monotonic() - renewed_at > CLAIM_RENEWAL_S:
                await asyncio.to_thread(_renew_claims, self.night, sorted(pooled.waiting))
                renewed_at = time.monotonic()
            if pooled.waiting:
                await asyncio.sleep(POLL_S)

    def _collect(self, emails: list[str]) -> dict[str, int]:
        """The ended addresses among ``emails`` and what each was billed; verdicts adopted, reasons noted."""
        with self.night.db.shared() as conn:
            ended, present = facts_db.collect_ended(conn, emails)
            gone = set(emails) - present - {outcome.email for outcome in ended}
            verdicts = facts_db.fresh_verdicts(conn, [o.email for o in ended if o.state == "verified"] + sorted(gone))
        billed: dict[str, int] = {}
        for outcome in ended:
            billed[outcome.email] = int(outcome.charged)
            if outcome.state == "refused" and self.stop_reason is None:
                self.stop_reason = outcome.reason or "ZeroBounce refused verification; addresses stay unverified"
            elif outcome.state == "delayed" and self.lost_reason is None:
                self.lost_reason = outcome.reason or "verification delayed to next night"
        # Read by another collector (a run that took over this address after this run's claim lapsed).
        for email in gone:
            verdict = verdicts.get(email)
            billed[email] = int(verdict is not None and verdict.status != "unknown")
            if verdict is None and self.lost_reason is None:
                self.lost_reason = "verification delayed to next night: an address left the queue unverified"
        for email, verdict in verdicts.items():
            self.validations[email] = Validation(email, verdict.status, verdict.sub_status or "")
        if verdicts:
            _adopt(self.night, list(verdicts))
        return billed

    def _withdraw(self, emails: list[str]) -> set[str]:
        with self.night.db.shared() as conn:
            return facts_db.withdraw(conn, emails)

    async def _take_turns(self, pooled: _Pooled) -> None:
        """Send batches while this run has addresses waiting in the queue."""
        while pooled.waiting and self.stop_reason is None:
            waiting = await asyncio.to_thread(self._queue_waiting, sorted(pooled.waiting), sorted(pooled.queued))
            # Once the cap is reached nothing more is queued, so no taker waits for a slot it cannot fill
            # with this run's addresses: at most one taker of this run seeks a slot per batch they fill.
            # A partly filled batch waits for other runs' addresses only while another run is verifying.
            due = waiting.own > pooled.seeking * self.batch_size and (
                waiting.total >= self.batch_size or waiting.oldest_s >= self.pool_wait_s
                or not waiting.others_verifying)
            if due:
                pooled.seeking += 1
                await self._send_next_batch(pooled)
            else:
                await asyncio.sleep(POLL_S)

    def _queue_waiting(self, own: list[str], mine: list[str]) -> facts_db.QueueWaiting:
        with self.night.db.shared() as conn:
            return facts_db.queue_waiting(conn, own, mine)

    async def _send_next_batch(self, pooled: _Pooled) -> None:
        """Wait for a batch slot (counted in ``pooled.seeking`` until the batch is taken), take the
        oldest queued addresses and send them."""
        seeking = True
        try:
            async with self.limiter if self.limiter is not None else contextlib.nullcontext():
                batch = await self._take_with_slot()
                pooled.seeking, seeking = pooled.seeking - 1, False
                if batch is not None:
                    await self._send(*batch)
        finally:
            if seeking:
                pooled.seeking -= 1

    async def _send(self, batch_emails: list[str], slot: zerobounce_vendor.BatchSlot) -> None:
        if not batch_emails:
            await self.client.return_batch_slot(slot)
            return
        self.calls[BATCH_ENDPOINT] += 1
        try:
            result = await self.client.validate_batch(batch_emails, slot=slot)
        except ZeroBounceError as error:
            await asyncio.to_thread(self._end_failed_batch, batch_emails, error)
            # An outage loses this batch only, and the runs that queued its addresses report it.
            if not isinstance(error, ZeroBounceUnavailable):
                self._stop(error)
            return
        await asyncio.to_thread(self._end_batch, batch_emails, result)
        if result.errors:
            self._stop(ZeroBounceRejected(_refused_message(result, batch_emails)))

    async def _take_with_slot(self) -> tuple[list[str], zerobounce_vendor.BatchSlot] | None:
        """A batch slot of the key and up to a batch of the oldest queued addresses; None when stopped."""
        if self.stop_reason is not None:
            return None
        try:
            slot = await self.client.batch_slot()
        except ZeroBounceError as error:
            self._stop(error)
            return None
        # Taken only once the slot is held: whatever other runs queued meanwhile goes too.
        return await asyncio.to_thread(self._take), slot

    def _take(self) -> list[str]:
        with self.night.db.shared() as conn:
            return facts_db.take_verification_batch(conn, self.batch_size, self.lease)

    def _end_batch(self, batch: list[str], result: BatchResult) -> None:
        """Store the batch's verdicts and mark each of its addresses with how it ended."""
        answered = {v.email: v for v in _asked(result, batch)}
        refused = {error.email for error in result.errors} - set(answered)
        refusal = _degradation(ZeroBounceRejected(_refused_message(result, batch))) if refused else None
        outcomes: list[tuple[str, facts_db.QueueEnd, bool, str | None]] = []
        for email in batch:
            if email in answered:
                outcomes.append((email, "verified", answered[email].charged, None))
            elif email in refused:
                outcomes.append((email, "refused", False, refusal))
            else:
                outcomes.append((email, "delayed", False,
                                 "verification delayed to next night: ZeroBounce validatebatch answered no verdict"))
        with self.night.db.shared() as conn:
            facts_db.put_verdicts(conn, self._verdict_rows(answered.values()))
            facts_db.end_verifications(conn, outcomes)

    def _end_failed_batch(self, batch: list[str], error: ZeroBounceError) -> None:
        with self.night.db.shared() as conn:
            if isinstance(error, ZeroBounceThrottled):
                # Refused for the key's limit: nothing was processed, the addresses wait again.
                facts_db.put_back(conn, batch)
                return
            state: facts_db.QueueEnd = "refused" if isinstance(error, ZeroBounceRejected) else "delayed"
            charged = zerobounce_vendor.billed_for_error(error, 1).units > 0
            facts_db.end_verifications(conn, [(email, state, charged, _degradation(error)) for email in batch])

    def _verdict_rows(self, validations: Iterable[Validation]) -> list[tuple[str, str, str | None, str, dt.timedelta]]:
        return [(v.email, v.status, v.sub_status or None, str(self.policy.deliverability(v.status)),
                 self.policy.ttl(v.status)) for v in validations]

    # -- calls of this run's own addresses ------------------------------------------------------------
    async def _verify_single(self, emails: list[str]) -> None:
        if self.stop_reason is None:
            await self._verify_own(SINGLE_ENDPOINT, emails)

    async def _verify_own(self, endpoint: str, emails: list[str]) -> None:
        result = await self._paid_call(endpoint, emails)
        if result is None:
            return
        self.validations.update((v.email, v) for v in _asked(result, emails))
        if result.errors:
            self._stop(ZeroBounceRejected(_refused_message(result, emails)))

    async def _paid_call(self, endpoint: str, emails: list[str]) -> BatchResult | None:
        """Verify as many of ``emails`` as the cap has left; the verdicts are cached after the call."""
        async def send(units: int) -> Any:
            if endpoint == SINGLE_ENDPOINT:
                self.calls[endpoint] += 1
                return zerobounce_vendor.batch_answer(BatchResult((await self.client.validate(emails[0]),), ()))
            async with self.limiter if self.limiter is not None else contextlib.nullcontext():
                slot = await self.client.batch_slot()
                self.calls[endpoint] += 1
                return zerobounce_vendor.batch_answer(await self.client.validate_batch(emails[:units], slot=slot))

        paid = await self.meter.call(endpoint, len(emails), send, billed_for_error=zerobounce_vendor.billed_for_error,
                                     errors=(ZeroBounceError,), store=lambda result, _: self._store(result, emails),
                                     partial=True)
        if paid.error is not None:
            self._stop(paid.error)
            return None
        self.credits_charged += paid.charged
        return paid.value

    def _stop(self, error: Exception) -> None:
        if isinstance(error, ZeroBounceUnavailable):
            # One batch lost to an outage (after the client's attempts) leaves its addresses for the
            # next night; the other batches still go. A refusal or a throttle stops them all.
            if self.lost_reason is None:
                self.lost_reason = _degradation(error)
            return
        if self.stop_reason is None:
            self.stop_reason = _degradation(error)

    def _store(self, result: BatchResult, emails: list[str]) -> None:
        verdicts = self._verdict_rows(_asked(result, emails))
        with self.night.db.shared() as conn:
            facts_db.put_verdicts(conn, verdicts)
        _adopt(self.night, [email for email, *_ in verdicts])


def _degradation(error: Exception) -> str:
    """What a run reports for addresses a ZeroBounce error left unverified."""
    if isinstance(error, ZeroBounceRejected):
        return f"ZeroBounce refused verification: {error}; addresses stay unverified"
    return f"verification delayed to next night: {error}"


def _refused_message(result: BatchResult, batch: list[str]) -> str:
    asked = set(batch)
    errors = [error for error in result.errors if error.email in asked] or list(result.errors)
    return f"ZeroBounce {BATCH_ENDPOINT} refused {len(errors)} addresses: {errors[0].error}"


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


def _renew_claims(night: TenantNight, emails: list[str]) -> None:
    with night.db.shared() as conn:
        facts_db.renew_claims(conn, "verification", emails, DEFAULT_CLAIM_TTL)


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
                        limiter: RollingWindowLimiter | None = None, lease: dt.timedelta = DEFAULT_LEASE,
                        pool_wait_s: float | None = None) -> VerificationReport:
    """Verify the addresses without a fresh cached verdict; never raises for vendor trouble.

    ``client`` must be open on the running event loop (``async with client:``). The client's key
    limits, kept by every process together, pace its calls (see ``TenantNight.share_limits``); a
    ``limiter`` (or :func:`batch_limiter` of ``batches_per_minute`` per ``period_s`` when
    ``batches_per_minute`` is given) adds a pace of this event loop's own to the batch calls, e.g.
    for a sandbox whose minute is scaled down. ``lease`` is how long a taken batch holds its
    addresses; ``pool_wait_s`` (default ``ZEROBOUNCE_POOL_WAIT_S``) how long a partly filled batch
    waits for other runs' addresses.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be in 1..{MAX_BATCH_SIZE}, got {batch_size}")
    policy = policy or VerificationPolicy()
    addresses = _distinct_addresses(emails)
    report = VerificationReport(requested=len(addresses))
    # Without reuse a run pays for every address itself, as if it were the night's only run: the
    # baseline that shows what sharing verdicts saves.
    reuse = night.settings.public_facts_reuse
    cached = await asyncio.to_thread(_cached, night, addresses) if addresses and reuse else {}
    report.cache_hits = len(cached)
    report.policies = {email: verdict.policy for email, verdict in cached.items()}
    pending = [address for address in addresses if address not in cached]
    if pending and isinstance(client, NullZeroBounceClient):
        report.degradations.append(f"{client.reason}: {len(pending)} addresses stay unverified")
    elif pending and isinstance(client, ZeroBounceClient):
        night.share_limits("zerobounce", client)
        if limiter is None and batches_per_minute is not None:
            limiter = batch_limiter(batches_per_minute, period_s)
        verifier = _Verifier(client, night, policy=policy, limiter=limiter, batch_size=batch_size, lease=lease,
                             pool_wait_s=pool_wait_s)
        if reuse:
            pending = await _verify_with_the_fleet(verifier, pending, report)
        else:
            await verifier.verify(pending, pooled=False)
        _report_verified(verifier, pending, report)
    report.unverified = len(pending) - report.verified
    report.by_policy = dict(Counter(report.policies.values()))
    return report


async def _verify_with_the_fleet(verifier: _Verifier, pending: list[str], report: VerificationReport) -> list[str]:
    """Verify the addresses this run claims in pooled batches and wait for the others' verdicts;
    returns the addresses still this run's to report (those another run verified are cache hits)."""
    night = verifier.night
    mine = await asyncio.to_thread(_claim, night, pending)
    try:
        own = [address for address in pending if address in mine]
        others = [address for address in pending if address not in mine]
        # This run's addresses join the queue at once, while it waits for the ones others verify.
        _, arrived = await asyncio.gather(verifier.verify(own),
                                          _wait_for_others(night, others) if others else _nothing())
        report.cache_hits += len(arrived)
        report.policies.update((email, verdict.policy) for email, verdict in arrived.items())
        pending = [address for address in pending if address not in arrived]
        await verifier.verify([address for address in others if address not in arrived])
    finally:
        await asyncio.to_thread(_release, night, sorted(mine))
    return pending


async def _nothing() -> dict[str, facts_db.Verdict]:
    return {}


def _report_verified(verifier: _Verifier, pending: list[str], report: VerificationReport) -> None:
    verdicts = verifier.validations.values()
    report.account_credits = verifier.credits
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
