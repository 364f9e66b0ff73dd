"""Fetching a public fact once for the fleet: reuse a fresh one, else claim it, fetch, store, release.

Two runs that need the same fact at the same moment do not both fetch it: the first takes the claim
(a row in ``public_fact_claims`` with an expiry), the second waits for the first's result, polling,
for at most the claim's lifetime. A claimer that dies leaves a claim that expires, after which the
waiter claims and fetches itself. Nothing here knows which tenant asks.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from nightly_pipeline.db import Database
from nightly_pipeline.db import public_facts as facts_db
from nightly_pipeline.db.public_facts import FactKind

T = TypeVar("T")

DEFAULT_CLAIM_TTL = dt.timedelta(minutes=5)
POLL_S = 0.2


@dataclasses.dataclass(frozen=True)
class Fetched(Generic[T]):
    value: T
    reused: bool


async def fetch_once(db: Database, kind: FactKind, key: str, *, lookup: Callable[[], T | None],
                     fetch: Callable[[], Awaitable[T]], store: Callable[[T], bool],
                     claim_ttl: dt.timedelta = DEFAULT_CLAIM_TTL, reuse: bool = True) -> Fetched[T]:
    """The fact ``kind``/``key``: from ``lookup`` (sync, returns a fresh stored fact or None) when
    someone fetched it, else from ``fetch`` by this run, handed to ``store`` (sync) before the claim
    is released. ``store`` returns False when the fact is not one to share (the waiters then fetch
    for themselves). With ``reuse`` False the run fetches and stores without looking or claiming:
    it pays for the fact whoever else has it."""
    if not reuse:
        value = await fetch()
        await asyncio.to_thread(store, value)
        return Fetched(value, False)
    deadline = time.monotonic() + claim_ttl.total_seconds() + 5 * POLL_S
    while True:
        found = await asyncio.to_thread(lookup)
        if found is not None:
            return Fetched(found, True)
        if await asyncio.to_thread(_claim, db, kind, key, claim_ttl) or time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_S)
    try:
        # The previous claimer may have stored the fact and released between the look-up and the claim.
        found = await asyncio.to_thread(lookup)
        if found is not None:
            return Fetched(found, True)
        value = await fetch()
        await asyncio.to_thread(store, value)
        return Fetched(value, False)
    finally:
        await asyncio.to_thread(_release, db, kind, [key])


def _claim(db: Database, kind: FactKind, key: str, ttl: dt.timedelta) -> bool:
    with db.shared() as conn:
        return facts_db.claim(conn, kind, key, ttl)


def _release(db: Database, kind: FactKind, keys: list[str]) -> None:
    with db.shared() as conn:
        facts_db.release(conn, kind, keys)


def max_age(hours: float) -> dt.timedelta:
    return dt.timedelta(hours=hours)
