"""Per-tenant vendor budgets: reserve before a call, settle after it, all in ``vendor_usage``.

A check-then-spend counter overspends when several workers ask at once. Here each reservation is
a short transaction that first takes a transaction-level advisory lock on (tenant, vendor), sums
what is already reserved or charged in the cap's scope and only then inserts the reservation, so
concurrent workers, threads or processes can never together exceed the cap.
"""
from __future__ import annotations

import dataclasses
import enum
import uuid

from nightly_pipeline.clock import TIMEZONE
from nightly_pipeline.db.database import Database



class Scope(enum.Enum):
    RUN = "run"        # the cap counts one tenant run (Tavily queries, Lusha lookups, verifications)
    DAY = "day"        # the cap counts what one tenant spent today, Singapore time (OpenAI tokens)


@dataclasses.dataclass(frozen=True)
class Reservation:
    tenant_id: int
    usage_id: int
    vendor: str
    units: int


class BudgetExhausted(RuntimeError):
    def __init__(self, vendor: str, wanted: int, remaining: int, cap: int) -> None:
        super().__init__(f"{vendor} budget exhausted: wanted {wanted}, {remaining} of {cap} left")
        self.vendor, self.wanted, self.remaining, self.cap = vendor, wanted, remaining, cap


class VendorBudget:
    """The ledger for one tenant run; every method is one short transaction."""

    def __init__(self, db: Database, tenant_id: int, run_id: uuid.UUID) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.run_id = run_id

    def _spent(self, conn, vendor: str, scope: Scope) -> int:
        if scope is Scope.RUN:
            where, params = "run_id = %(run)s", {"run": self.run_id}
        else:
            # Spending day, not partition date: a backfill of last month spends today's tokens.
            where = "(created_at AT TIME ZONE %(tz)s)::date = (now() AT TIME ZONE %(tz)s)::date"
            params = {"tz": TIMEZONE}
        row = conn.execute(
            f"""SELECT coalesce(sum(coalesce(units_charged, units_reserved)), 0) AS spent FROM vendor_usage
                WHERE tenant_id = %(tenant)s AND vendor = %(vendor)s AND {where}""",
            {"tenant": self.tenant_id, "vendor": vendor, **params}).fetchone()
        return int(row["spent"])

    def remaining(self, vendor: str, cap: int, scope: Scope = Scope.RUN) -> int:
        with self.db.tenant(self.tenant_id) as conn:
            return max(0, cap - self._spent(conn, vendor, scope))

    def reserve(self, vendor: str, endpoint: str, units: int, cap: int, scope: Scope = Scope.RUN) -> Reservation:
        """Hold ``units`` of the cap for one call, or raise :class:`BudgetExhausted`."""
        if units < 0:
            raise ValueError(f"units must be >= 0, got {units}")
        with self.db.tenant(self.tenant_id) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (vendor, self.tenant_id))
            spent = self._spent(conn, vendor, scope)
            if spent + units > cap:
                raise BudgetExhausted(vendor, units, max(0, cap - spent), cap)
            row = conn.execute(
                """INSERT INTO vendor_usage (tenant_id, run_id, vendor, endpoint, units_reserved, status)
                   VALUES (%s, %s, %s, %s, %s, 'reserved') RETURNING usage_id""",
                (self.tenant_id, self.run_id, vendor, endpoint, units)).fetchone()
        return Reservation(self.tenant_id, row["usage_id"], vendor, units)

    def settle(self, reservation: Reservation, *, charged: int, status: str, latency_ms: int | None = None) -> None:
        """Record what the call really cost (0 when it failed before the vendor charged)."""
        with self.db.tenant(self.tenant_id) as conn:
            conn.execute(
                """UPDATE vendor_usage SET units_charged = %s, status = %s, latency_ms = %s, settled_at = now()
                   WHERE tenant_id = %s AND usage_id = %s""",
                (max(0, charged), status, latency_ms, self.tenant_id, reservation.usage_id))

    def record_free(self, vendor: str, endpoint: str, status: str, latency_ms: int | None = None) -> None:
        """A call that costs nothing (a cache miss on a free endpoint, say), for the cost report."""
        with self.db.tenant(self.tenant_id) as conn:
            conn.execute(
                """INSERT INTO vendor_usage (tenant_id, run_id, vendor, endpoint, units_reserved, units_charged,
                                             status, latency_ms, settled_at)
                   VALUES (%s, %s, %s, %s, 0, 0, %s, %s, now())""",
                (self.tenant_id, self.run_id, vendor, endpoint, status, latency_ms))

    def usage(self) -> dict[str, dict[str, int]]:
        """Calls and units per vendor for this run, and the public facts reused instead of a call."""
        with self.db.tenant(self.tenant_id) as conn:
            rows = conn.execute(
                """SELECT vendor, count(*) FILTER (WHERE status <> 'reused') AS calls,
                          count(*) FILTER (WHERE status = 'reused') AS reused,
                          coalesce(sum(units_charged), 0) AS charged,
                          coalesce(sum(units_reserved), 0) AS reserved
                   FROM vendor_usage WHERE tenant_id = %s AND run_id = %s GROUP BY vendor ORDER BY vendor""",
                (self.tenant_id, self.run_id)).fetchall()
        # "reused" appears only for a vendor whose public facts this run took from the fleet's store.
        return {r["vendor"]: {"calls": r["calls"], "charged": int(r["charged"]), "reserved": int(r["reserved"]),
                              **({"reused": r["reused"]} if r["reused"] else {})} for r in rows}
