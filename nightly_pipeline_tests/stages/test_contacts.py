"""The contacts stage through the Lusha sandbox with the real httpx client and PostgreSQL: the cap
holds under concurrency, re-runs cost nothing, 429 storms and refusals degrade cleanly."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.enrichment import RunRecord
from nightly_pipeline.domain.contacts import preferred_title_rank
from nightly_pipeline.stages.contacts import (
    DOMAINS_PER_SEARCH,
    ContactsReport,
    assign_primary_contacts,
    find_contacts,
)
from nightly_pipeline.settings import load_settings
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors.lusha import DISABLED, MAX_IN_FLIGHT, NO_KEY, LushaClient, NullLushaClient
from nightly_pipeline_sandbox.base import FaultConfig, LatencyModel
from nightly_pipeline_sandbox.lusha import LushaServer
from nightly_pipeline_sandbox.people import LEADER_ROLES, people_for
from nightly_pipeline_sandbox.harness import serving

pytestmark = pytest.mark.database

KEY = "lusha-test-key"
PREFERRED = ["CEO", "Founder", "Managing Director", "CTO", "Head of Sales"]
SEARCH = "/prospecting/contact/search"
ENRICH = "/prospecting/contact/enrich"
LEADER_TITLES = {role.title for role in LEADER_ROLES}


@pytest.fixture
def tenant(db: Database) -> int:
    with db.shared() as conn:
        return tenants_db.register_tenant(conn, "acme", None)


def add_companies(db: Database, count: int, *, prefix: str = "firm") -> list[dict[str, Any]]:
    """Companies whose crawled site showed only a shared mailbox and a phone line."""
    companies = []
    with db.shared() as conn:
        for i in range(count):
            domain, name = f"{prefix}{i}.com.sg", f"{prefix.title()} {i} Pte. Ltd."
            row = conn.execute(
                """INSERT INTO companies (uen, name, legal_name, is_live, website_domain, source_row_hash,
                                          source_updated_at)
                   VALUES (%s, %s, %s, true, %s, 'h', now()) RETURNING company_id""",
                (f"T{uuid.uuid4().hex[:9]}", name, name.upper(), domain)).fetchone()
            companies.append({"company_id": row["company_id"], "name": name, "legal_name": name.upper(),
                              "website_domain": domain, "signals": role_only_signals(domain)})
    return companies


def role_only_signals(domain: str) -> dict[str, Any]:
    return {"emails": [{"email": f"info@{domain}", "kind": "role", "on_company_domain": True, "free_mail": False,
                        "source": "mailto"}],
            "phones": ["+6562345678"], "domain": {"value": domain, "source": "acra", "confidence": 1.0}}


@contextlib.contextmanager
def lusha_server(**options: Any) -> Iterator[LushaServer]:
    with serving(LushaServer(api_keys={KEY}, unknown_domain_rate=0.0, **options)) as server:
        yield server


def as_record(company: dict[str, Any]) -> RunRecord:
    """The crawl stage's record of a company, as the contacts stage reads it."""
    return RunRecord(company_id=company["company_id"], name=company["name"], legal_name=company["legal_name"],
                     uen=f"T{company['company_id']:09d}", website_domain=company["website_domain"], outcome="crawled",
                     degraded=False, reasons=[], signals=company["signals"], extraction={}, corpus_hash=None)


def run_stage(server: LushaServer | None, companies: Sequence[dict[str, Any]], night: TenantNight, *,
              key: str = KEY, client_options: dict[str, Any] | None = None, max_lookups: int = 500,
              enabled: bool = True, **options: Any) -> ContactsReport:
    night = dataclasses.replace(night, settings=load_settings({"LUSHA_MAX_CONTACT_LOOKUPS": str(max_lookups)}))
    records = [as_record(company) for company in companies]

    async def run() -> ContactsReport:
        if server is None or not enabled:
            client: LushaClient | NullLushaClient = NullLushaClient(NO_KEY if server is None else DISABLED)
        else:
            client = LushaClient(key, base_url=server.url, **(client_options or {}))
        async with client:
            return await find_contacts(records, night, client, **{"preferred_titles": PREFERRED, **options})
    return asyncio.run(run())


def new_night(db: Database, tenant: int) -> TenantNight:
    """A run of ``tenant`` with its own ledger (the contacts stage needs no manifest)."""
    return TenantNight(db, tenant, uuid.uuid4(), dt.date(2026, 6, 1), load_settings({}))


def stored_contacts(db: Database, tenant: int) -> list[dict[str, Any]]:
    with db.tenant(tenant) as conn:
        return conn.execute("SELECT * FROM contacts ORDER BY company_id, email").fetchall()


def ledger(db: Database, tenant: int) -> list[dict[str, Any]]:
    with db.tenant(tenant) as conn:
        return conn.execute("SELECT * FROM vendor_usage ORDER BY usage_id").fetchall()


def test_cap_holds_for_many_concurrent_companies_and_ledger_matches_lusha(db: Database, tenant: int) -> None:
    companies = add_companies(db, 40)
    night = new_night(db, tenant)
    with lusha_server() as server:
        report = run_stage(server, companies, night, max_lookups=10)
        stats = server.stats()

    assert report.lusha_contacts_enriched == stats["contacts_enriched"] == stats["credits_total"] == 10
    usage = night.budget.usage()["lusha"]
    assert usage["charged"] == 10 and usage["reserved"] == 10
    searches = [row for row in ledger(db, tenant) if row["endpoint"] == SEARCH]
    assert len(searches) == stats["calls_by_endpoint"][SEARCH] and all(r["units_charged"] == 0 for r in searches)
    assert report.cap_reached and report.companies_skipped_for_cap > 0
    enriched_companies = {c["company_id"] for c in stored_contacts(db, tenant) if "lusha" in c["source"]}
    assert report.companies_skipped_for_cap == 40 - len(enriched_companies)
    assert [d for d in report.degradations if "cap reached (10 contacts" in d
            and f"{report.companies_skipped_for_cap} companies" in d]
    lusha_rows = [c for c in stored_contacts(db, tenant) if c["source"] == "lusha"]
    assert len(lusha_rows) == 10
    assert all(c["vendor_ref"]["lusha"]["contact_id"] and c["vendor_ref"]["lusha"]["request_id"] for c in lusha_rows)
    assert len([c for c in stored_contacts(db, tenant) if c["source"] == "site"]) == 40


def test_lusha_fills_in_preferred_people_and_they_become_primary(db: Database, tenant: int) -> None:
    companies = add_companies(db, 4)
    with lusha_server() as server:
        report = run_stage(server, companies, new_night(db, tenant))

    assert report.companies_needing_lusha == 4 and report.degradations == []
    assert report.primary_contacts == 4
    for company in companies:
        rows = [c for c in stored_contacts(db, tenant) if c["company_id"] == company["company_id"]]
        people = {p.email: p for p in people_for(company["website_domain"], company["name"])}
        lusha = [r for r in rows if r["source"] == "lusha"]
        assert 1 <= len(lusha) <= 3
        assert all(r["email"] in people and r["full_name"] == people[r["email"]].full_name for r in lusha)
        [primary] = [r for r in rows if r["is_primary"]]
        best_rank = min(preferred_title_rank(r["title"], PREFERRED) for r in rows)
        assert preferred_title_rank(primary["title"], PREFERRED) == best_rank < len(PREFERRED)
        assert primary["seniority"] == 6


def test_a_rerun_makes_no_lusha_calls_and_adds_no_rows(db: Database, tenant: int) -> None:
    companies = add_companies(db, 6)
    with lusha_server() as server:
        first = run_stage(server, companies, new_night(db, tenant))
        requests_after_first = server.stats()["requests"]
        rows_after_first = stored_contacts(db, tenant)
        second_night = new_night(db, tenant)
        second = run_stage(server, companies, second_night)
        stats = server.stats()

    assert first.lusha_contacts_enriched > 0
    assert stats["requests"] == requests_after_first
    assert second.lusha_cache_hits == 6 and second.lusha_searches == second.lusha_enrich_calls == 0
    assert second_night.budget.usage() == {}
    assert [(r["company_id"], r["email"], r["source"]) for r in stored_contacts(db, tenant)] == [
        (r["company_id"], r["email"], r["source"]) for r in rows_after_first]


def test_after_the_cache_expires_known_contacts_are_not_paid_for_again(db: Database, tenant: int) -> None:
    companies = add_companies(db, 3)
    with lusha_server() as server:
        first = run_stage(server, companies, new_night(db, tenant), cache_days=0)
        credits_after_first = server.stats()["credits_total"]
        second = run_stage(server, companies, new_night(db, tenant), cache_days=0)
        stats = server.stats()

    assert second.lusha_searches == 1 and second.lusha_enrich_calls == 0, "one search serves the three companies"
    assert second.lusha_already_revealed == first.lusha_contacts_enriched
    assert stats["credits_total"] == credits_after_first
    assert second.lusha_contacts == first.lusha_contacts


def test_site_and_lusha_sightings_of_one_address_merge_into_one_row(db: Database, tenant: int) -> None:
    [company] = add_companies(db, 1)
    with lusha_server() as server:
        run_stage(server, [company], new_night(db, tenant))
        [leader] = [r for r in stored_contacts(db, tenant) if r["title"] in LEADER_TITLES]
        # Next night the site publishes the leader's address itself.
        company["signals"]["emails"].append({"email": leader["email"].upper(), "kind": "personal",
                                             "on_company_domain": True, "free_mail": False, "source": "text"})
        requests_before = server.stats()["requests"]
        report = run_stage(server, [company], new_night(db, tenant))
        assert server.stats()["requests"] == requests_before, "a personal site contact needs no Lusha"

    rows = stored_contacts(db, tenant)
    [merged] = [r for r in rows if r["email"] == leader["email"]]
    assert merged["source"] == "site+lusha"
    assert set(merged["vendor_ref"]) >= {"site", "lusha"}
    assert (merged["full_name"], merged["title"], merged["is_primary"]) == (
        leader["full_name"], leader["title"], leader["is_primary"])
    assert report.contacts_by_source["site+lusha"] == 1
    assert len(rows) == len({(r["company_id"], r["email"]) for r in rows})


def test_a_suppressed_primary_is_replaced_after_verification(db: Database, tenant: int) -> None:
    [company] = add_companies(db, 1)
    with lusha_server() as server:
        run_stage(server, [company], new_night(db, tenant))
    [primary] = [r for r in stored_contacts(db, tenant) if r["is_primary"]]
    with db.tenant(tenant) as conn:
        contacts_db.put_verifications(conn, [contacts_db.VerificationRecord(
            primary["email"], "spamtrap", None, "suppressed", ttl=dt.timedelta(days=90))])

    chosen = assign_primary_contacts(new_night(db, tenant), [company["company_id"]], PREFERRED)

    flagged = [r["email"] for r in stored_contacts(db, tenant) if r["is_primary"]]
    assert flagged == [chosen[company["company_id"]]] and primary["email"] not in flagged


def test_a_429_storm_costs_each_call_its_own_companies_and_the_other_calls_still_go(db: Database,
                                                                                    tenant: int) -> None:
    companies = add_companies(db, DOMAINS_PER_SEARCH + 5)
    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)

    night = new_night(db, tenant)
    with lusha_server(faults=FaultConfig(rate_429=1.0, retry_after_s=2)) as server:
        report = run_stage(server, companies, night,
                           client_options={"sleep": recorded_sleep, "max_attempts": 4})
        stats = server.stats()

    # Two searches (25 domains, then 5): the first one's refusals do not stop the second.
    assert stats["requests"] == 2 * 4, "each search gave up after exactly max_attempts requests"
    assert len(waits) == 2 * 3 and all(wait >= 2 for wait in waits), "each retry waits what Retry-After asked"
    assert not [d for d in report.degradations if d.startswith("Lusha stopped for this run")]
    assert [d for d in report.degradations
            if d.startswith(f"Lusha lookup failed for {len(companies)} companies") and "429" in d]
    assert night.budget.usage()["lusha"]["reserved"] == 0
    assert {r["source"] for r in stored_contacts(db, tenant)} == {"site"}
    assert report.primary_contacts == len(companies)


class VirtualClock:
    """Lusha's rate windows run on this clock, and the client's backoff sleeps advance it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def test_a_tight_per_minute_limit_is_waited_out_using_lushas_reset_times(db: Database, tenant: int) -> None:
    # 60 companies take three chunks: at least three requests against a limit of one a minute.
    companies = add_companies(db, 60)
    clock = VirtualClock()
    with lusha_server(per_minute=1, clock=clock) as server:
        report = run_stage(server, companies, new_night(db, tenant), client_options={"sleep": clock.sleep})
        stats = server.stats()

    assert stats["rate_limited"] > 0
    assert report.degradations == []
    assert len({r["company_id"] for r in stored_contacts(db, tenant) if r["source"] == "lusha"}) == 60
    assert report.lusha_contacts_enriched == stats["contacts_enriched"]


class CountingTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that remembers the most requests it ever had on the wire."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.active = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_at_most_five_calls_are_in_flight(db: Database, tenant: int) -> None:
    companies = add_companies(db, 8 * DOMAINS_PER_SEARCH)
    transport = CountingTransport()
    with lusha_server(latency=LatencyModel(median_s=0.02, sigma=0.0, scale=1.0)) as server:
        report = run_stage(server, companies, new_night(db, tenant), client_options={"transport": transport},
                           concurrency=8 * DOMAINS_PER_SEARCH)

    assert report.lusha_searches >= 8, "eight chunks of companies, searched together"
    assert 1 < transport.peak <= MAX_IN_FLIGHT


def test_company_concurrency_of_one_keeps_one_lusha_request_in_flight(db: Database, tenant: int) -> None:
    companies = add_companies(db, 2 * DOMAINS_PER_SEARCH)
    transport = CountingTransport()
    night = dataclasses.replace(new_night(db, tenant), settings=load_settings({"SCHED_COMPANY_CONCURRENCY": "1"}))
    with lusha_server(latency=LatencyModel(median_s=0.02, sigma=0.0, scale=1.0)) as server:
        records = [as_record(company) for company in companies]

        async def run() -> ContactsReport:
            async with LushaClient(KEY, base_url=server.url, transport=transport) as client:
                return await find_contacts(records, night, client, preferred_titles=PREFERRED)

        report = asyncio.run(run())
        stats = server.stats()

    assert report.lusha_searches >= 2 and stats["requests"] >= 4
    assert transport.peak == 1, "one request at a time: each chunk's search pages, then the enrich calls"


def test_without_a_key_or_when_disabled_companies_keep_site_contacts(db: Database, tenant: int) -> None:
    companies = add_companies(db, 3)
    report = run_stage(None, companies, new_night(db, tenant))
    assert report.degradations == [
        "no LUSHA_API_KEY: 3 companies without a personal site contact kept site contacts only"]
    assert report.primary_contacts == 3 and report.site_contacts == 3

    with lusha_server() as server:
        disabled = run_stage(server, companies, new_night(db, tenant), enabled=False)
        assert server.stats()["requests"] == 0
    assert disabled.degradations[0].startswith("Lusha fallback disabled")
    assert {r["source"] for r in stored_contacts(db, tenant)} == {"site"}


def test_a_refused_key_stops_lusha_without_naming_the_key(db: Database, tenant: int) -> None:
    companies = add_companies(db, 4)
    secret = "not-the-right-secret-key"
    with lusha_server() as server:
        report = run_stage(server, companies, new_night(db, tenant), key=secret)
        stats = server.stats()

    [stopped] = [d for d in report.degradations if d.startswith("Lusha stopped")]
    assert "401" in stopped and secret not in stopped
    assert stats["unauthorized"] <= 4
    assert all(secret not in row["status"] for row in ledger(db, tenant))
    assert report.site_contacts == 4 and report.lusha_contacts == 0


def test_only_the_companys_own_people_make_lusha_unnecessary(db: Database, tenant: int) -> None:
    staffed, agency_credit, no_site = add_companies(db, 3)
    staffed["signals"]["emails"].append({"email": "jia.hui@firm0.com.sg", "kind": "personal",
                                         "on_company_domain": True, "free_mail": False, "source": "text"})
    agency_credit["signals"]["emails"].append({"email": "john.lee@webagency.sg", "kind": "personal",
                                               "on_company_domain": False, "free_mail": False, "source": "text"})
    no_site.update(website_domain=None, signals={})
    with lusha_server() as server:
        report = run_stage(server, [staffed, agency_credit, no_site], new_night(db, tenant))
        searched = server.stats()["calls_by_endpoint"][SEARCH]

    assert (report.companies_with_site_personal, report.companies_needing_lusha) == (1, 2)
    assert searched == 1 and report.companies_without_domain == 1
    assert report.degradations == [
        "1 companies without a personal site contact have no web domain to look up in Lusha"]
    primaries = {r["company_id"]: r for r in stored_contacts(db, tenant) if r["is_primary"]}
    assert (primaries[staffed["company_id"]]["email"], primaries[staffed["company_id"]]["full_name"]) == (
        "jia.hui@firm0.com.sg", "Jia Hui")
    assert primaries[agency_credit["company_id"]]["source"] == "lusha"
    assert no_site["company_id"] not in primaries


def test_once_the_cap_is_spent_companies_are_not_even_searched(db: Database, tenant: int) -> None:
    companies = add_companies(db, 5)
    with lusha_server() as server:
        report = run_stage(server, companies, new_night(db, tenant), max_lookups=0, concurrency=1)
        calls = server.stats()["calls_by_endpoint"]
    assert calls == {}
    assert report.companies_skipped_for_cap == 5 and report.cap_reached
