"""Tonight's work of one tenant: its database scope, run, date, vendor budgets and settings.

Every stage after ``daily_targets`` starts from the run manifest that stage recorded; an asset loads
the night once from its partition and hands it to the stage logic, whose collaborators take the
night instead of each their own copy of the tenant id, run id and caps.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import Iterator, Sequence
from typing import Literal

import psycopg

from nightly_pipeline.db import Database
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db.budget import Scope, VendorBudget
from nightly_pipeline.db.rate_limits import FleetRateLimiter
from nightly_pipeline.settings import Settings
from nightly_pipeline.vendors.paid_call import VendorMeter
from nightly_pipeline.vendors.rate_limits import Window

Vendor = Literal["openai", "tavily", "lusha", "zerobounce"]


# Calls are stamped when admitted, the vendor counts them when they arrive: a window a tenth longer
# than the vendor's keeps network jitter from ever putting one call too many into its rolling period.
LIMIT_MARGIN = 1.1
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def rate_windows(settings: Settings) -> dict[str, dict[str, tuple[Window, ...]]]:
    """Each vendor's buckets and their rolling windows, from the settings (per API key)."""
    def windows(*pairs: tuple[int | None, float]) -> tuple[Window, ...]:
        return tuple(Window(limit, period * LIMIT_MARGIN) for limit, period in pairs if limit)

    return {
        "zerobounce": {"zerobounce.batch": windows((settings.zerobounce_batches_per_minute, MINUTE))},
        "lusha": {"lusha.requests": windows((settings.lusha_requests_per_minute, MINUTE),
                                            (settings.lusha_requests_per_hour, HOUR),
                                            (settings.lusha_requests_per_day, DAY))},
        "tavily": {"tavily.requests": windows((settings.tavily_requests_per_minute, MINUTE))},
        "openai": {"openai.requests": windows((settings.openai_requests_per_minute, MINUTE)),
                   "openai.tokens": windows((settings.openai_tokens_per_minute, MINUTE))},
    }


class ManifestMissing(LookupError):
    """The night has no run manifest: ``daily_targets`` has not run for this tenant and date."""


@dataclasses.dataclass(frozen=True)
class TenantNight:
    db: Database
    tenant_id: int
    run_id: uuid.UUID
    run_date: dt.date
    settings: Settings
    company_ids: tuple[int, ...] = ()

    @classmethod
    def load(cls, db: Database, tenant_id: int, run_date: dt.date, settings: Settings) -> TenantNight:
        """The night from its run manifest; :class:`ManifestMissing` when there is none yet."""
        with db.tenant(tenant_id) as conn:
            manifest = targets_db.get_manifest(conn, run_date)
        if manifest is None:
            raise ManifestMissing(f"no run manifest for tenant {tenant_id} on {run_date}: "
                                  f"materialize daily_targets first")
        return cls.of(db, manifest, settings)

    @classmethod
    def of(cls, db: Database, manifest: targets_db.Manifest, settings: Settings) -> TenantNight:
        return cls(db, manifest.tenant_id, manifest.run_id, manifest.run_date, settings,
                   tuple(manifest.company_ids_to_process))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """One transaction in the tenant's scope: the database layer reads the tenant from it."""
        with self.db.tenant(self.tenant_id) as conn:
            yield conn

    @functools.cached_property
    def budget(self) -> VendorBudget:
        """The vendor ledger of this run."""
        return VendorBudget(self.db, self.tenant_id, self.run_id)

    def meter(self, vendor: Vendor) -> VendorMeter:
        """The vendor's cap for tonight: OpenAI tokens per tenant per day, the rest per run."""
        settings = self.settings
        cap, scope = {
            "openai": (settings.openai_daily_tokens_cap, Scope.DAY),
            "tavily": (settings.tavily_max_queries, Scope.RUN),
            "lusha": (settings.lusha_max_contact_lookups, Scope.RUN),
            "zerobounce": (settings.zerobounce_max_verifications, Scope.RUN),
        }[vendor]
        return VendorMeter(self.budget, vendor, cap, scope)

    def fleet_limiter(self, vendor: Vendor, key_sha256: bytes) -> FleetRateLimiter:
        """The limiter every process shares for the vendor key with this fingerprint."""
        return FleetRateLimiter(self.db, key_sha256, rate_windows(self.settings)[vendor])

    def share_limits(self, vendor: Vendor, client: object) -> None:
        """Pace ``client``'s calls to its key's limits across the fleet (a client without a key, such
        as a Null client, has nothing to pace)."""
        fingerprint = getattr(client, "key_fingerprint", None)
        if isinstance(fingerprint, bytes):
            client.limiter = self.fleet_limiter(vendor, fingerprint)  # type: ignore[attr-defined]

    def record_stage(self, step: str, counters: dict, degradations: Sequence[str]) -> None:
        """The step's counters and degradations in the run's record (replacing an earlier attempt's)."""
        with self.transaction() as conn:
            targets_db.record_step(conn, self.run_id, step, counters, status="running")
            targets_db.record_degradations(conn, self.run_id, step, list(degradations))

    def finish(self, status: str, error_summary: str | None = None) -> None:
        with self.transaction() as conn:
            targets_db.finish_run(conn, self.run_id, status, error_summary)
