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
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from typing import Literal

import psycopg

from nightly_pipeline.db import Database
from nightly_pipeline.db import night_stages as stages_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db.budget import Scope, VendorBudget
from nightly_pipeline.db.rate_limits import FleetRateLimiter
from nightly_pipeline.settings import Settings
from nightly_pipeline.vendors.paid_call import VendorMeter
from nightly_pipeline.vendors.rate_limits import Window

log = logging.getLogger(__name__)

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
            stages_db.end_stage_counters(conn, self.run_id, step, counters)

    def finish(self, status: str, error_summary: str | None = None) -> None:
        with self.transaction() as conn:
            targets_db.finish_run(conn, self.run_id, status, error_summary)

    @contextlib.contextmanager
    def stage(self, name: str, dagster_run_id: str | None = None) -> Iterator[None]:
        """Time the stage and record how it ended in ``enrichment_run_stages``.

        The night is ``running`` from the stage's start. An exception ends the stage ``failed`` and the
        night ``failed`` with the stage and cause named, then propagates (a retry of the step starts
        the stage, and the night, again); cancellation arrives here as an exception too.
        """
        with self.transaction() as conn:
            stages_db.start_stage(conn, self.run_id, name, dagster_run_id=dagster_run_id, worker=this_worker())
        try:
            yield
        except BaseException as exc:
            cause = describe_failure(exc)
            try:
                with self.transaction() as conn:
                    stages_db.end_stage(conn, self.run_id, name, "failed", None, cause)
                    stages_db.fail_night(conn, self.run_id, f"stage {name} failed: {cause}",
                                         only_if_unfinished=False)
            except Exception:  # the database itself may be what failed: the stage's error comes first
                log.exception("could not record the failure of stage %s of run %s", name, self.run_id)
            raise
        with self.transaction() as conn:
            stages_db.end_stage(conn, self.run_id, name, "succeeded", None, None)

    def finish_from_outcome(self) -> str:
        """End the night by what its stages recorded: ``failed`` if a stage failed, ``partial`` if a
        company or record failed or a step degraded, else ``succeeded``; the status written."""
        with self.transaction() as conn:
            outcome = stages_db.night_outcome(conn, self.run_id)
        status, summary = night_verdict(outcome)
        self.finish(status, summary)
        return status


def night_verdict(outcome: stages_db.NightOutcome) -> tuple[str, str | None]:
    """The final status of a night whose last stage ran, and its error summary."""
    if outcome.failed_stages:
        return "failed", f"stage {', '.join(outcome.failed_stages)} failed"
    problems = []
    if outcome.crawl_errors:
        problems.append(f"{outcome.crawl_errors} companies failed to enrich")
    if outcome.odoo_errors:
        problems.append(f"{outcome.odoo_errors} Odoo records failed; retried next run")
    if outcome.degradations:
        problems.append(f"{outcome.degradations} degradations")
    return ("partial", "; ".join(problems)) if problems else ("succeeded", None)


def this_worker() -> str:
    """The process running a stage, as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_is_dead(worker: str | None) -> bool:
    """True only when ``worker`` ran on this host and its process no longer exists."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


MAX_CAUSE_CHARS = 500


def describe_failure(exc: BaseException) -> str:
    """The cause of a stage's failure in one line: the exception's type and message, shortened.

    Dagster's ``Failure`` carries its message as ``description``; a cancelled run interrupts the
    step with ``DagsterExecutionInterruptedError`` or ``KeyboardInterrupt``.
    """
    name = type(exc).__name__
    if name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt"):
        return "run cancelled"
    message = getattr(exc, "description", None) or str(exc)
    line = " ".join(str(message).split())
    text = f"{name}: {line}" if line else name
    return text if len(text) <= MAX_CAUSE_CHARS else text[:MAX_CAUSE_CHARS - 1] + "…"
