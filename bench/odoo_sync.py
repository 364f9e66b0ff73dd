"""The Odoo sync against the Odoo sandbox: JSON-RPC calls per record and records per second, first run
and re-run.

The Odoo sandbox runs in its own process (pinned to one core when the machine has two or more), the sync
in this one, with the real odoorpc client logged in the way the odoo_sync asset logs in. N scored
companies with two contacts each (the primary person and info@) are synced twice with
``OdooSync.sync``: the first run creates every company with its contacts and a lead for each score at or
above SCORE_MIN_EXPORT; the re-run finds everything and changes nothing. What is measured is
``OdooSync.sync`` alone: the login before it and the database log ``sync_and_record`` writes after it
are outside the timing (the sync itself needs no database). Calls are counted twice, by the sync
(``OdooSync.rpc_calls``) and by the server (``execute_kw`` calls and HTTP requests it answered).

Aims: at most 3 calls per created record on the first run, under 0.1 per unchanged record on the re-run.

    .venv/bin/python bench/odoo_sync.py [--records 1000] [--contacts 2] [--latency-median-s 0] [--seed 7]
    .venv/bin/python bench/odoo_sync.py --quick        # 100 records, a smoke run

It prints a short report and one JSON line with the figures. Only loopback is ever contacted: an audit
hook in both processes refuses any other connection or name lookup.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import random
import re
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

import httpx
import odoorpc
from bench_support import allow_only_loopback, pin_to_core

from nightly_pipeline.db.tenants import OdooConnection
from nightly_pipeline.scoring.score import bucket_of
from nightly_pipeline.odoo_sync import (
    OdooSync,
    SyncContact,
    SyncRecord,
    SyncReport,
)
from nightly_pipeline.settings import Settings, load_settings
from nightly_pipeline.vendors.odoo import OdooResource
from nightly_pipeline_sandbox.people import people_for

DEFAULT_RECORDS = 1000
QUICK_RECORDS = 100
DEFAULT_CONTACTS = 2
# Scores spread over Medium and High: every record is synced, about three in four get a lead.
SCORE_RANGE = (0.55, 0.99)
MAX_CALLS_PER_CREATED = 3.0
MAX_CALLS_PER_UNCHANGED = 0.1

TENANT_ID = 1
ODOO_DATABASE = "bench_odoo_sync"
ODOO_USER = "admin"
ODOO_PASSWORD = "bench-odoo"
ODOO_PASSWORD_ENV = "BENCH_ODOO_PASSWORD"
ODOO_TIMEOUT_S = 120.0
ROLE_MAILBOXES = ("info", "sales", "hello", "enquiries", "accounts")
COMPANY_PHONE = "+65 6234 5678"

SERVER_CORE, CLIENT_CORE = 0, 1
SERVER_START_TIMEOUT_S = 60.0

_NAME_PREFIXES = ("Harbour", "Orchid", "Merlion", "Straits", "Kallang", "Tanjong", "Jurong", "Bukit", "Marina",
                  "Changi", "Serangoon", "Novena", "Pasir", "Tampines", "Bedok", "Keppel")
_NAME_TRADES = ("Logistics", "Systems", "Engineering", "Trading", "Analytics", "Foods", "Robotics", "Consulting",
                "Marine", "Software", "Interiors", "Medical", "Freight", "Print", "Solar", "Labs")
_NON_ALNUM = re.compile(r"[^a-z0-9]")


# -- the Odoo process ---------------------------------------------------------------------------------------
def _serve(latency_median_s: float, seed: int, ready: Connection, stop: Event) -> None:
    """Odoo process: one database with one user, serving until told to stop."""
    pin_to_core(SERVER_CORE)
    allow_only_loopback("bench/odoo_sync.py")
    asyncio.run(_run_odoo(latency_median_s, seed, ready, stop))


async def _run_odoo(latency_median_s: float, seed: int, ready: Connection, stop: Event) -> None:
    from nightly_pipeline_sandbox.base import LatencyModel
    from nightly_pipeline_sandbox.odoo import OdooServer

    latency = LatencyModel(median_s=latency_median_s, scale=1.0 if latency_median_s > 0 else 0.0)
    server = OdooServer(databases={ODOO_DATABASE: {ODOO_USER: ODOO_PASSWORD}}, seed=seed, latency=latency)
    await server.start()
    try:
        ready.send(server.port)
        await asyncio.to_thread(stop.wait)
    finally:
        await server.stop()


@contextlib.contextmanager
def odoo_process(latency_median_s: float, seed: int) -> Iterator[str]:
    """The Odoo sandbox's URL while it serves in its own process."""
    context = multiprocessing.get_context("spawn")
    ready, server_end = context.Pipe()
    stop = context.Event()
    process = context.Process(target=_serve, args=(latency_median_s, seed, server_end, stop), name="sandbox-odoo",
                              daemon=True)
    process.start()
    try:
        if not ready.poll(SERVER_START_TIMEOUT_S):
            raise SystemExit(f"the Odoo sandbox did not start within {SERVER_START_TIMEOUT_S:g} s")
        yield f"http://127.0.0.1:{ready.recv()}"
    finally:
        stop.set()
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)


class OdooAdmin:
    """The sandbox's own counters, through its loopback admin endpoints (which it does not count)."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=30.0)

    def reset_counters(self) -> None:
        self._http.post("/_sandbox/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/_sandbox/stats")
        response.raise_for_status()
        return response.json()

    def duplicates(self) -> dict[str, list[Any]]:
        response = self._http.get("/_sandbox/odoo/duplicates", params={"db": ODOO_DATABASE})
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self._http.close()


# -- the records --------------------------------------------------------------------------------------------
def _trade(index: int) -> str:
    """A two-word business name; the company's number keeps names apart once the 256 pairs repeat."""
    prefix = _NAME_PREFIXES[index % len(_NAME_PREFIXES)]
    return f"{prefix} {_NAME_TRADES[index // len(_NAME_PREFIXES) % len(_NAME_TRADES)]}"


def synthetic_records(count: int, contacts_per_record: int, seed: int) -> list[SyncRecord]:
    """``count`` scored companies; each lists its leader (the primary), further staff, then shared mailboxes."""
    rng = random.Random(seed)
    records = []
    for index in range(count):
        trade = _trade(index)
        name = f"{trade.upper()} {index + 1} PTE. LTD."
        domain = f"{_NON_ALNUM.sub('', trade.lower())}{index + 1}.com.sg"
        score = round(rng.uniform(*SCORE_RANGE), 5)
        records.append(SyncRecord(
            company_id=index + 1, uen=f"2019{index:05d}B", name=name, domain=domain,
            street=f"{index % 90 + 1} ANSON ROAD", zip="079903",
            contacts=_contacts(domain, name, contacts_per_record, seed), score=score, bucket=bucket_of(score),
            reasons=({"feature": "industry_match", "value": "SSIC 62011 matches 62011", "contribution": 0.15},
                     {"feature": "decision_maker_email", "value": "deliverable", "contribution": 0.12},
                     {"feature": "employee_fit", "value": "headcount unknown", "contribution": -0.04}),
            rationale=f"{trade} fits the ICP: software development with a reachable decision maker.",
            other_names=(f"{trade} {index + 1}",)))
    return records


def _contacts(domain: str, company_name: str, count: int, seed: int) -> tuple[SyncContact, ...]:
    people = people_for(domain, company_name, seed=seed)
    staff = [SyncContact(email=person.email, name=person.full_name, title=person.title, phone=person.mobile,
                         is_primary=index == 0)
             for index, person in enumerate(people[:max(1, count - 1)])]
    mailboxes = [SyncContact(email=f"{local}@{domain}", phone=COMPANY_PHONE)
                 for local in ROLE_MAILBOXES[:count - len(staff)]]
    return tuple(staff + mailboxes)


# -- the runs -----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyncRun:
    report: SyncReport
    wall_s: float
    server_execute_kw: int
    server_requests: int
    server_calls: dict[str, dict[str, int]]

    @property
    def records(self) -> int:
        return len(self.report.outcomes)

    @property
    def calls_per_record(self) -> float:
        return self.report.rpc_calls / self.records if self.records else 0.0

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0


def measured_sync(odoo: odoorpc.ODOO, admin: OdooAdmin, records: Sequence[SyncRecord], settings: Settings) -> SyncRun:
    """One night's ``OdooSync.sync`` with the server's counters reset just before it."""
    admin.reset_counters()
    sync = OdooSync(odoo, TENANT_ID, score_min_export=settings.score_min_export,
                    min_bucket=settings.odoo_sync_min_bucket)
    started = time.perf_counter()
    report = sync.sync(records)
    wall_s = time.perf_counter() - started
    stats = admin.stats()
    calls = stats["databases"][ODOO_DATABASE]["calls"]
    return SyncRun(report=report, wall_s=wall_s,
                   server_execute_kw=sum(n for methods in calls.values() for n in methods.values()),
                   server_requests=stats["requests"], server_calls=calls)


def _counts(report: SyncReport) -> dict[str, dict[str, int]]:
    return {model: dataclasses.asdict(counts) for model, counts in report.counts.items()}


def _run_figures(run: SyncRun) -> dict[str, Any]:
    return {"records": run.records, "failed": len(run.report.failed), "wall_s": round(run.wall_s, 3),
            "records_per_s": round(run.records_per_s, 1), "rpc_calls": run.report.rpc_calls,
            "server_execute_kw": run.server_execute_kw, "server_http_requests": run.server_requests,
            "calls_per_record": round(run.calls_per_record, 4), "server_calls": run.server_calls,
            "counts": _counts(run.report)}


def _figures(args: argparse.Namespace, records: Sequence[SyncRecord], settings: Settings, first: SyncRun,
             rerun: SyncRun, duplicates: dict[str, list[Any]]) -> dict[str, Any]:
    created = first.report.counts["company"].created
    unchanged = rerun.report.counts["company"].unchanged
    per_created = first.report.rpc_calls / created if created else None
    per_unchanged = rerun.report.rpc_calls / unchanged if unchanged else None
    return {
        "bench": "odoo_sync",
        "records": len(records),
        "contacts_per_record": args.contacts,
        "with_lead": sum(r.score >= settings.score_min_export for r in records),
        "score_min_export": settings.score_min_export,
        "latency_median_s": args.latency_median_s,
        "seed": args.seed,
        "first": _run_figures(first),
        "rerun": _run_figures(rerun),
        "calls_per_created_record": round(per_created, 4) if per_created is not None else None,
        "calls_per_unchanged_record": round(per_unchanged, 4) if per_unchanged is not None else None,
        "ratio_to_created_aim": round(per_created / MAX_CALLS_PER_CREATED, 3) if per_created is not None else None,
        "ratio_to_unchanged_aim": round(per_unchanged / MAX_CALLS_PER_UNCHANGED, 3)
        if per_unchanged is not None else None,
        "duplicates": sum(len(groups) for groups in duplicates.values()),
    }


def _print_report(figures: dict[str, Any]) -> None:
    first, rerun = figures["first"], figures["rerun"]
    print(f"odoo sync benchmark: {figures['records']:,} companies with {figures['contacts_per_record']} contacts each "
          f"({figures['with_lead']:,} at or above SCORE_MIN_EXPORT {figures['score_min_export']} get a lead), "
          f"Odoo sandbox in its own process, latency median {figures['latency_median_s']:g} s, seed {figures['seed']}")
    print(f"  {'run':<8}{'records':>9}{'wall s':>9}{'records/s':>11}{'calls (sync/server/http)':>27}"
          f"{'per record':>12}   aim")
    for label, run, per_record, aim, ratio in (
            ("first", first, figures["calls_per_created_record"], f"<= {MAX_CALLS_PER_CREATED:g} per created",
             figures["ratio_to_created_aim"]),
            ("re-run", rerun, figures["calls_per_unchanged_record"], f"< {MAX_CALLS_PER_UNCHANGED:g} per unchanged",
             figures["ratio_to_unchanged_aim"])):
        calls = f"{run['rpc_calls']:,} / {run['server_execute_kw']:,} / {run['server_http_requests']:,}"
        shown = f"{per_record:.4f}" if per_record is not None else "-"
        print(f"  {label:<8}{run['records']:>9,}{run['wall_s']:>9.2f}{run['records_per_s']:>11,.1f}{calls:>27}"
              f"{shown:>12}   {aim} (ratio {ratio})")
    for label, run in (("first", first), ("re-run", rerun)):
        counts = ", ".join(f"{model} {' '.join(f'{k} {v:,}' for k, v in c.items() if v)}"
                           for model, c in run["counts"].items())
        print(f"  {label:<8}{counts}; failed records {run['failed']}")
    print(f"  duplicates in Odoo after both runs: {figures['duplicates']}")
    print("  measured: OdooSync.sync on a logged-in odoorpc client; the login and sync_and_record's database log "
          "are outside the timing")
    print(json.dumps(figures, separators=(",", ":")))


# -- command line -------------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=None, help=f"companies to sync (default {DEFAULT_RECORDS})")
    parser.add_argument("--contacts", type=int, default=DEFAULT_CONTACTS, help="contacts per company")
    parser.add_argument("--latency-median-s", type=float, default=0.0,
                        help="median latency the Odoo sandbox adds to every call (log-normal; 0 = none)")
    parser.add_argument("--seed", type=int, default=7, help="seeds the scores, people and latency draws")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_RECORDS} records")
    args = parser.parse_args(argv)
    if args.records is None:
        args.records = QUICK_RECORDS if args.quick else DEFAULT_RECORDS
    if args.records < 1 or not 1 <= args.contacts <= 1 + len(ROLE_MAILBOXES):
        parser.error(f"--records must be at least 1 and --contacts in 1..{1 + len(ROLE_MAILBOXES)}")
    if args.latency_median_s < 0:
        parser.error("--latency-median-s must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    allow_only_loopback("bench/odoo_sync.py")
    settings = load_settings({})
    records = synthetic_records(args.records, args.contacts, args.seed)
    with odoo_process(args.latency_median_s, args.seed) as url:
        pin_to_core(CLIENT_CORE)
        connection = OdooConnection(url=url, db_name=ODOO_DATABASE, username=ODOO_USER,
                                    password_env=ODOO_PASSWORD_ENV, active=True)
        odoo = OdooResource(timeout_s=ODOO_TIMEOUT_S).connect(connection, ODOO_PASSWORD)
        admin = OdooAdmin(url)
        try:
            first = measured_sync(odoo, admin, records, settings)
            rerun = measured_sync(odoo, admin, records, settings)
            duplicates = admin.duplicates()
        finally:
            admin.close()
    _print_report(_figures(args, records, settings, first, rerun, duplicates))


if __name__ == "__main__":
    main()
