"""What a vendor client needs to keep its account's rate limits: a limiter to wait on before each
call, and the hash that names the key in shared bookkeeping.

The limits belong to the API key, not to a tenant or a process, so the limiter a run gives its
clients counts every process's calls (``nightly_pipeline.db.rate_limits.FleetRateLimiter``). A
client without one (unit tests, a tool without a database) calls unpaced.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class Window:
    """At most ``limit`` units (requests, or tokens) in any rolling ``period_s``."""

    limit: int
    period_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_s <= 0:
            raise ValueError(f"a rate window needs limit >= 1 and period_s > 0, got {self.limit}/{self.period_s}")


class KeyBlocked(RuntimeError):
    """The vendor blocked the key (recorded by any process): no call until ``until``."""

    def __init__(self, bucket: str, until: dt.datetime, reason: str) -> None:
        super().__init__(f"{bucket} is blocked by the vendor until {until.isoformat(timespec='seconds')}"
                         + (f": {reason}" if reason else ""))
        self.bucket = bucket
        self.until = until


class CallLimiter(Protocol):
    async def acquire(self, bucket: str, weight: int = 1) -> object:
        """Wait until one more call of ``weight`` units fits every window of ``bucket``; raises
        :class:`KeyBlocked` while the vendor blocks the key."""

    async def release(self, bucket: str, admitted_at: object) -> None:
        """Give back a slot :meth:`acquire` admitted at ``admitted_at`` that carried no call."""

    async def block(self, bucket: str, seconds: float, reason: str) -> None:
        """Record the vendor's block of the key for ``seconds`` so every process stops calling."""


class Unlimited:
    """No pacing: for clients used without the fleet's bookkeeping."""

    async def acquire(self, bucket: str, weight: int = 1) -> None:
        return None

    async def release(self, bucket: str, admitted_at: object) -> None:
        return None

    async def block(self, bucket: str, seconds: float, reason: str) -> None:
        return None


UNLIMITED = Unlimited()


def key_fingerprint(vendor: str, api_key: str) -> bytes:
    """SHA-256 of the vendor and the key: API keys are long random strings, so the digest names the
    account in shared tables without revealing the key."""
    return hashlib.sha256(f"{vendor}\0{api_key.strip()}".encode()).digest()
