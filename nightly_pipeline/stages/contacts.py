"""The contacts stage: site contacts for every company, Lusha for those whose site names no person,
and a primary contact per company.

Lusha, per company without a personal site contact and with a web domain:

1. A lookup of the domain stored within ``cache_days`` is served from ``lusha_lookups``: no call.
2. Otherwise a prospecting search (free) by domain and name variants, filtered by the preferred
   titles; when nobody matches, a second search without the title filter ranks by seniority.
3. The best ``ids_per_company`` hits (preferred title order, then seniority) are enriched, except
   contacts a previous lookup already revealed: a contact is never paid for twice.

``LUSHA_MAX_CONTACT_LOOKUPS`` counts **contacts enriched** (what Lusha bills), not calls: each enrich
call takes the paid-call path, reserving one unit per contact id in the run's ledger (an atomic
reservation, trimmed to what is left) and settling what Lusha revealed. Once the cap is reached the
remaining companies go without, and the report says how many. A key, plan or credit refusal, a 429 that outlasts the
client's retries stops Lusha for the rest of the run: the run keeps its site contacts. A call lost to
an outage costs only its company the lookup; the other companies still get theirs.
Without a Lusha client (no key, fallback switched off) the run keeps its site contacts too, and the
report names the reason.
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

from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db.enrichment import RunRecord
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
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors import lusha as lusha_vendor
from nightly_pipeline.vendors.lusha import (
    EnrichResult,
    LushaClient,
    LushaError,
    LushaRequestError,
    LushaUnavailable,
    NullLushaClient,
    SearchHit,
    SearchResult,
)
from nightly_pipeline.vendors.paid_call import VendorMeter, unavailable_reason

SEARCH_ENDPOINT = lusha_vendor.SEARCH_PATH
ENRICH_ENDPOINT = lusha_vendor.ENRICH_PATH
DEFAULT_IDS_PER_COMPANY = 3
DEFAULT_CACHE_DAYS = 30
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


def _union_by_contact_id(*groups: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    for person in (p for group in groups for p in group):
        people[str(person.get("contact_id"))] = dict(person)
    return list(people.values())


class _LushaFallback:
    """Lusha lookups for one tenant night, with the run's cap, cache and stop switch."""

    def __init__(self, client: LushaClient, night: TenantNight, *, preferred_titles: Sequence[str],
                 cache_age: dt.timedelta, ids_per_company: int) -> None:
        self.client = client
        self.night = night
        self.meter: VendorMeter = night.meter("lusha")
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
        if not new_ids:
            people = _union_by_contact_id(known)
            await asyncio.to_thread(self._store_lookup, domain, search.request_id, people, 0)
            return people
        enriched = await self._enrich(domain, search.request_id, new_ids, known)
        return known if enriched is None else _people_after(known, enriched)

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
            await self.meter.record_free(SEARCH_ENDPOINT, lusha_vendor.failed_status(error), started)
            self._failed(error)
            return None
        await self.meter.record_free(SEARCH_ENDPOINT, lusha_vendor.ok_status(result.attempts), started)
        return result

    async def _enrich(self, domain: str, request_id: str, contact_ids: list[str],
                      known: list[dict[str, Any]]) -> EnrichResult | None:
        """The paid call: as many of ``contact_ids`` as the cap has left, the lookup cached after it."""
        if self.stop_reason is not None:
            self.counters["skipped_after_stop"] += 1
            return None

        async def send(units: int) -> Any:
            self.counters["enrich_calls"] += 1
            return lusha_vendor.enrich_answer(await self.client.enrich(request_id, contact_ids[:units]))

        def store(result: EnrichResult, credits: int) -> None:
            self._store_lookup(domain, request_id, _people_after(known, result), credits)

        paid = await self.meter.call(ENRICH_ENDPOINT, len(contact_ids), send,
                                     billed_for_error=lusha_vendor.billed_for_error, errors=(LushaError,),
                                     store=store, partial=True)
        if paid.exhausted is not None:
            self.cap_exhausted = True
            self.counters["skipped_for_cap"] += 1
            return None
        if paid.error is not None:
            self._failed(paid.error)
            return None
        self.counters["contacts_enriched"] += paid.charged
        return paid.value

    def _failed(self, error: Exception) -> None:
        # A call that failed on its own (a bad request, or an outage that outlasted the client's
        # attempts) costs that company its lookup, not the rest of the night's companies theirs;
        # a refused account or a rate limit that outlasted the retries stops Lusha for the run.
        if isinstance(error, (LushaRequestError, LushaUnavailable)):
            self.request_failures.append(str(error))
        elif self.stop_reason is None:
            self.stop_reason = str(error)

    # -- storage -----------------------------------------------------------------------------
    def _stored_lookup(self, domain: str) -> contacts_db.LushaLookup | None:
        with self.night.transaction() as conn:
            return contacts_db.get_lusha_lookup(conn, domain, self.cache_age)

    def _store_lookup(self, domain: str, request_id: str, people: list[dict[str, Any]], credits: int) -> None:
        with self.night.transaction() as conn:
            contacts_db.put_lusha_lookup(conn, domain, request_id, people, credits)


def _people_after(known: list[dict[str, Any]], enriched: EnrichResult) -> list[dict[str, Any]]:
    return _union_by_contact_id(known, [contact.to_dict() for contact in enriched.contacts])


def _store_contacts(night: TenantNight, contacts: list[Contact]) -> list[Contact]:
    with night.transaction() as conn:
        return contacts_db.upsert_contacts(conn, contacts)


async def _company_contacts(record: RunRecord, fallback: _LushaFallback | None, night: TenantNight) -> _CompanyOutcome:
    signals = record.signals or {}
    domain = company_domain(record, signals)
    site = contacts_from_signals(record, signals)
    has_site_personal = any(contact.is_company_person for contact in site)
    people = await fallback.people(record, domain) if fallback and domain and not has_site_personal else []
    lusha = [c for person in people if (c := contact_from_lusha(record.company_id, domain, person)) is not None]
    stored = await asyncio.to_thread(_store_contacts, night, site + lusha)
    return _CompanyOutcome(record.company_id, domain, len(site), len(lusha), has_site_personal, stored)


def assign_primary_contacts(night: TenantNight, company_ids: Iterable[int],
                            preferred_titles: Sequence[str]) -> dict[int, str | None]:
    """Choose and flag each company's primary contact with the verdicts cached so far.

    Run again after verification: an address found suppressed then loses its flag.
    """
    ids = sorted(set(company_ids))
    with night.transaction() as conn:
        contacts = contacts_db.contacts_of_companies(conn, ids)
        emails = [contact.email for group in contacts.values() for contact in group]
        verdicts = contacts_db.cached_verifications(conn, emails, fresh_only=False)
        policies = {email: verdict.policy for email, verdict in verdicts.items()}
        chosen = {}
        for company_id in ids:
            primary = choose_primary(contacts.get(company_id, []), preferred_titles, policies)
            chosen[company_id] = primary.email if primary is not None else None
        contacts_db.set_primary_contacts(conn, chosen)
    return chosen


def _degradations(report: ContactsReport, *, unavailable: str | None, fallback: _LushaFallback | None,
                  cap: int) -> list[str]:
    needing = report.companies_needing_lusha
    notes = []
    if needing and unavailable is not None:
        notes.append(f"{unavailable}: {needing} companies without a personal site contact kept site contacts only")
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


async def find_contacts(records: Iterable[RunRecord], night: TenantNight, lusha: LushaClient | NullLushaClient, *,
                        preferred_titles: Sequence[str], cache_days: float = DEFAULT_CACHE_DAYS,
                        ids_per_company: int = DEFAULT_IDS_PER_COMPANY,
                        concurrency: int | None = None) -> ContactsReport:
    """Contacts for each company the crawl stage recorded tonight, upserted into ``contacts`` with
    primaries flagged. ``lusha`` must be open on the running event loop (``async with lusha:``).

    Vendor trouble never raises: it is returned in ``ContactsReport.degradations`` with its cause.
    ``concurrency`` (companies in flight) defaults to the night's SCHED_COMPANY_CONCURRENCY.
    """
    concurrency = night.settings.sched_company_concurrency if concurrency is None else concurrency
    if ids_per_company < 1 or concurrency < 1:
        raise ValueError("ids_per_company and concurrency must be >= 1")
    fallback = None
    if isinstance(lusha, LushaClient):
        night.share_limits("lusha", lusha)
        fallback = _LushaFallback(lusha, night, preferred_titles=preferred_titles,
                                  cache_age=dt.timedelta(days=cache_days), ids_per_company=ids_per_company)
    gate = asyncio.Semaphore(concurrency)

    async def one(record: RunRecord) -> _CompanyOutcome:
        async with gate:
            return await _company_contacts(record, fallback, night)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(record)) for record in records]
    outcomes = [task.result() for task in tasks]
    report = _report(outcomes, fallback)
    primaries = await asyncio.to_thread(assign_primary_contacts, night, [o.company_id for o in outcomes],
                                        preferred_titles)
    report.primary_contacts = sum(1 for email in primaries.values() if email is not None)
    report.degradations = _degradations(report, unavailable=unavailable_reason(lusha), fallback=fallback,
                                        cap=night.settings.lusha_max_contact_lookups)
    return report
