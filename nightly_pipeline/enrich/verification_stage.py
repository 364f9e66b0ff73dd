"""The verification stage: ZeroBounce verdicts for contact addresses, each address paid for once.

Addresses with a fresh verdict in ``email_verification_cache`` are not sent again. The rest go to
``validatebatch`` in batches of up to ``batch_size`` (single ``validate`` calls for a handful),
after a free ``getcredits`` check of the account. Each call first reserves one unit per address of
the run's ``ZEROBOUNCE_MAX_VERIFICATIONS`` (trimming the batch to what is left) and settles what
ZeroBounce billed: every result except ``unknown``. Verdicts are cached with the policy and expiry
of :class:`~nightly_pipeline.domain.contacts.VerificationPolicy`, so ``unknown`` is retried on a later
night. A throttled, refused or unreachable ZeroBounce stops verification for this run without
raising: the addresses stay unverified and the report says why.
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

from nightly_pipeline.db import Database
from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db.budget import BudgetExhausted, Reservation, Scope, VendorBudget
from nightly_pipeline.domain.contacts import VerificationPolicy
from nightly_pipeline.enrich.zerobounce_client import (
    MAX_BATCH_SIZE,
    BatchResult,
    Validation,
    ZeroBounceClient,
    ZeroBounceError,
    ZeroBounceRejected,
    ZeroBounceUnavailable,
)

VENDOR = "zerobounce"
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

    Share one limiter between the runs of one event loop that use the same key.
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
    """The calls of one run: reservations, the stop switch and the verdicts gathered."""

    def __init__(self, client: ZeroBounceClient, budget: VendorBudget, db: Database, tenant_id: int, *,
                 max_verifications: int, policy: VerificationPolicy) -> None:
        self.client = client
        self.budget = budget
        self.db = db
        self.tenant_id = tenant_id
        self.max_verifications = max_verifications
        self.policy = policy
        self.validations: dict[str, Validation] = {}
        self.calls: Counter[str] = Counter()
        self.credits_charged = 0
        self.stop_reason: str | None = None
        self.cap_reached = False

    async def account_credits(self) -> int | None:
        """The account's balance (a free call); stops the run when ZeroBounce cannot verify anything."""
        started = time.monotonic()
        try:
            credits = await self.client.credits()
        except ZeroBounceError as error:
            await self._record_free(f"error: {type(error).__name__}", started)
            self._stop(error)
            return None
        await self._record_free("ok", started)
        if credits < 1:
            self.stop_reason = "ZeroBounce account has no credits left: addresses stay unverified"
        return credits

    async def verify_singly(self, emails: Sequence[str]) -> None:
        await asyncio.gather(*(self._verify(SINGLE_ENDPOINT, [email], None) for email in emails))

    async def verify_in_batches(self, emails: Sequence[str], batch_size: int, limiter: RollingWindowLimiter) -> None:
        batches = [list(emails[i:i + batch_size]) for i in range(0, len(emails), batch_size)]
        async with asyncio.TaskGroup() as group:
            for batch in batches:
                group.create_task(self._verify(BATCH_ENDPOINT, batch, limiter))

    async def _verify(self, endpoint: str, emails: list[str], limiter: RollingWindowLimiter | None) -> None:
        if self.stop_reason is not None:
            return
        async with limiter if limiter is not None else contextlib.nullcontext():
            if self.stop_reason is not None:
                return
            result = await self._metered_call(endpoint, emails)
        if result is None:
            return
        asked = set(emails)
        verdicts = [v for v in result.validations if v.email in asked]
        await asyncio.to_thread(self._store, verdicts)
        self.validations.update((v.email, v) for v in verdicts)
        if result.errors:
            first = result.errors[0]
            self._stop(ZeroBounceRejected(f"ZeroBounce {endpoint} refused {len(result.errors)} addresses: "
                                          f"{first.error}"))

    async def _metered_call(self, endpoint: str, emails: list[str]) -> BatchResult | None:
        reservation = await self._reserve(endpoint, len(emails))
        if reservation is None:
            return None
        emails = emails[:reservation.units]
        started = time.monotonic()
        # Until an answer proves otherwise (say the task is cancelled mid-call), assume every
        # reserved address was billed: the ledger may overstate spend, never understate it.
        charged, status = reservation.units, "cancelled"
        self.calls[endpoint] += 1
        try:
            result = await self._send(endpoint, emails)
            charged, status = result.credits_charged, "ok"
            self.credits_charged += charged
            return result
        except ZeroBounceError as error:
            maybe_charged = isinstance(error, ZeroBounceUnavailable) and error.maybe_charged
            charged = reservation.units if maybe_charged else 0
            status = f"error: {type(error).__name__}"
            self._stop(error)
            return None
        finally:
            latency_ms = int((time.monotonic() - started) * 1000)
            await asyncio.shield(asyncio.to_thread(self.budget.settle, reservation, charged=charged, status=status,
                                                   latency_ms=latency_ms))

    async def _send(self, endpoint: str, emails: list[str]) -> BatchResult:
        if endpoint == BATCH_ENDPOINT:
            return await self.client.validate_batch(emails)
        return BatchResult((await self.client.validate(emails[0]),), ())

    async def _reserve(self, endpoint: str, units: int) -> Reservation | None:
        """Hold ``units`` verifications of the cap, or as many as are left; None when none are."""
        while units > 0:
            try:
                return await asyncio.to_thread(self.budget.reserve, VENDOR, endpoint, units, self.max_verifications,
                                               Scope.RUN)
            except BudgetExhausted as exhausted:
                self.cap_reached = True
                units = min(units - 1, exhausted.remaining)
        return None

    def _stop(self, error: ZeroBounceError) -> None:
        if self.stop_reason is not None:
            return
        if isinstance(error, ZeroBounceRejected):
            self.stop_reason = f"ZeroBounce refused verification: {error}; addresses stay unverified"
        else:
            self.stop_reason = f"verification delayed to next night: {error}"

    async def _record_free(self, status: str, started: float) -> None:
        latency_ms = int((time.monotonic() - started) * 1000)
        await asyncio.to_thread(self.budget.record_free, VENDOR, CREDITS_ENDPOINT, status, latency_ms)

    def _store(self, verdicts: Sequence[Validation]) -> None:
        records = [contacts_db.VerificationRecord(v.email, v.status, v.sub_status or None,
                                                  str(self.policy.deliverability(v.status)), self.policy.ttl(v.status))
                   for v in verdicts]
        with self.db.tenant(self.tenant_id) as conn:
            contacts_db.put_verifications(conn, self.tenant_id, records)


def _cached(db: Database, tenant_id: int, addresses: list[str]) -> dict[str, contacts_db.CachedVerification]:
    with db.tenant(tenant_id) as conn:
        return contacts_db.cached_verifications(conn, tenant_id, addresses)


async def verify_emails(emails: Iterable[str], *, client: ZeroBounceClient | None, budget: VendorBudget,
                        max_verifications: int, db: Database, tenant_id: int,
                        batch_size: int = DEFAULT_BATCH_SIZE, batches_per_minute: int = DEFAULT_BATCHES_PER_MINUTE,
                        period_s: float = 60.0, policy: VerificationPolicy | None = None,
                        limiter: RollingWindowLimiter | None = None) -> VerificationReport:
    """Verify the addresses without a fresh cached verdict; never raises for vendor trouble.

    ``limiter`` (default: :func:`batch_limiter` of ``batches_per_minute`` per ``period_s``) paces
    the batch calls; pass a shared one when several runs in this event loop use the same key.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be in 1..{MAX_BATCH_SIZE}, got {batch_size}")
    policy = policy or VerificationPolicy()
    addresses = _distinct_addresses(emails)
    report = VerificationReport(requested=len(addresses))
    cached = await asyncio.to_thread(_cached, db, tenant_id, addresses) if addresses else {}
    report.cache_hits = len(cached)
    report.policies = {email: verdict.policy for email, verdict in cached.items()}
    pending = [address for address in addresses if address not in cached]
    if pending and client is None:
        report.degradations.append(f"no ZEROBOUNCE_API_KEY: {len(pending)} addresses stay unverified")
    elif pending and client is not None:
        verifier = _Verifier(client, budget, db, tenant_id, max_verifications=max_verifications, policy=policy)
        await _verify_pending(verifier, pending, batch_size,
                              limiter or batch_limiter(batches_per_minute, period_s), report)
    report.unverified = len(pending) - report.verified
    report.by_policy = dict(Counter(report.policies.values()))
    return report


async def _verify_pending(verifier: _Verifier, pending: list[str], batch_size: int, limiter: RollingWindowLimiter,
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
        report.degradations.append(f"ZeroBounce verification cap reached ({verifier.max_verifications} per run): "
                                   f"{left} addresses stay unverified")
    if verifier.stop_reason is not None:
        report.degradations.append(verifier.stop_reason)
