"""The contacts and verified_emails stages against the Lusha and ZeroBounce sandboxes: wall time versus
the bound the vendors' rate limits set.

The two vendor sandboxes run in their own process (pinned to one core when the machine has two or more),
the stages in this one, on a throwaway embedded PostgreSQL that is deleted at the end. The night is
synthetic: N companies with a run manifest and crawl signals, half of them showing a person's address on
their own domain, the other half only ``info@`` (those go to Lusha). Each stage runs the logic its asset
runs, without Dagster: ``contacts`` loads the night's records and calls ``find_contacts``;
``verified_emails`` loads the night's contact addresses, calls ``verify_emails`` and re-chooses the
primaries. Lusha allows 300 calls and ZeroBounce 5 ``validatebatch`` calls per rolling minute; vendor
latency is log-normal with a 0.25 s median. The caps (LUSHA_MAX_CONTACT_LOOKUPS,
ZEROBOUNCE_MAX_VERIFICATIONS) are set to 10,000 so that they never cut the run.

The bound of a stage is the least wall time any client could reach under its vendor's rolling window:
``calls`` calls at most ``limit`` of which start in any 60 s cannot finish before
floor((calls - 1) / limit) minutes plus one call's latency, with ``calls`` the calls the vendor served
(Lusha: searches and enrich calls; ZeroBounce: ceil(addresses / 200) batches). The stages run one after
the other, so the bound of the two is the sum. The aim is wall / bound <= 1.2. The steady-rate schedule,
(calls - 1) / limit minutes plus one call's latency (every call spread evenly at the limit), and the ratio
to it are printed beside it: it is what a client pacing itself evenly at the limit needs, but not a lower
bound, since a rolling window also admits a full window's burst.

    .venv/bin/python bench/contacts.py [--targets 1000] [--lusha-per-minute 300]
                                       [--zerobounce-batches-per-minute 5] [--latency-scale 1] [--seed 7]
    .venv/bin/python bench/contacts.py --quick        # 100 targets, a smoke run

It prints a short report and one JSON line with the figures. Only loopback is ever contacted: an audit
hook in both processes refuses any other connection or name lookup.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psycopg
from bench_support import allow_only_loopback, pin_to_core
from psycopg import sql

from nightly_pipeline.crawl.signals import SiteSignals
from nightly_pipeline.domain.web import classify_email
from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.embedded import EmbeddedPostgres
from nightly_pipeline.db.migrate import migrate
from nightly_pipeline.domain.acra import CompanyRecord
from nightly_pipeline.domain.targets import Target, Tier
from nightly_pipeline_sandbox.people import people_for
from nightly_pipeline.settings import Settings, load_settings
from nightly_pipeline.stages.contacts import (
    ContactsReport,
    assign_primary_contacts,
    find_contacts,
)
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.stages.verification import (
    DEFAULT_BATCH_SIZE,
    VerificationReport,
    verify_emails,
)
from nightly_pipeline.vendors.lusha import LushaClient
from nightly_pipeline.vendors.zerobounce import ZeroBounceClient

DEFAULT_TARGETS = 1000
QUICK_TARGETS = 100
MIN_TARGETS = 10
LUSHA_PER_MINUTE = 300
ZEROBOUNCE_BATCHES_PER_MINUTE = 5
WINDOW_S = 60.0
VENDOR_MEDIAN_LATENCY_S = 0.25
VENDOR_CAP = 10_000
TARGET_RATIO = 1.2
DEFAULT_STAGE_TIMEOUT_S = 20 * 60.0

LUSHA_KEY = "lusha-bench"
ZEROBOUNCE_KEY = "zb-bench"
LUSHA_SEARCH = "/prospecting/contact/search"
LUSHA_ENRICH = "/prospecting/contact/enrich"
ZEROBOUNCE_BATCH = "validatebatch"

APP_ROLE = "nightly_app"
BENCH_DATABASE = "bench_contacts"
TENANT_NAME = "bench-contacts"
COMPANY_PHONE = "+6562345678"
SERVER_CORE, CLIENT_CORE = 0, 1
SERVER_START_TIMEOUT_S = 60.0
SERVER_REPORT_TIMEOUT_S = 30.0

# Words for synthetic company names; none is a legal form ("Holdings", "Singapore", "Co") that the
# Lusha sandbox strips when it matches a name to a domain.
_NAME_PREFIXES = ("Harbour", "Orchid", "Merlion", "Straits", "Kallang", "Tanjong", "Jurong", "Bukit", "Marina",
                  "Changi", "Serangoon", "Novena", "Pasir", "Tampines", "Bedok", "Keppel")
_NAME_TRADES = ("Logistics", "Systems", "Engineering", "Trading", "Analytics", "Foods", "Robotics", "Consulting",
                "Marine", "Software", "Interiors", "Medical", "Freight", "Print", "Solar", "Labs")
_NON_ALNUM = re.compile(r"[^a-z0-9]")


# -- the vendor process -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VendorSettings:
    lusha_per_minute: int
    zerobounce_batches_per_minute: int
    latency_scale: float
    seed: int


@dataclasses.dataclass(frozen=True)
class VendorPorts:
    lusha: int
    zerobounce: int


def _serve(settings: VendorSettings, channel: Connection, stop: Event) -> None:
    """Vendor process: start both sandboxes, report their ports, serve until told to stop, send their stats."""
    pin_to_core(SERVER_CORE)
    allow_only_loopback("bench/contacts.py")
    asyncio.run(_run_vendors(settings, channel, stop))


async def _run_vendors(settings: VendorSettings, channel: Connection, stop: Event) -> None:
    from nightly_pipeline_sandbox.base import LatencyModel
    from nightly_pipeline_sandbox.lusha import LushaServer
    from nightly_pipeline_sandbox.zerobounce import ZeroBounceServer

    def latency() -> LatencyModel:
        return LatencyModel(median_s=VENDOR_MEDIAN_LATENCY_S, scale=settings.latency_scale)

    lusha = LushaServer(seed=settings.seed, api_keys={LUSHA_KEY}, per_minute=settings.lusha_per_minute,
                        latency=latency())
    zerobounce = ZeroBounceServer(seed=settings.seed, api_keys={ZEROBOUNCE_KEY},
                                  batch_per_minute=settings.zerobounce_batches_per_minute, latency=latency())
    await lusha.start()
    try:
        await zerobounce.start()
        try:
            channel.send(VendorPorts(lusha=lusha.port or 0, zerobounce=zerobounce.port or 0))
            await asyncio.to_thread(stop.wait)
            channel.send({"lusha": lusha.stats(), "zerobounce": zerobounce.stats()})
        finally:
            await zerobounce.stop()
    finally:
        await lusha.stop()


def _receive(channel: Connection, timeout_s: float, what: str) -> Any:
    if not channel.poll(timeout_s):
        raise SystemExit(f"the vendor process sent no {what} within {timeout_s:g} s")
    return channel.recv()


@dataclasses.dataclass
class VendorProcess:
    ports: VendorPorts
    channel: Connection
    stop: Event

    @property
    def lusha_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.lusha}"

    @property
    def zerobounce_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.zerobounce}/v2"

    def final_stats(self) -> dict[str, dict[str, Any]]:
        """Stop serving and return each sandbox's counters."""
        self.stop.set()
        return _receive(self.channel, SERVER_REPORT_TIMEOUT_S, "stats")


@contextlib.contextmanager
def vendor_process(settings: VendorSettings) -> Iterator[VendorProcess]:
    context = multiprocessing.get_context("spawn")
    channel, server_end = context.Pipe()
    stop = context.Event()
    process = context.Process(target=_serve, args=(settings, server_end, stop), name="sandbox-vendors", daemon=True)
    process.start()
    try:
        yield VendorProcess(_receive(channel, SERVER_START_TIMEOUT_S, "ports"), channel, stop)
    finally:
        stop.set()
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)


# -- the database -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def throwaway_database() -> Iterator[Database]:
    """A migrated database on an embedded PostgreSQL in a temporary folder, deleted afterwards."""
    home = Path(tempfile.mkdtemp(prefix="bench-contacts-pg-"))
    # pgserver runs the server as its own user when we are root: that user must be able to enter the folder.
    home.chmod(0o755)
    server = EmbeddedPostgres(home, cleanup_mode="delete").start()
    try:
        with psycopg.connect(server.uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
        admin_url = server.uri(database=BENCH_DATABASE)
        migrate(admin_url, APP_ROLE)
        app_url = server.uri(user=APP_ROLE, database=BENCH_DATABASE)
        database = Database(DatabaseTarget(admin_url=admin_url, app_url=app_url, app_role=APP_ROLE, embedded=True))
        try:
            yield database
        finally:
            database.close()
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


# -- the synthetic night ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyntheticCompany:
    uen: str
    name: str
    domain: str
    site_addresses: tuple[str, ...]
    has_site_person: bool


@dataclasses.dataclass(frozen=True)
class Night:
    tenant_id: int
    run_id: uuid.UUID
    run_date: dt.date
    company_ids: list[int]
    with_site_person: int

    def tenant_night(self, db: Database, settings: Settings) -> TenantNight:
        return TenantNight(db, self.tenant_id, self.run_id, self.run_date, settings, tuple(self.company_ids))


def _trade(index: int) -> str:
    """A two-word business name; the company's number keeps names apart once the 256 pairs repeat."""
    prefix = _NAME_PREFIXES[index % len(_NAME_PREFIXES)]
    return f"{prefix} {_NAME_TRADES[index // len(_NAME_PREFIXES) % len(_NAME_TRADES)]}"


def synthetic_companies(count: int, seed: int) -> list[SyntheticCompany]:
    """``count`` companies; every other one shows its leader's own address on its site, the rest only info@."""
    companies = []
    for index in range(count):
        trade = _trade(index)
        name = f"{trade} {index + 1} Pte. Ltd."
        domain = f"{_NON_ALNUM.sub('', trade.lower())}{index + 1}.com.sg"
        has_site_person = index % 2 == 0
        address = people_for(domain, name, seed=seed)[0].email if has_site_person else f"info@{domain}"
        companies.append(SyntheticCompany(uen=f"2019{index:05d}B", name=name, domain=domain,
                                          site_addresses=(address,), has_site_person=has_site_person))
    return companies


def _company_record(company: SyntheticCompany) -> CompanyRecord:
    return CompanyRecord(uen=company.uen, name=company.name, legal_name=company.name.upper(),
                         entity_type="Local Company", entity_status="Live Company", is_live=True, ssic_code="62011",
                         ssic_description="Development of software and applications",
                         incorporation_date=dt.date(2019, 3, 1), incorporation_year=2019, postal_code="079903",
                         street_name="ANSON ROAD", website_domain=company.domain, source_row_hash=company.uen)


def _site_signals(company: SyntheticCompany) -> dict[str, Any]:
    """What the crawl stage stores for a site that published ``site_addresses`` and a phone line."""
    signals = SiteSignals(emails=tuple(classify_email(address, company.domain, "mailto")
                                       for address in company.site_addresses),
                          phones=(COMPANY_PHONE,)).to_dict()
    signals.pop("corpus")
    signals["domain"] = {"value": company.domain, "source": "acra", "confidence": 1.0}
    return signals


def seed_night(db: Database, companies: Sequence[SyntheticCompany], run_date: dt.date) -> Night:
    """Companies, a tenant, its run manifest and each target's crawl record: what contacts finds after crawl_corpus."""
    with db.shared() as conn:
        acra_db.upsert_companies(conn, [_company_record(c) for c in companies], dt.datetime.now(dt.UTC))
        ids = {row["uen"]: row["company_id"] for row in conn.execute(
            "SELECT uen, company_id FROM companies WHERE uen = ANY(%s)", ([c.uen for c in companies],))}
        tenant_id = tenants_db.register_tenant(conn, TENANT_NAME, None)
    company_ids = [ids[c.uen] for c in companies]
    with db.tenant(tenant_id) as conn:
        manifest = targets_db.create_manifest(
            conn, run_date, [Target(cid, Tier.NEVER_SEEN, 1.0, None) for cid in company_ids],
            caps={"lusha_max_contact_lookups": VENDOR_CAP, "zerobounce_max_verifications": VENDOR_CAP},
            budget_snapshot={}, dagster_run_id=None)
        for company in companies:
            enrichment_db.save_company_run(conn, manifest.run_id, enrichment_db.CompanyRunRecord(
                company_id=ids[company.uen], outcome="crawled", degraded=False, reasons=[],
                signals=_site_signals(company), extraction={}, corpus_hash=None, corpus=None))
    return Night(tenant_id=tenant_id, run_id=manifest.run_id, run_date=run_date, company_ids=company_ids,
                 with_site_person=sum(c.has_site_person for c in companies))


# -- the two stages, as their assets run them -----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StageRun:
    wall_s: float
    timed_out: bool


def run_contacts(db: Database, night: Night, settings: Settings, lusha_url: str,
                 timeout_s: float) -> tuple[ContactsReport | None, StageRun]:
    started = time.perf_counter()
    tenant_night = night.tenant_night(db, settings)
    with tenant_night.transaction() as conn:
        records = enrichment_db.run_records(conn, night.run_id)

    async def run() -> ContactsReport:
        async with asyncio.timeout(timeout_s), LushaClient(LUSHA_KEY, base_url=lusha_url) as client:
            return await find_contacts(records, tenant_night, client,
                                       preferred_titles=settings.lusha_preferred_titles)
    try:
        report: ContactsReport | None = asyncio.run(run())
    except TimeoutError:
        report = None
    return report, StageRun(time.perf_counter() - started, report is None)


def run_verified_emails(db: Database, night: Night, settings: Settings, zerobounce_url: str,
                        timeout_s: float) -> tuple[VerificationReport | None, StageRun]:
    started = time.perf_counter()
    tenant_night = night.tenant_night(db, settings)
    with tenant_night.transaction() as conn:
        by_company = contacts_db.contacts_of_companies(conn, night.company_ids)
    emails = sorted({contact.email for found in by_company.values() for contact in found})

    async def run() -> VerificationReport:
        async with asyncio.timeout(timeout_s), ZeroBounceClient(ZEROBOUNCE_KEY, base_url=zerobounce_url,
                                                                bulk_base_url=zerobounce_url) as client:
            return await verify_emails(emails, tenant_night, client)
    try:
        report: VerificationReport | None = asyncio.run(run())
    except TimeoutError:
        report = None
    if report is not None:
        # A primary found suppressed gives way to the next best address.
        assign_primary_contacts(tenant_night, night.company_ids, settings.lusha_preferred_titles)
    return report, StageRun(time.perf_counter() - started, report is None)


# -- the bound ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RateBound:
    """``calls`` calls to a vendor that lets ``per_minute`` start in any rolling 60 s."""

    calls: int
    per_minute: int
    latency_s: float

    @property
    def floor_s(self) -> float:
        """Call k * per_minute + 1 starts at least k minutes after the first; the last one then takes its latency."""
        if self.calls == 0:
            return 0.0
        return (self.calls - 1) // self.per_minute * WINDOW_S + self.latency_s

    @property
    def steady_rate_s(self) -> float:
        """The calls spread evenly at the limit."""
        if self.calls == 0:
            return 0.0
        return (self.calls - 1) / self.per_minute * WINDOW_S + self.latency_s


def _served(stats: dict[str, Any], refused: int) -> int:
    return sum(stats["calls_by_endpoint"].values()) - refused


def _ratio(wall_s: float, bound_s: float) -> float | None:
    return round(wall_s / bound_s, 3) if bound_s > 0 else None


def _figures(args: argparse.Namespace, night: Night, contacts: ContactsReport | None, contacts_run: StageRun,
             verification: VerificationReport | None, verification_run: StageRun,
             vendor_stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    lusha, zerobounce = vendor_stats["lusha"], vendor_stats["zerobounce"]
    latency_s = VENDOR_MEDIAN_LATENCY_S * args.latency_scale
    lusha_refused = lusha["rate_limited"] + lusha["unauthorized"]
    lusha_calls = _served(lusha, lusha_refused)
    pending = verification.requested - verification.cache_hits if verification else 0
    batches_needed = math.ceil(pending / DEFAULT_BATCH_SIZE)
    batches_served = zerobounce["calls_by_endpoint"].get(ZEROBOUNCE_BATCH, 0) - zerobounce["batch_refusals"]
    lusha_bound = RateBound(lusha_calls, args.lusha_per_minute, latency_s)
    zerobounce_bound = RateBound(batches_needed, args.zerobounce_batches_per_minute, latency_s)
    wall_s = contacts_run.wall_s + verification_run.wall_s
    bound_s = lusha_bound.floor_s + zerobounce_bound.floor_s
    steady_s = lusha_bound.steady_rate_s + zerobounce_bound.steady_rate_s
    return {
        "bench": "contacts",
        "targets": len(night.company_ids),
        "with_site_person": night.with_site_person,
        "lusha_per_minute": args.lusha_per_minute,
        "zerobounce_batches_per_minute": args.zerobounce_batches_per_minute,
        "latency_median_s": latency_s,
        "seed": args.seed,
        "partial": contacts_run.timed_out or verification_run.timed_out,
        "wall_s": round(wall_s, 2),
        "bound_s": round(bound_s, 2),
        "ratio": _ratio(wall_s, bound_s),
        "steady_rate_s": round(steady_s, 2),
        "ratio_to_steady_rate": _ratio(wall_s, steady_s),
        "contacts_wall_s": round(contacts_run.wall_s, 2),
        "contacts_bound_s": round(lusha_bound.floor_s, 2),
        "contacts_ratio": _ratio(contacts_run.wall_s, lusha_bound.floor_s),
        "contacts_steady_rate_s": round(lusha_bound.steady_rate_s, 2),
        "contacts_ratio_to_steady_rate": _ratio(contacts_run.wall_s, lusha_bound.steady_rate_s),
        "verified_emails_wall_s": round(verification_run.wall_s, 2),
        "verified_emails_bound_s": round(zerobounce_bound.floor_s, 2),
        "verified_emails_ratio": _ratio(verification_run.wall_s, zerobounce_bound.floor_s),
        "verified_emails_steady_rate_s": round(zerobounce_bound.steady_rate_s, 2),
        "verified_emails_ratio_to_steady_rate": _ratio(verification_run.wall_s, zerobounce_bound.steady_rate_s),
        "lusha_calls": lusha_calls,
        "lusha_searches": lusha["calls_by_endpoint"].get(LUSHA_SEARCH, 0),
        "lusha_enrich_calls": lusha["calls_by_endpoint"].get(LUSHA_ENRICH, 0),
        "lusha_refused_429": lusha["rate_limited"],
        "lusha_peak_requests_in_60s": lusha["max_requests_in_60s"],
        "lusha_contacts_enriched": lusha["contacts_enriched"],
        "lusha_credits": lusha["credits_total"],
        "companies_needing_lusha": contacts.companies_needing_lusha if contacts else None,
        "lusha_requests_per_company": (round(lusha_calls / contacts.companies_needing_lusha, 3)
                                       if contacts and contacts.companies_needing_lusha else None),
        "contacts_by_source": contacts.contacts_by_source if contacts else None,
        "primary_contacts": contacts.primary_contacts if contacts else None,
        "addresses": pending,
        "zerobounce_batches_needed": batches_needed,
        "zerobounce_batches_served": batches_served,
        "zerobounce_refused_429": zerobounce["batch_refusals"],
        "zerobounce_peak_batches_in_60s": zerobounce["max_batch_calls_in_60s"],
        "zerobounce_credits": zerobounce["credits_used"],
        "verified": verification.verified if verification else None,
        "by_policy": verification.by_policy if verification else None,
        "caps": {"LUSHA_MAX_CONTACT_LOOKUPS": VENDOR_CAP, "ZEROBOUNCE_MAX_VERIFICATIONS": VENDOR_CAP},
        "limits_bind": lusha_calls > args.lusha_per_minute or batches_needed > args.zerobounce_batches_per_minute,
        "degradations": [*(contacts.degradations if contacts else []),
                         *(verification.degradations if verification else [])],
    }


def _print_report(figures: dict[str, Any]) -> None:
    def ratio(value: float | None) -> str:
        return f"{value:.3f}" if value is not None else "-"

    print(f"contacts + verified_emails benchmark: {figures['targets']:,} targets "
          f"({figures['with_site_person']:,} with a personal site address, the rest info@ only), "
          f"Lusha {figures['lusha_per_minute']} calls/min, ZeroBounce {figures['zerobounce_batches_per_minute']} "
          f"batches/min, vendor latency median {figures['latency_median_s']:g} s, seed {figures['seed']}")
    if figures["partial"]:
        print("  PARTIAL: a stage hit its timeout; the figures cover what it did until then")
    print(f"  {'stage':<17}{'wall s':>8}{'bound s':>9}{'ratio':>8}{'steady-rate s':>15}{'ratio':>8}")
    for stage in ("contacts", "verified_emails", "both"):
        key = "" if stage == "both" else f"{stage}_"
        print(f"  {stage:<17}{figures[f'{key}wall_s']:>8.2f}{figures[f'{key}bound_s']:>9.2f}"
              f"{ratio(figures[f'{key}ratio']):>8}{figures[f'{key}steady_rate_s']:>15.2f}"
              f"{ratio(figures[f'{key}ratio_to_steady_rate']):>8}")
    print(f"  aim                ratio <= {TARGET_RATIO}")
    print(f"  Lusha                {figures['lusha_calls']:,} calls served, {figures['lusha_refused_429']:,} more "
          f"refused with 429 ({figures['lusha_searches']:,} searches and {figures['lusha_enrich_calls']:,} enrich "
          f"calls sent), {figures['lusha_requests_per_company']} requests per company needing Lusha")
    print(f"  ZeroBounce           {figures['zerobounce_batches_served']} batch calls served for "
          f"{figures['addresses']:,} addresses ({figures['zerobounce_batches_needed']} needed, "
          f"{figures['zerobounce_refused_429']} refused)")
    print("  bound: per stage floor((calls - 1) / limit) min + one call's median latency (a rolling window lets "
          "`limit` calls start at once,")
    print("         the next `limit` a minute later); the stages run one after the other, so their bounds add. "
          "steady rate: (calls - 1) / limit min + one latency")
    print(f"  credits              Lusha {figures['lusha_credits']:,} ({figures['lusha_contacts_enriched']:,} contacts "
          f"enriched), ZeroBounce {figures['zerobounce_credits']:,}; caps {figures['caps']}")
    print(f"  busiest 60 s         Lusha {figures['lusha_peak_requests_in_60s']:,} requests incl. refused "
          f"(limit {figures['lusha_per_minute']}), ZeroBounce {figures['zerobounce_peak_batches_in_60s']} batch calls "
          f"(limit {figures['zerobounce_batches_per_minute']})")
    print(f"  outcome              contacts by source {figures['contacts_by_source']}, primaries "
          f"{figures['primary_contacts']}, verdicts {figures['by_policy']}")
    if figures["degradations"]:
        print(f"  DEGRADED             {figures['degradations']}")
    if not figures["limits_bind"]:
        print("  note: every call fits in one window, so the bound is one latency and the ratio means little here")
    print(json.dumps(figures, separators=(",", ":")))


# -- command line -------------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--targets", type=int, default=None, help=f"companies in the night (default {DEFAULT_TARGETS})")
    parser.add_argument("--lusha-per-minute", type=int, default=LUSHA_PER_MINUTE)
    parser.add_argument("--zerobounce-batches-per-minute", type=int, default=ZEROBOUNCE_BATCHES_PER_MINUTE)
    parser.add_argument("--latency-scale", type=float, default=1.0,
                        help=f"multiplies the vendors' latency (median {VENDOR_MEDIAN_LATENCY_S} s)")
    parser.add_argument("--seed", type=int, default=7, help="seeds the sandboxes' directories, verdicts and latency")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_TARGETS} targets")
    parser.add_argument("--timeout", type=float, default=DEFAULT_STAGE_TIMEOUT_S,
                        help="seconds after which a stage is stopped and the report covers what it did")
    args = parser.parse_args(argv)
    if args.targets is None:
        args.targets = QUICK_TARGETS if args.quick else DEFAULT_TARGETS
    if args.targets < MIN_TARGETS:
        parser.error(f"--targets must be at least {MIN_TARGETS}")
    if args.lusha_per_minute < 1 or args.zerobounce_batches_per_minute < 1:
        parser.error("the vendor limits must be at least 1 per minute")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    allow_only_loopback("bench/contacts.py")
    settings = load_settings({"LUSHA_MAX_CONTACT_LOOKUPS": str(VENDOR_CAP),
                              "ZEROBOUNCE_MAX_VERIFICATIONS": str(VENDOR_CAP)})
    vendors = VendorSettings(lusha_per_minute=args.lusha_per_minute,
                             zerobounce_batches_per_minute=args.zerobounce_batches_per_minute,
                             latency_scale=args.latency_scale, seed=args.seed)
    with vendor_process(vendors) as sandbox, throwaway_database() as db:
        pin_to_core(CLIENT_CORE)
        night = seed_night(db, synthetic_companies(args.targets, args.seed), dt.date.today())
        contacts, contacts_run = run_contacts(db, night, settings, sandbox.lusha_url, args.timeout)
        verification, verification_run = run_verified_emails(db, night, settings, sandbox.zerobounce_url, args.timeout)
        vendor_stats = sandbox.final_stats()
    _print_report(_figures(args, night, contacts, contacts_run, verification, verification_run, vendor_stats))


if __name__ == "__main__":
    main()
