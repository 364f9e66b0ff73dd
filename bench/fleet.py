"""Many tenants at once on one set of vendor keys: the contacts and verified_emails stages of 30 tenant
nights (20 targets each, half of them shared between tenants) run by several worker processes, with at
most SCHED_TENANT_CONCURRENCY (3) tenant runs working at once through the tenant-run leases, against the
Lusha and ZeroBounce sandboxes with their realistic latency and limits (Lusha 300 requests, ZeroBounce
5 ``validatebatch`` calls per rolling minute per key).

The vendor sandboxes run in their own process (pinned to one core when the machine has two or more),
the workers in theirs, on a throwaway embedded PostgreSQL deleted at the end. Each tenant's night is
synthetic, as in ``bench/contacts.py``: a manifest and one crawl record per target, every other target
showing only ``info@`` on its site (those go to Lusha).

The report gives the wall time; requests and paid calls per vendor; ZeroBounce batches used against the
least possible, ceil(addresses / 200) (batches are pooled across the tenant runs verifying at the same
time through the shared queue; a partly filled batch waits up to ``--pool-wait`` seconds, by default
ZEROBOUNCE_POOL_WAIT_S's, for other runs' addresses); the busiest rolling minute per vendor key as the sandbox counted
arrivals, against the key's limit (it must not exceed it); the most tenant leases ever held at once
(must not exceed 3); and the sharing of public facts between tenants, which this branch does not do
("n/a (not shared)"). The lower bound on the wall time is what ZeroBounce's 5 batches a minute allow
for the batches used: floor((batches - 1) / 5) minutes plus one call's latency.

    .venv/bin/python bench/fleet.py              # 30 tenants x 20 targets, 6 workers; about 7 min
    .venv/bin/python bench/fleet.py --quick      # 5 tenants x 10 targets, under a minute
    .venv/bin/python bench/fleet.py --tenants 12 --targets 20 --workers 4 --seed 3
    .venv/bin/python bench/fleet.py --quick --pool-wait 0   # every run sends as soon as it has a slot

Only loopback is ever contacted: an audit hook in every process refuses any other connection or lookup.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bench_support import allow_only_loopback, pin_to_core
from contacts import (
    CLIENT_CORE,
    LUSHA_KEY,
    VENDOR_CAP,
    VENDOR_MEDIAN_LATENCY_S,
    ZEROBOUNCE_KEY,
    SyntheticCompany,
    VendorSettings,
    _company_record,
    _site_signals,
    synthetic_companies,
    throwaway_database,
    vendor_process,
)

from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import leases
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.leases import TenantRunLease
from nightly_pipeline.domain.targets import Target, Tier
from nightly_pipeline.settings import load_settings
from nightly_pipeline.stages.contacts import assign_primary_contacts, find_contacts
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.stages.verification import verify_emails
from nightly_pipeline.vendors.lusha import LushaClient
from nightly_pipeline.vendors.zerobounce import MAX_BATCH_SIZE, ZeroBounceClient

TENANT_CONCURRENCY = 3
LUSHA_PER_MINUTE = 300
ZEROBOUNCE_BATCHES_PER_MINUTE = 5
DEFAULT_TENANTS, DEFAULT_TARGETS, DEFAULT_WORKERS = 30, 20, 6
QUICK_TENANTS, QUICK_TARGETS, QUICK_WORKERS = 5, 10, 3
LEASE_TTL_S = 30.0
NOT_SHARED = "n/a (not shared)"


@dataclasses.dataclass(frozen=True)
class TenantNightPlan:
    tenant_id: int
    run_id: str
    company_ids: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class WorkerJob:
    admin_url: str
    app_url: str
    app_role: str
    lusha_url: str
    zerobounce_url: str
    nights: tuple[TenantNightPlan, ...]
    pool_wait_s: float | None = None


def fleet_companies(tenants: int, targets: int, seed: int) -> tuple[list[SyntheticCompany], list[list[int]]]:
    """The companies and, per tenant, the indexes of its targets: the first half of every tenant's
    targets are the same companies (shared), the rest its own."""
    shared = targets // 2
    own = targets - shared
    companies = synthetic_companies(shared + tenants * own, seed)
    return companies, [list(range(shared)) + [shared + t * own + i for i in range(own)] for t in range(tenants)]


def seed_fleet(db: Database, companies: Sequence[SyntheticCompany], targets_by_tenant: Sequence[Sequence[int]],
               run_date: dt.date) -> list[TenantNightPlan]:
    with db.shared() as conn:
        acra_db.upsert_companies(conn, [_company_record(c) for c in companies], dt.datetime.now(dt.UTC))
        ids = {row["uen"]: row["company_id"] for row in conn.execute(
            "SELECT uen, company_id FROM companies WHERE uen = ANY(%s)", ([c.uen for c in companies],))}
        tenant_ids = [tenants_db.register_tenant(conn, f"bench-fleet-{t}", None) for t in range(len(targets_by_tenant))]
    plans = []
    for tenant_id, indexes in zip(tenant_ids, targets_by_tenant):
        mine = [companies[i] for i in indexes]
        company_ids = [ids[c.uen] for c in mine]
        with db.tenant(tenant_id) as conn:
            manifest = targets_db.create_manifest(
                conn, run_date, [Target(cid, Tier.NEVER_SEEN, 1.0, None) for cid in company_ids],
                caps={"lusha_max_contact_lookups": VENDOR_CAP, "zerobounce_max_verifications": VENDOR_CAP},
                budget_snapshot={}, dagster_run_id=None)
            for company in mine:
                enrichment_db.save_company_run(conn, manifest.run_id, enrichment_db.CompanyRunRecord(
                    company_id=ids[company.uen], outcome="crawled", degraded=False, reasons=[],
                    signals=_site_signals(company), extraction={}, corpus_hash=None, corpus=None))
        plans.append(TenantNightPlan(tenant_id, str(manifest.run_id), tuple(company_ids)))
    return plans


# -- a worker process: tenant nights one after the other, each under its lease ------------------------------
def _work(job: WorkerJob, results: Any) -> None:
    pin_to_core(CLIENT_CORE)
    allow_only_loopback("bench/fleet.py")
    db = Database(DatabaseTarget(admin_url=job.admin_url, app_url=job.app_url, app_role=job.app_role,
                                 embedded=True), max_size=4)
    settings = load_settings({"LUSHA_MAX_CONTACT_LOOKUPS": str(VENDOR_CAP),
                              "ZEROBOUNCE_MAX_VERIFICATIONS": str(VENDOR_CAP),
                              "LUSHA_REQUESTS_PER_MINUTE": str(LUSHA_PER_MINUTE),
                              "ZEROBOUNCE_BATCHES_PER_MINUTE": str(ZEROBOUNCE_BATCHES_PER_MINUTE),
                              "SCHED_TENANT_CONCURRENCY": str(TENANT_CONCURRENCY),
                              **({"ZEROBOUNCE_POOL_WAIT_S": str(job.pool_wait_s)} if job.pool_wait_s is not None
                                 else {})})
    try:
        for plan in job.nights:
            lease = TenantRunLease(db, plan.tenant_id, f"bench-{plan.run_id}", limit=TENANT_CONCURRENCY,
                                   ttl_s=LEASE_TTL_S)
            lease.take(lambda _reason: None, poll_s=0.2)
            try:
                with db.shared() as conn:
                    working = len(leases.holders(conn))
                results.put({"tenant": plan.tenant_id, "leases_held": working,
                             **_tenant_night(db, settings, plan, job)})
            finally:
                lease.release()
    finally:
        db.close()


def _tenant_night(db: Database, settings: Any, plan: TenantNightPlan, job: WorkerJob) -> dict[str, Any]:
    night = TenantNight(db, plan.tenant_id, uuid.UUID(plan.run_id), dt.date(2026, 6, 1), settings,
                        plan.company_ids)
    with night.transaction() as conn:
        records = enrichment_db.run_records(conn, night.run_id)

    async def run() -> dict[str, Any]:
        async with LushaClient(LUSHA_KEY, base_url=job.lusha_url) as lusha:
            found = await find_contacts(records, night, lusha, preferred_titles=settings.lusha_preferred_titles)
        with night.transaction() as conn:
            by_company = contacts_db.contacts_of_companies(conn, night.company_ids)
        emails = sorted({c.email for people in by_company.values() for c in people})
        async with ZeroBounceClient(ZEROBOUNCE_KEY, base_url=job.zerobounce_url,
                                    bulk_base_url=job.zerobounce_url) as zerobounce:
            verified = await verify_emails(emails, night, zerobounce)
        assign_primary_contacts(night, night.company_ids, settings.lusha_preferred_titles)
        return {"lusha_searches": found.lusha_searches, "lusha_enriched": found.lusha_contacts_enriched,
                "addresses_sent": verified.requested - verified.cache_hits, "verified": verified.verified,
                "batch_calls": verified.batch_calls, "single_calls": verified.single_calls,
                "degradations": found.degradations + verified.degradations}

    return asyncio.run(run())


# -- the run and its report ---------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=DEFAULT_TENANTS)
    parser.add_argument("--targets", type=int, default=DEFAULT_TARGETS, help="targets per tenant")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="worker processes")
    parser.add_argument("--latency-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pool-wait", type=float, default=None,
                        help="seconds a partly filled ZeroBounce batch waits for other runs (ZEROBOUNCE_POOL_WAIT_S)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_TENANTS} tenants x {QUICK_TARGETS} targets, {QUICK_WORKERS} workers")
    args = parser.parse_args(argv)
    if args.quick:
        args.tenants, args.targets, args.workers = QUICK_TENANTS, QUICK_TARGETS, QUICK_WORKERS
    if args.tenants < 1 or args.targets < 2 or args.workers < 1:
        parser.error("--tenants and --workers must be >= 1, --targets >= 2")
    return args


def _busiest(stats: dict[str, Any], key: str, limit: int) -> dict[str, Any]:
    busiest = stats.get(key, 0)
    return {"busiest_minute": busiest, "limit": limit, "within_limit": busiest <= limit}


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    allow_only_loopback("bench/fleet.py")
    companies, targets_by_tenant = fleet_companies(args.tenants, args.targets, args.seed)
    vendor_settings = VendorSettings(lusha_per_minute=LUSHA_PER_MINUTE,
                                     zerobounce_batches_per_minute=ZEROBOUNCE_BATCHES_PER_MINUTE,
                                     latency_scale=args.latency_scale, seed=args.seed)
    with throwaway_database() as db, vendor_process(vendor_settings) as vendors:
        plans = seed_fleet(db, companies, targets_by_tenant, dt.date(2026, 6, 1))
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        target = db.target
        jobs = [WorkerJob(target.admin_url, target.app_url, target.app_role, vendors.lusha_url,
                          vendors.zerobounce_url, tuple(plans[w::args.workers]), args.pool_wait) for w in range(args.workers)]
        started = time.perf_counter()
        workers = [context.Process(target=_work, args=(job, results), name=f"fleet-worker-{i}")
                   for i, job in enumerate(jobs) if job.nights]
        for worker in workers:
            worker.start()
        nights = [results.get() for _ in plans]
        for worker in workers:
            worker.join()
        wall_s = time.perf_counter() - started
        stats = vendors.final_stats()
    figures = _figures(args, nights, stats, wall_s)
    _print_report(figures)
    print(json.dumps(figures, sort_keys=True))


def _figures(args: argparse.Namespace, nights: list[dict[str, Any]], stats: dict[str, Any],
             wall_s: float) -> dict[str, Any]:
    lusha, zerobounce = stats["lusha"], stats["zerobounce"]
    addresses = sum(n["addresses_sent"] for n in nights)
    batches = sum(n["batch_calls"] for n in nights)
    least_batches = math.ceil(addresses / MAX_BATCH_SIZE)
    latency_s = VENDOR_MEDIAN_LATENCY_S * args.latency_scale
    bound_s = (max(batches - 1, 0) // ZEROBOUNCE_BATCHES_PER_MINUTE) * 60.0 + latency_s if batches else 0.0
    return {
        "tenants": args.tenants, "targets_per_tenant": args.targets, "shared_targets_per_tenant": args.targets // 2,
        "workers": args.workers, "tenant_concurrency": TENANT_CONCURRENCY, "wall_s": round(wall_s, 1),
        "bound_s": round(bound_s, 1), "ratio": round(wall_s / bound_s, 2) if bound_s else None,
        "most_leases_at_once": max(n["leases_held"] for n in nights),
        "lusha": {"requests": lusha["requests"], "calls_by_endpoint": lusha["calls_by_endpoint"],
                  "paid_calls": lusha["calls_by_endpoint"].get("/prospecting/contact/enrich", 0),
                  "contacts_enriched": lusha["contacts_enriched"], "refused": lusha["rate_limited"],
                  **_busiest(lusha, "max_requests_in_60s", LUSHA_PER_MINUTE)},
        "zerobounce": {"requests": zerobounce["requests"], "calls_by_endpoint": zerobounce["calls_by_endpoint"],
                       "paid_calls": batches + sum(n["single_calls"] for n in nights),
                       "batches": batches, "least_batches": least_batches, "addresses": addresses,
                       "refused": zerobounce["batch_refusals"],
                       **_busiest(zerobounce, "max_batch_calls_in_60s", ZEROBOUNCE_BATCHES_PER_MINUTE)},
        "sharing": {"crawl": NOT_SHARED, "extraction": NOT_SHARED, "verification": NOT_SHARED},
        "degraded_nights": sum(1 for n in nights if n["degradations"]),
    }


def _print_report(f: dict[str, Any]) -> None:
    lusha, zb = f["lusha"], f["zerobounce"]
    print(f"fleet: {f['tenants']} tenants x {f['targets_per_tenant']} targets ({f['shared_targets_per_tenant']} "
          f"shared), {f['workers']} worker processes, SCHED_TENANT_CONCURRENCY={f['tenant_concurrency']}")
    ratio = f"{f['ratio']:.2f}" if f["ratio"] is not None else "n/a"
    print(f"wall time       {f['wall_s']:.1f} s against a {f['bound_s']:.1f} s lower bound "
          f"(ZeroBounce's 5 batches a minute for the batches used): ratio {ratio}")
    print(f"tenant leases   at most {f['most_leases_at_once']} held at once (limit {f['tenant_concurrency']})")
    print(f"Lusha           {lusha['requests']} requests, {lusha['paid_calls']} paid enrich calls, "
          f"{lusha['contacts_enriched']} contacts, {lusha['refused']} refused; busiest minute "
          f"{lusha['busiest_minute']} (limit {lusha['limit']})")
    print(f"ZeroBounce      {zb['requests']} requests, {zb['paid_calls']} paid calls; {zb['batches']} batches for "
          f"{zb['addresses']} addresses (least possible {zb['least_batches']}), {zb['refused']} refused; "
          f"busiest minute {zb['busiest_minute']} (limit {zb['limit']})")
    print(f"sharing         crawl {f['sharing']['crawl']}, extraction {f['sharing']['extraction']}, "
          f"verification {f['sharing']['verification']}")
    if f["degraded_nights"]:
        print(f"degraded nights {f['degraded_nights']}")


if __name__ == "__main__":
    main()
