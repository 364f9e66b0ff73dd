"""The one path for a call a vendor bills: reserve against the tenant's cap, call, settle with what
the vendor reports, then write the answer to the cache.

A reservation holds the call's worst case in the ledger before the call, so concurrent calls can
never together spend past the cap; settling replaces it with what the vendor reports it billed.
Until an answer proves otherwise (the task cancelled mid-call, say) the whole reservation counts
as billed: the ledger may overstate spend, never understate it. A call that fails is settled by
its vendor's billing rule for failures, which each vendor module defines next to its client.

A vendor without a key (or switched off) is a :class:`NullClient`: it makes no call, and its
``reason`` is the degradation the stage records. Stages ask for it before they reserve anything.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Self, TypeVar

from nightly_pipeline.db.budget import BudgetExhausted, Reservation, Scope, VendorBudget

T = TypeVar("T")


class NullClient:
    """Stands in for a vendor's client when the vendor cannot be used tonight; it never calls out.

    Like the real clients it can be opened once per event loop (``async with client:``) and closed.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r})"


def unavailable_reason(client: object) -> str | None:
    """Why ``client`` cannot be called tonight, or None when it can."""
    return client.reason if isinstance(client, NullClient) else None


@dataclasses.dataclass(frozen=True)
class Billed:
    """What one call cost in the cap's units, and how it ended, for the ledger."""

    units: int
    status: str


@dataclasses.dataclass(frozen=True)
class Answer(Generic[T]):
    """A vendor's answer and what it billed; ``value`` is None when the answer was unusable
    (``problem`` says why), and an unusable answer is billed but never cached."""

    value: T | None
    billed: Billed
    problem: str | None = None


@dataclasses.dataclass(frozen=True)
class PaidCall(Generic[T]):
    """How one paid call went: its value, or why there is none."""

    value: T | None = None
    units: int = 0                              # what the reservation held (the call may use no more)
    charged: int = 0
    problem: str | None = None                  # the vendor's unusable answer, or the call's failure
    error: Exception | None = None              # the failure, when the call raised one
    exhausted: BudgetExhausted | None = None    # set when nothing could be reserved: no call was made


class VendorMeter:
    """One vendor's cap in one tenant run: every paid call to the vendor goes through :meth:`call`."""

    def __init__(self, budget: VendorBudget, vendor: str, cap: int, scope: Scope) -> None:
        self.budget = budget
        self.vendor = vendor
        self.cap = cap
        self.scope = scope
        # Whether any reservation was refused or trimmed for the cap.
        self.cap_reached = False

    async def call(self, endpoint: str, units: int, send: Callable[[int], Awaitable[Answer[T]]], *,
                   billed_for_error: Callable[[Exception, int], Billed],
                   errors: tuple[type[Exception], ...] = (Exception,),
                   store: Callable[[T, int], None] | None = None, partial: bool = False) -> PaidCall[T]:
        """Reserve ``units`` (or, with ``partial``, as many of them as are left), ``send(units held)``,
        settle the answer's billing (or ``billed_for_error`` of the failure), then ``store(value, charged)``.

        Errors of the classes in ``errors`` come back in the result; any other error propagates after
        the reservation is settled at its full size.
        """
        reservation = await self._reserve(endpoint, units, partial)
        if isinstance(reservation, BudgetExhausted):
            return PaidCall(exhausted=reservation)
        started = time.monotonic()
        billed = Billed(reservation.units, "cancelled")
        try:
            answer = await send(reservation.units)
            billed = answer.billed
        except errors as error:
            billed = billed_for_error(error, reservation.units)
            return PaidCall(units=reservation.units, charged=billed.units, problem=billed.status, error=error)
        finally:
            await self._settle(reservation, billed, started)
        if answer.value is not None and store is not None:
            await asyncio.to_thread(store, answer.value, billed.units)
        return PaidCall(value=answer.value, units=reservation.units, charged=billed.units, problem=answer.problem)

    async def remaining(self) -> int:
        """What the cap has left now; a plan to spend it must still reserve through :meth:`call`."""
        return await asyncio.to_thread(self.budget.remaining, self.vendor, self.cap, self.scope)

    async def record_free(self, endpoint: str, status: str, started: float) -> None:
        """A call that costs nothing (a search, a balance check), for the cost report."""
        latency_ms = int((time.monotonic() - started) * 1000)
        await asyncio.to_thread(self.budget.record_free, self.vendor, endpoint, status, latency_ms)

    async def _reserve(self, endpoint: str, units: int, partial: bool) -> Reservation | BudgetExhausted:
        while True:
            try:
                return await asyncio.to_thread(self.budget.reserve, self.vendor, endpoint, units, self.cap,
                                               self.scope)
            except BudgetExhausted as exhausted:
                self.cap_reached = True
                # Another call may settle low meanwhile: ask again for what is left, until nothing is.
                units = min(units - 1, exhausted.remaining)
                if not partial or units < 1:
                    return exhausted

    async def _settle(self, reservation: Reservation, billed: Billed, started: float) -> None:
        latency_ms = int((time.monotonic() - started) * 1000)
        # Shielded: a cancelled caller must still leave the ledger settled.
        await asyncio.shield(asyncio.to_thread(self.budget.settle, reservation, charged=billed.units,
                                               status=billed.status, latency_ms=latency_ms))
