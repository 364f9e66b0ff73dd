"""The contacts stage: site contacts for every company, Lusha for those whose site names no person,
and a primary contact per company.

Lusha, per company without a personal site contact and with a web domain:

1. A lookup of the domain stored within ``cache_days`` is served from ``lusha_lookups``: no call.
2. Otherwise a prospecting search (free) by domain and name variants, filtered by the preferred
   titles; when nobody matches, a second search without the title filter ranks by seniority.
3. The best ``ids_per_company`` hits (preferred title order, then seniority) are enriched, except
   contacts a previous lookup already revealed: a contact is never paid for twice.

``LUSHA_MAX_CONTACT_LOOKUPS`` counts **contacts enriched** (what Lusha bills), not calls: each enrich
call first reserves one unit per contact id in the run's ledger (an atomic reservation, trimmed to
what is left), and settles what Lusha revealed. Once the cap is reached the remaining companies go
without, and the report says how many. A key, plan or credit refusal, a 429 that outlasts the
client's retries, or an outage stops Lusha for the rest of the run: the run keeps its site contacts.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nightly_pipeline.db import Database
from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db.budget import BudgetExhausted, Reservation, Scope, VendorBudget
from nightly_pipeline.domain.acra import core_name
from nightly_pipeline.domain.contacts import (
    Contact,
    choose_primary,
    classify_title,
    company_domain,
    contact_from_lusha,
    contacts_from_signals,
    preferred_title_rank,
)
from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.enrich.lusha_client import (
    EnrichResult,
    LushaClient,
    LushaError,
    LushaRequestError,
    LushaUnavailable,
    SearchHit,
    SearchResult,
)

VENDOR = "lusha"
SEARCH_ENDPOINT = "/prospecting/contact/search"
ENRICH_ENDPOINT = "/prospecting/contact/enrich"
DEFAULT_IDS_PER_COMPANY = 3
DEFAULT_CACHE_DAYS = 30
# Companies handled at once; the Lusha client separately keeps at most five calls on the wire.
DEFAULT_COMPANY_CONCURRENCY = 16
_NON_ALNUM = re.compile(r"[^a-z0-9]")


@dataclasses.dataclass
class ContactsReport:
    """What the stage did, for ``enrichment_runs`` (``to_dict``) and the run's metadata."""

    companies: int = 0
    companies_with_site_personal: int = 0
    companies_needing_lusha: int = 0
    companies_without_domain: int = 0
    companies_without_contacts: int = 0
    site_contacts: int = 0
    lusha_contacts: int = 0
    contacts_by_source: dict[str, int] = dataclasses.field(default_factory=dict)
    lusha_searches: int = 0
    lusha_enrich_calls: int = 0
    lusha_contacts_enriched: int = 0
    lusha_cache_hits: int = 0
    lusha_already_revealed: int = 0
    cap_reached: bool = False
    companies_skipped_for_cap: int = 0
    companies_skipped_after_stop: int = 0
    primary_contacts: int = 0
    emails: list[str] = dataclasses.field(default_factory=list)
    degradations: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Counters and degradations; the address list stays out of run records."""
        data = dataclasses.asdict(self)
        data.pop("emails")
        return data


@dataclasses.dataclass(frozen=True)
class _CompanyOutcome:
    company_id: int
    domain: str | None
    site_contacts: int
    lusha_contacts: int
    has_site_personal: bool
    stored: list[Contact]


def _name_key(name: str | None) -> str:
    return _NON_ALNUM.sub("", core_name(name or "").lower())


def name_variants(company: Mapping[str, Any]) -> list[str]:
    """The company's names without their legal form ("Pte. Ltd."), one per distinct spelling."""
    variants: dict[str, str] = {}
    for field in ("name", "legal_name"):
        value = company.get(field)
        if isinstance(value, str) and value.strip():
            variants.setdefault(_name_key(value), core_name(value))
    return [name for key, name in variants.items() if key]


def _belongs_to(hit: SearchHit, domain: str, name_keys: set[str]) -> bool:
    # Name filters can match a namesake company: trust a hit by its domain, by its name only without one.
    if hit.fqdn:
        return registrable_domain(hit.fqdn) == domain
    return _name_key(hit.company_name) in name_keys


def rank_hits(hits: Iterable[SearchHit], *, domain: str, names: Sequence[str], preferred_titles: Sequence[str],
              limit: int) -> list[SearchHit]:
    """The company's own contacts with a work email, best first: preferred title order, then seniority."""
    name_keys = {_name_key(name) for name in names}
    own = [h for h in hits if h.has_work_email and _belongs_to(h, domain, name_keys)]
    own.sort(key=lambda h: (preferred_title_rank(h.job_title, preferred_titles), -classify_title(h.job_title),
                            h.contact_id))
    return own[:limit]


def _ok_status(attempts: int) -> str:
    return "ok" if attempts <= 1 else f"ok after {attempts} attempts"


def _failed_status(error: LushaError) -> str:
    code = f" {error.status}" if error.status else ""
    return f"error{code}: {type(error).__name__} after {error.attempts} attempt(s)"


def _maybe_billed(error: LushaError) -> bool:
    # A connection lost after the request went out may have been processed: assume it was billed,
    # so the ledger may overstate spend but never understate it.
    return isinstance(error, LushaUnavailable) and error.sent and error.status is None


def _union_by_contact_id(*groups: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    for person in (p for group in groups for p in group):
        people[str(person.get("contact_id"))] = dict(person)
    return list(people.values())


class _LushaFallback:
    """Lusha lookups for one tenant run, with the run's cap, cache and stop switch."""

    def __init__(self, client: LushaClient, budget: VendorBudget, db: Database, tenant_id: int, *,
                 max_lookups: int, preferred_titles: Sequence[str], cache_age: dt.timedelta,
                 ids_per_company: int) -> None:
        self.client = client
        self.budget = budget
        self.db = db
        self.tenant_id = tenant_id
        self.max_lookups = max_lookups
        self.preferred_titles = list(preferred_titles)
        self.cache_age = cache_age
        self.ids_per_company = ids_per_company
        self.stop_reason: str | None = None
        self.cap_exhausted = False
        self.request_failures: list[str] = []
        self.counters: Counter[str] = Counter()

    async def people(self, company: Mapping[str, Any], domain: str) -> list[dict[str, Any]]:
        """Enriched people of ``domain`` (``EnrichedContact.to_dict()`` shape), from the cache or Lusha."""
        stored = await asyncio.to_thread(self._stored_lookup, domain)
        if stored is not None and stored.is_fresh:
            self.counters["cache_hits"] += 1
            return stored.contacts
        known = stored.contacts if stored is not None else []
        if self.stop_reason is not None:
            self.counters["skipped_after_stop"] += 1
            return known
        if self.cap_exhausted:
            # Searches are free but count against Lusha's rate limits: none once nothing can be enriched.
            self.counters["skipped_for_cap"] += 1
            return known
        names = name_variants(company)
        found = await self._search(domain, names)
        if found is None:
            return known
        search, best = found
        revealed_ids = {str(p.get("contact_id")) for p in known}
        new_ids = [hit.contact_id for hit in best if hit.contact_id not in revealed_ids]
        self.counters["already_revealed"] += len(best) - len(new_ids)
        revealed: list[dict[str, Any]] = []
        credits = 0
        if new_ids:
            enriched = await self._enrich(search.request_id, new_ids)
            if enriched is None:
                return known
            revealed = [contact.to_dict() for contact in enriched.contacts]
            credits = enriched.contacts_enriched
        people = _union_by_contact_id(known, revealed)
        await asyncio.to_thread(self._store_lookup, domain, search.request_id, people, credits)
        return people

    # -- calls -------------------------------------------------------------------------------
    async def _search(self, domain: str, names: Sequence[str]) -> tuple[SearchResult, list[SearchHit]] | None:
        """A search filtered by the preferred titles, then one without them when nobody matched."""
        if self.preferred_titles:
            result = await self._search_once(domain, names, self.preferred_titles)
            if result is None:
                return None
            best = self._best(result, domain, names)
            if best:
                return result, best
        result = await self._search_once(domain, names, [])
        return (result, self._best(result, domain, names)) if result is not None else None

    def _best(self, result: SearchResult, domain: str, names: Sequence[str]) -> list[SearchHit]:
        return rank_hits(result.hits, domain=domain, names=names, preferred_titles=self.preferred_titles,
                         limit=self.ids_per_company)

    async def _search_once(self, domain: str, names: Sequence[str], titles: Sequence[str]) -> SearchResult | None:
        started = time.monotonic()
        self.counters["searches"] += 1
        try:
            result = await self.client.search_contacts(domain, names, titles)
        except LushaError as error:
            await self._record_free(_failed_status(error), started)
            self._failed(error)
            return None
        await self._record_free(_ok_status(result.attempts), started)
        return result

    async def _enrich(self, request_id: str, contact_ids: list[str]) -> EnrichResult | None:
        if self.stop_reason is not None:
            self.counters["skipped_after_stop"] += 1
            return None
        reservation = await self._reserve(len(contact_ids))
        if reservation is None:
            self.counters["skipped_for_cap"] += 1
            return None
        started = time.monotonic()
        # Until an answer proves otherwise (say the task is cancelled mid-call), assume Lusha billed
        # every reserved contact: the ledger may overstate spend, never understate it.
        charged, status = reservation.units, "cancelled"
        self.counters["enrich_calls"] += 1
        try:
            result = await self.client.enrich(request_id, contact_ids[:reservation.units])
            charged, status = result.contacts_enriched, _ok_status(result.attempts)
            self.counters["contacts_enriched"] += charged
            return result
        except LushaError as error:
            charged = reservation.units if _maybe_billed(error) else 0
            status = _failed_status(error)
            self._failed(error)
            return None
        finally:
            latency_ms = int((time.monotonic() - started) * 1000)
            await asyncio.shield(asyncio.to_thread(self.budget.settle, reservation, charged=charged, status=status,
                                                   latency_ms=latency_ms))

    async def _reserve(self, units: int) -> Reservation | None:
        """Hold ``units`` contacts of the cap, or as many as are left; None when none are."""
        while units > 0:
            try:
                return await asyncio.to_thread(self.budget.reserve, VENDOR, ENRICH_ENDPOINT, units,
                                               self.max_lookups, Scope.RUN)
            except BudgetExhausted as exhausted:
                units = min(units - 1, exhausted.remaining)
        self.cap_exhausted = True
        return None

    def _failed(self, error: LushaError) -> None:
        if isinstance(error, LushaRequestError):
            self.request_failures.append(str(error))
        elif self.stop_reason is None:
            self.stop_reason = str(error)

    # -- storage -----------------------------------------------------------------------------
    async def _record_free(self, status: str, started: float) -> None:
        latency_ms = int((time.monotonic() - started) * 1000)
        await asyncio.to_thread(self.budget.record_free, VENDOR, SEARCH_ENDPOINT, status, latency_ms)

    def _stored_lookup(self, domain: str) -> contacts_db.LushaLookup | None:
        with self.db.tenant(self.tenant_id) as conn:
            return contacts_db.get_lusha_lookup(conn, self.tenant_id, domain, self.cache_age)

    def _store_lookup(self, domain: str, request_id: str, people: list[dict[str, Any]], credits: int) -> None:
        with self.db.tenant(self.tenant_id) as conn:
            contacts_db.put_lusha_lookup(conn, self.tenant_id, domain, request_id, people, credits)


def _store_contacts(db: Database, tenant_id: int, contacts: list[Contact]) -> list[Contact]:
    with db.tenant(tenant_id) as conn:
        return contacts_db.upsert_contacts(conn, tenant_id, contacts)


async def _company_contacts(company: Mapping[str, Any], fallback: _LushaFallback | None, db: Database,
                            tenant_id: int) -> _CompanyOutcome:
    company_id = int(company["company_id"])
    signals = company.get("signals") or {}
    domain = company_domain(company, signals)
    site = contacts_from_signals(company, signals)
    has_site_personal = any(contact.is_company_person for contact in site)
    people = await fallback.people(company, domain) if fallback and domain and not has_site_personal else []
    lusha = [c for person in people if (c := contact_from_lusha(company_id, domain, person)) is not None]
    stored = await asyncio.to_thread(_store_contacts, db, tenant_id, site + lusha)
    return _CompanyOutcome(company_id, domain, len(site), len(lusha), has_site_personal, stored)


def assign_primary_contacts(db: Database, tenant_id: int, company_ids: Iterable[int],
                            preferred_titles: Sequence[str]) -> dict[int, str | None]:
    """Choose and flag each company's primary contact with the verdicts cached so far.

    Run again after verification: an address found suppressed then loses its flag.
    """
    ids = sorted(set(company_ids))
    with db.tenant(tenant_id) as conn:
        contacts = contacts_db.contacts_of_companies(conn, tenant_id, ids)
        emails = [contact.email for group in contacts.values() for contact in group]
        verdicts = contacts_db.cached_verifications(conn, tenant_id, emails, fresh_only=False)
        policies = {email: verdict.policy for email, verdict in verdicts.items()}
        chosen = {}
        for company_id in ids:
            primary = choose_primary(contacts.get(company_id, []), preferred_titles, policies)
            chosen[company_id] = primary.email if primary is not None else None
        contacts_db.set_primary_contacts(conn, tenant_id, chosen)
    return chosen


def _degradations(report: ContactsReport, *, lusha: LushaClient | None, enabled: bool,
                  fallback: _LushaFallback | None, cap: int) -> list[str]:
    needing = report.companies_needing_lusha
    notes = []
    if needing and not enabled:
        notes.append(f"Lusha fallback disabled (ENABLE_LUSHA_FALLBACK): {needing} companies without a personal "
                     f"site contact kept site contacts only")
    elif needing and lusha is None:
        notes.append(f"no LUSHA_API_KEY: {needing} companies without a personal site contact kept site contacts "
                     f"only")
    if fallback is None:
        return notes
    if report.cap_reached:
        notes.append(f"Lusha contact lookup cap reached ({cap} contacts enriched per run): "
                     f"{report.companies_skipped_for_cap} companies went without a Lusha lookup")
    if fallback.stop_reason is not None:
        notes.append(f"Lusha stopped for this run after {fallback.stop_reason}: "
                     f"{report.companies_skipped_after_stop} more companies went without a Lusha lookup")
    if report.companies_without_domain:
        notes.append(f"{report.companies_without_domain} companies without a personal site contact have no web "
                     f"domain to look up in Lusha")
    if fallback.request_failures:
        notes.append(f"Lusha lookup failed for {len(fallback.request_failures)} companies, first: "
                     f"{fallback.request_failures[0]}")
    return notes


def _report(outcomes: Sequence[_CompanyOutcome], fallback: _LushaFallback | None) -> ContactsReport:
    counters = fallback.counters if fallback is not None else Counter()
    return ContactsReport(
        companies=len(outcomes),
        companies_with_site_personal=sum(o.has_site_personal for o in outcomes),
        companies_needing_lusha=sum(not o.has_site_personal for o in outcomes),
        companies_without_domain=sum(not o.has_site_personal and o.domain is None for o in outcomes),
        companies_without_contacts=sum(not o.stored for o in outcomes),
        site_contacts=sum(o.site_contacts for o in outcomes),
        lusha_contacts=sum(o.lusha_contacts for o in outcomes),
        contacts_by_source=dict(Counter(c.source for o in outcomes for c in o.stored)),
        lusha_searches=counters["searches"],
        lusha_enrich_calls=counters["enrich_calls"],
        lusha_contacts_enriched=counters["contacts_enriched"],
        lusha_cache_hits=counters["cache_hits"],
        lusha_already_revealed=counters["already_revealed"],
        cap_reached=counters["skipped_for_cap"] > 0,
        companies_skipped_for_cap=counters["skipped_for_cap"],
        companies_skipped_after_stop=counters["skipped_after_stop"],
        emails=sorted({c.email for o in outcomes for c in o.stored}),
    )


async def find_contacts(companies_with_signals: Iterable[Mapping[str, Any]], *, lusha: LushaClient | None,
                        budget: VendorBudget, db: Database, tenant_id: int, max_lookups: int,
                        preferred_titles: Sequence[str], enabled: bool = True,
                        cache_days: float = DEFAULT_CACHE_DAYS, ids_per_company: int = DEFAULT_IDS_PER_COMPANY,
                        concurrency: int = DEFAULT_COMPANY_CONCURRENCY) -> ContactsReport:
    """Contacts for each company (rows as ``db.enrichment.run_records`` returns them: ``company_id``,
    ``name``, ``website_domain``, ``signals``), upserted into ``contacts`` with primaries flagged.

    Vendor trouble never raises: it is returned in ``ContactsReport.degradations`` with its cause.
    """
    if ids_per_company < 1 or concurrency < 1:
        raise ValueError("ids_per_company and concurrency must be >= 1")
    companies = list(companies_with_signals)
    fallback = None
    if enabled and lusha is not None:
        fallback = _LushaFallback(lusha, budget, db, tenant_id, max_lookups=max_lookups,
                                  preferred_titles=preferred_titles, cache_age=dt.timedelta(days=cache_days),
                                  ids_per_company=ids_per_company)
    gate = asyncio.Semaphore(concurrency)

    async def one(company: Mapping[str, Any]) -> _CompanyOutcome:
        async with gate:
            return await _company_contacts(company, fallback, db, tenant_id)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(company)) for company in companies]
    outcomes = [task.result() for task in tasks]
    report = _report(outcomes, fallback)
    primaries = await asyncio.to_thread(assign_primary_contacts, db, tenant_id, [o.company_id for o in outcomes],
                                        preferred_titles)
    report.primary_contacts = sum(1 for email in primaries.values() if email is not None)
    report.degradations = _degradations(report, lusha=lusha, enabled=enabled, fallback=fallback, cap=max_lookups)
    return report
