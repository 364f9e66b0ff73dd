"""The contacts stage: site contacts for every company, Lusha for those whose site names no person,
and a primary contact per company.

Lusha, for the companies without a personal site contact and with a web domain, batched across them
(Lusha's key limits count requests, so one request serves many companies):

1. A lookup of the domain stored within ``cache_days`` is served from ``lusha_lookups``: no call.
2. Otherwise a prospecting search (free) filtered by up to ``DOMAINS_PER_SEARCH`` domains and their
   companies' name variants, and by the preferred titles, read page after page; every hit goes to its
   company by its domain (by its company name when Lusha gives none). The companies nobody matched
   are searched again, in chunks of their own, without the title filter, ranked by seniority.
3. The best ``ids_per_company`` hits of each company (preferred title order, then seniority) are
   enriched, except contacts a previous lookup already revealed: a contact is never paid for twice.
   An enrich call takes up to ``MAX_ENRICH_IDS`` ids of one search request, across companies.

``LUSHA_MAX_CONTACT_LOOKUPS`` counts **contacts enriched** (what Lusha bills), not calls: each enrich
call takes the paid-call path, reserving one unit per contact id in the run's ledger (an atomic
reservation, trimmed to what is left) and settling what Lusha revealed. The cap is spent in a fair
order: each company's best candidate first, companies in target order, then each one's second, and so
on; companies the cap cannot reach are not searched, and the report says how many went without. A key,
plan or credit refusal stops Lusha for the rest of the run: the run keeps its site contacts. A call
lost to an outage, or to a 429 that outlasts the client's retries, costs only the companies in it their
lookup (reported, and looked up again by the next run); the other chunks still go.
Without a Lusha client (no key, fallback switched off) the run keeps its site contacts too, and the
report names the reason.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from nightly_pipeline.db import contacts as contacts_db
from nightly_pipeline.db.enrichment import RunRecord
from nightly_pipeline.domain.acra import core_name
from nightly_pipeline.domain.contacts import (
    Contact,
    batches_by_key,
    choose_primary,
    classify_title,
    company_domain,
    contact_from_lusha,
    contacts_from_signals,
    fair_order,
    preferred_title_rank,
)
from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors import lusha as lusha_vendor
from nightly_pipeline.vendors.lusha import (
    LushaAccountError,
    LushaClient,
    LushaError,
    NullLushaClient,
    SearchHit,
    SearchResult,
)
from nightly_pipeline.vendors.paid_call import VendorMeter, unavailable_reason

SEARCH_ENDPOINT = lusha_vendor.SEARCH_PATH
ENRICH_ENDPOINT = lusha_vendor.ENRICH_PATH
DEFAULT_IDS_PER_COMPANY = 3
# Company domains per search request. A page holds at most MAX_PAGE_SIZE (50) hits and a company has
# one to three people under the usual preferred titles, so 25 domains fill about one page: fewer
# domains spend requests on half-empty pages, more add pages that are read one after another (a chunk
# takes longer) and put more companies on one request (a lost request leaves them all for the next run).
DOMAINS_PER_SEARCH = 25
# The hits of one company a search reads at most: what a search of that company alone read (one page
# of 25). It bounds a chunk's pages to what its companies' searches one by one would have cost, where a
# company with hundreds of people in Lusha would otherwise drag a search through many pages.
HITS_PER_COMPANY = 25
DEFAULT_CACHE_DAYS = 30
_NON_ALNUM = re.compile(r"[^a-z0-9]")
K = TypeVar("K")


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


def name_key(name: str | None) -> str:
    """A company name reduced to its letters and digits, without its legal form."""
    return _NON_ALNUM.sub("", core_name(name or "").lower())


def name_variants(company: Mapping[str, Any]) -> list[str]:
    """The company's names without their legal form ("Pte. Ltd."), one per distinct spelling."""
    variants: dict[str, str] = {}
    for field in ("name", "legal_name"):
        value = company.get(field)
        if isinstance(value, str) and value.strip():
            variants.setdefault(name_key(value), core_name(value))
    return [name for key, name in variants.items() if key]


def _belongs_to(hit: SearchHit, domain: str, name_keys: set[str]) -> bool:
    # Name filters can match a namesake company: trust a hit by its domain, by its name only without one.
    if hit.fqdn:
        return registrable_domain(hit.fqdn) == domain
    return name_key(hit.company_name) in name_keys


def rank_hits(hits: Iterable[SearchHit], *, domain: str, names: Sequence[str], preferred_titles: Sequence[str],
              limit: int) -> list[SearchHit]:
    """The company's own contacts with a work email, best first: preferred title order, then seniority."""
    name_keys = {name_key(name) for name in names}
    own = [h for h in hits if h.has_work_email and _belongs_to(h, domain, name_keys)]
    own.sort(key=lambda h: (preferred_title_rank(h.job_title, preferred_titles), -classify_title(h.job_title),
                            h.contact_id))
    return own[:limit]


def _union_by_contact_id(*groups: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    for person in (p for group in groups for p in group):
        people[str(person.get("contact_id"))] = dict(person)
    return list(people.values())


@dataclasses.dataclass(eq=False)
class _Lookup:
    """One domain to look up in Lusha tonight, for every company of the night that has it."""

    domain: str
    names: list[str]
    companies: int
    known: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: list[SearchHit] = dataclasses.field(default_factory=list)
    request_of: dict[str, str] = dataclasses.field(default_factory=dict)  # contact id -> its search request
    new_ids: list[str] = dataclasses.field(default_factory=list)
    searched: bool = False
    # None while the lookup is on course; "failed", "stopped" or "cap" when it ends without one.
    ended: str | None = None
    enriched: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    credits: int = 0
    calls_pending: int = 0
    cut_short: bool = False
    refused_for_cap: bool = False
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def name_keys(self) -> set[str]:
        return {name_key(name) for name in self.names} - {""}

    @property
    def people(self) -> list[dict[str, Any]]:
        return _union_by_contact_id(self.known, self.enriched)

    @property
    def request_id(self) -> str | None:
        return next(iter(self.request_of.values()), None)


class _LushaFallback:
    """Lusha lookups for one tenant night, batched across companies, with the run's cap, cache and stop switch.

    Searches filter by up to ``DOMAINS_PER_SEARCH`` company domains at once and read every page; each hit
    goes back to its company by the hit's domain (``fqdn``), or by its company name when Lusha gives no
    domain. Enrich calls take up to ``MAX_ENRICH_IDS`` ids of one search request, across companies, in
    the order the cap is spent: each company's best candidate first (companies in target order), then
    each company's second, and so on.
    """

    def __init__(self, client: LushaClient, night: TenantNight, *, preferred_titles: Sequence[str],
                 cache_age: dt.timedelta, ids_per_company: int, chunks_in_flight: int) -> None:
        self.client = client
        self.night = night
        self.meter: VendorMeter = night.meter("lusha")
        self.preferred_titles = list(preferred_titles)
        self.cache_age = cache_age
        self.ids_per_company = ids_per_company
        self.chunks_in_flight = chunks_in_flight
        self.stop_reason: str | None = None
        self.cap_exhausted = False
        self.request_failures: list[str] = []
        self.counters: Counter[str] = Counter()

    async def people_by_domain(self, wanted: Sequence[tuple[str, Sequence[str]]]) -> dict[str, list[dict[str, Any]]]:
        """Enriched people (``EnrichedContact.to_dict()`` shape) of each domain of ``wanted`` (``(domain,
        company names)`` per company, in target order), from the cache or Lusha."""
        lookups: dict[str, _Lookup] = {}
        for domain, names in wanted:
            lookup = lookups.setdefault(domain, _Lookup(domain, [], 0))
            lookup.companies += 1
            lookup.names.extend(name for name in names if name not in lookup.names)
        stored = await asyncio.to_thread(self._stored_lookups, list(lookups))
        to_look_up = []
        for lookup in lookups.values():
            found = stored.get(lookup.domain)
            if found is not None and found.is_fresh:
                self.counters["cache_hits"] += lookup.companies
                lookup.known = found.contacts
            else:
                lookup.known = found.contacts if found is not None else []
                to_look_up.append(lookup)
        if to_look_up:
            await self._look_up(to_look_up)
        return {lookup.domain: lookup.people for lookup in lookups.values()}

    async def _look_up(self, lookups: list[_Lookup]) -> None:
        remaining = await self.meter.remaining()
        await self._search_all(lookups, remaining)
        picks = self._plan(lookups, await self.meter.remaining())
        for lookup in lookups:
            if lookup.ended is None and lookup.searched and not lookup.new_ids:
                # Nothing new to pay for: the lookup is complete as it is.
                await asyncio.to_thread(self._store_lookup, lookup.domain, lookup.request_id, lookup.people, 0)
        gate = asyncio.Semaphore(self.chunks_in_flight)

        async def one(request_id: str, batch: list[tuple[_Lookup, str]]) -> None:
            async with gate:
                await self._enrich(request_id, batch)

        batches = batches_by_key(((lookup.request_of[cid], (lookup, cid)) for lookup, cid in picks),
                                 lusha_vendor.MAX_ENRICH_IDS)
        for _, batch in batches:
            for lookup in dict.fromkeys(lookup for lookup, _ in batch):
                lookup.calls_pending += 1
        async with asyncio.TaskGroup() as group:
            for request_id, batch in batches:
                group.create_task(one(request_id, batch))
        for lookup in lookups:
            if lookup.ended == "stopped":
                self.counters["skipped_after_stop"] += lookup.companies
            elif lookup.ended == "cap":
                self.counters["skipped_for_cap"] += lookup.companies

    # -- searches ----------------------------------------------------------------------------
    async def _search_all(self, lookups: list[_Lookup], remaining: int) -> None:
        """Search the lookups in target order, chunk by chunk, until the cap could not serve another company;
        then the companies nobody matched under the preferred titles, pooled into chunks of their own,
        without the title filter (ranked by seniority).

        A company behind as many companies with a new candidate as the cap has units left would get
        nothing in the fair order, so it is not searched: searches are free but count against the key's
        request limits.
        """
        titles = self.preferred_titles
        with_candidates = 0  # companies searched to the end that have a new candidate
        unmatched: list[_Lookup] = []  # nobody under the titles, not yet searched without them
        chunks = _chunks(lookups, DOMAINS_PER_SEARCH)
        for first in range(0, len(chunks), self.chunks_in_flight):
            if self.stop_reason is not None or with_candidates >= remaining:
                _end((lookup for chunk in chunks[first:] for lookup in chunk),
                     "stopped" if self.stop_reason is not None else "cap")
                self.cap_exhausted = self.cap_exhausted or self.stop_reason is None
                break
            wave = chunks[first:first + self.chunks_in_flight]
            await self._search_chunks(wave, titles)
            for lookup in (lookup for chunk in wave for lookup in chunk if lookup.ended is None):
                if titles and not lookup.best:
                    unmatched.append(lookup)
                else:
                    with_candidates += bool(self._new_ids(lookup))
            if unmatched and with_candidates < remaining <= with_candidates + len(unmatched):
                # Whether the next chunk is needed depends on these: search them now, not pooled later.
                with_candidates += await self._search_without_titles(unmatched)
                unmatched = []
        if unmatched:
            await self._search_without_titles(unmatched)
        for lookup in lookups:
            if lookup.ended is None:
                lookup.new_ids = self._new_ids(lookup)

    async def _search_without_titles(self, lookups: list[_Lookup]) -> int:
        """Search ``lookups`` without the title filter (ranked by seniority); how many then have a new candidate."""
        chunks = _chunks(lookups, DOMAINS_PER_SEARCH)
        for first in range(0, len(chunks), self.chunks_in_flight):
            if self.stop_reason is not None:
                _end((lookup for chunk in chunks[first:] for lookup in chunk), "stopped")
                break
            await self._search_chunks(chunks[first:first + self.chunks_in_flight], [])
        return sum(bool(self._new_ids(lookup)) for lookup in lookups if lookup.ended is None)

    async def _search_chunks(self, chunks: list[list[_Lookup]], titles: Sequence[str]) -> None:
        async with asyncio.TaskGroup() as group:
            for chunk in chunks:
                group.create_task(self._search_chunk(chunk, titles))

    @staticmethod
    def _new_ids(lookup: _Lookup) -> list[str]:
        revealed = {str(person.get("contact_id")) for person in lookup.known}
        return [hit.contact_id for hit in lookup.best if hit.contact_id not in revealed]

    async def _search_chunk(self, chunk: list[_Lookup], titles: Sequence[str]) -> None:
        """One search over the chunk's domains, every page of it; each hit to the lookup it belongs to."""
        domains = [lookup.domain for lookup in chunk]
        names = list(dict.fromkeys(name for lookup in chunk for name in lookup.names))
        by_domain = {lookup.domain: lookup for lookup in chunk}
        by_name: dict[str, list[_Lookup]] = {}
        for lookup in chunk:
            for key in lookup.name_keys:
                by_name.setdefault(key, []).append(lookup)
        hits: dict[str, list[SearchHit]] = {domain: [] for domain in domains}
        request_of: dict[str, dict[str, str]] = {domain: {} for domain in domains}
        page, pages = 0, 1
        page_budget = max(1, math.ceil(len(chunk) * HITS_PER_COMPANY / lusha_vendor.MAX_PAGE_SIZE))
        while page < min(pages, page_budget):
            if self.stop_reason is not None:
                _end(chunk, "stopped")
                return
            try:
                result = await self._search_page(domains, names, titles, page)
            except LushaError as error:
                self._lost(chunk, self._failed(error), str(error))
                return
            for hit in result.hits:
                owner = hit_owner(hit, by_domain, by_name)
                if owner is not None:
                    hits[owner.domain].append(hit)
                    request_of[owner.domain].setdefault(hit.contact_id, result.request_id)
            pages = result.pages if result.hits else page + 1
            page += 1
            if all(len(found) >= HITS_PER_COMPANY for found in hits.values()):
                break
        unread = [lookup for lookup in chunk if not hits[lookup.domain]] if page < pages else []
        for lookup in chunk:
            if lookup in unread and len(unread) < len(chunk):
                continue
            lookup.searched = True
            lookup.best = rank_hits(hits[lookup.domain], domain=lookup.domain, names=lookup.names,
                                    preferred_titles=self.preferred_titles, limit=self.ids_per_company)
            lookup.request_of = request_of[lookup.domain]
        if unread and len(unread) < len(chunk):
            # The page budget ran out before these companies' hits came: they are searched on their own.
            await self._search_chunk(unread, titles)

    async def _search_page(self, domains: Sequence[str], names: Sequence[str], titles: Sequence[str],
                           page: int) -> SearchResult:
        started = time.monotonic()
        self.counters["searches"] += 1
        try:
            result = await self.client.search_contacts(domains, names, titles, page=page,
                                                       page_size=lusha_vendor.MAX_PAGE_SIZE)
        except LushaError as error:
            await self.meter.record_free(SEARCH_ENDPOINT, lusha_vendor.failed_status(error), started)
            raise
        await self.meter.record_free(SEARCH_ENDPOINT, lusha_vendor.ok_status(result.attempts), started)
        return result

    # -- enrich ------------------------------------------------------------------------------
    def _plan(self, lookups: list[_Lookup], remaining: int) -> list[tuple[_Lookup, str]]:
        """The contacts to enrich, in the order the cap is spent, trimmed to what it has left."""
        searched = [lookup for lookup in lookups if lookup.ended is None and lookup.searched]
        for lookup in searched:
            self.counters["already_revealed"] += len(lookup.best) - len(lookup.new_ids)
        ordered = fair_order([[(lookup, cid) for cid in lookup.new_ids] for lookup in searched])
        picks = ordered[:remaining]
        if len(picks) < len(ordered):
            self.cap_exhausted = True
        chosen = {lookup for lookup, _ in picks}
        for lookup in searched:
            if lookup.new_ids and lookup not in chosen:
                lookup.ended = "cap"
        return picks

    async def _enrich(self, request_id: str, batch: list[tuple[_Lookup, str]]) -> None:
        """The paid call for ``batch`` (ids of search ``request_id``): as many as the cap has left."""
        lookups = list(dict.fromkeys(lookup for lookup, _ in batch))
        if self.stop_reason is not None:
            await self._after_call(lookups, lost="stopped")
            return
        contact_ids = [cid for _, cid in batch]
        owner = {cid: lookup for lookup, cid in batch}

        async def send(units: int) -> Any:
            self.counters["enrich_calls"] += 1
            return lusha_vendor.enrich_answer(await self.client.enrich(request_id, contact_ids[:units]))

        paid = await self.meter.call(ENRICH_ENDPOINT, len(contact_ids), send,
                                     billed_for_error=lusha_vendor.billed_for_error, errors=(LushaError,),
                                     partial=True)
        if paid.exhausted is not None:
            self.cap_exhausted = True
            await self._after_call(lookups, refused_for_cap=True)
            return
        if paid.error is not None:
            await self._after_call(lookups, lost=self._failed(paid.error), error=str(paid.error))
            return
        self.counters["contacts_enriched"] += paid.charged
        for contact in paid.value.contacts if paid.value is not None else ():
            if (lookup := owner.get(contact.contact_id)) is not None:
                lookup.enriched.append(contact.to_dict())
                lookup.credits += 1
        # The reservation may have been trimmed (another call spent the cap meanwhile): the ids past it
        # were not sent.
        sent = list(dict.fromkeys(lookup for lookup, _ in batch[:paid.units]))
        unsent = [lookup for lookup in lookups if lookup not in sent]
        if unsent:
            self.cap_exhausted = True
            await self._after_call(unsent, refused_for_cap=True)
        await self._after_call(sent)

    async def _after_call(self, lookups: list[_Lookup], *, lost: str | None = None, error: str = "",
                          refused_for_cap: bool = False) -> None:
        """Store each lookup an enrich call touched, with the contacts paid for so far: complete after its
        last call, cut short (looked up again next run) when one of its calls was lost."""
        for lookup in lookups:
            async with lookup.lock:
                lookup.calls_pending -= 1
                finished = lookup.calls_pending == 0
                lookup.refused_for_cap = lookup.refused_for_cap or refused_for_cap
                if lost is not None:
                    lookup.cut_short = True
                    self._lost([lookup], lost, error)
                elif lookup.refused_for_cap and finished and not lookup.enriched:
                    _end([lookup], "cap")
                if not lookup.enriched and (not finished or lookup.ended is not None):
                    continue
                await asyncio.to_thread(self._store_lookup, lookup.domain, lookup.request_id, lookup.people,
                                        lookup.credits, finished and not lookup.cut_short)

    def _failed(self, error: LushaError) -> str:
        """How a failed call ends its lookups. One that failed on its own (a bad request, an outage or
        a rate limit that outlasted the client's attempts) costs the companies in it their lookup, not
        the rest of the night's companies theirs: the next calls wait their turn of the key and go. A
        refused key, plan or credit balance stops Lusha for the run."""
        if not isinstance(error, LushaAccountError):
            return "failed"
        if self.stop_reason is None:
            self.stop_reason = str(error)
        return "stopped"

    def _lost(self, lookups: Iterable[_Lookup], how: str, error: str) -> None:
        for lookup in lookups:
            if lookup.ended is None:
                lookup.ended = how
                if how == "failed":
                    self.request_failures.extend([error] * lookup.companies)

    # -- storage -----------------------------------------------------------------------------
    def _stored_lookups(self, domains: list[str]) -> dict[str, contacts_db.LushaLookup]:
        with self.night.transaction() as conn:
            return contacts_db.get_lusha_lookups(conn, domains, self.cache_age)

    def _store_lookup(self, domain: str, request_id: str | None, people: list[dict[str, Any]], credits: int,
                      complete: bool = True) -> None:
        with self.night.transaction() as conn:
            contacts_db.put_lusha_lookup(conn, domain, request_id, people, credits, complete=complete)


def _chunks(lookups: list[_Lookup], size: int) -> list[list[_Lookup]]:
    return [lookups[start:start + size] for start in range(0, len(lookups), size)]


def _end(lookups: Iterable[_Lookup], how: str) -> None:
    for lookup in lookups:
        if lookup.ended is None:
            lookup.ended = how


def hit_owner(hit: SearchHit, by_domain: Mapping[str, K], by_name: Mapping[str, Sequence[K]]) -> K | None:
    """Whose a hit of a many-company search is: the company of the hit's domain (``by_domain``, keyed
    by registrable domain); by the hit's company name (``by_name``, keyed by :func:`name_key`) only
    when Lusha gives no domain, and then only when one company of the search has that name."""
    if hit.fqdn:
        return by_domain.get(registrable_domain(hit.fqdn) or "")
    named = by_name.get(name_key(hit.company_name), ())
    return named[0] if len(named) == 1 else None


@dataclasses.dataclass(frozen=True)
class _CompanyPlan:
    record: RunRecord
    domain: str | None
    site: list[Contact]
    has_site_personal: bool

    @property
    def needs_lusha(self) -> bool:
        return self.domain is not None and not self.has_site_personal


def _plan_company(record: RunRecord) -> _CompanyPlan:
    signals = record.signals or {}
    site = contacts_from_signals(record, signals)
    return _CompanyPlan(record, company_domain(record, signals), site,
                        any(contact.is_company_person for contact in site))


def _store_contacts(night: TenantNight, contacts: list[Contact]) -> list[Contact]:
    with night.transaction() as conn:
        return contacts_db.upsert_contacts(conn, contacts)


async def _company_contacts(plan: _CompanyPlan, people: Sequence[Mapping[str, Any]],
                            night: TenantNight) -> _CompanyOutcome:
    record, domain = plan.record, plan.domain
    lusha = [c for person in people if (c := contact_from_lusha(record.company_id, domain, person)) is not None]
    stored = await asyncio.to_thread(_store_contacts, night, plan.site + lusha)
    return _CompanyOutcome(record.company_id, domain, len(plan.site), len(lusha), plan.has_site_personal, stored)


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
                     f"{report.companies_skipped_after_stop} companies went without a Lusha lookup")
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
        cap_reached=counters["skipped_for_cap"] > 0 or (fallback is not None and fallback.cap_exhausted),
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
    ``concurrency`` (companies in flight) defaults to the night's SCHED_COMPANY_CONCURRENCY; Lusha
    takes its companies ``DOMAINS_PER_SEARCH`` to a request, ``concurrency // DOMAINS_PER_SEARCH``
    requests at a time (at least one).
    """
    concurrency = night.settings.sched_company_concurrency if concurrency is None else concurrency
    if ids_per_company < 1 or concurrency < 1:
        raise ValueError("ids_per_company and concurrency must be >= 1")
    fallback = None
    if isinstance(lusha, LushaClient):
        night.share_limits("lusha", lusha)
        fallback = _LushaFallback(lusha, night, preferred_titles=preferred_titles,
                                  cache_age=dt.timedelta(days=cache_days), ids_per_company=ids_per_company,
                                  chunks_in_flight=max(1, concurrency // DOMAINS_PER_SEARCH))
    plans = [_plan_company(record) for record in records]
    wanted = [(plan.domain, name_variants(plan.record)) for plan in plans if plan.needs_lusha and plan.domain]
    people = await fallback.people_by_domain(wanted) if fallback is not None and wanted else {}
    gate = asyncio.Semaphore(concurrency)

    async def one(plan: _CompanyPlan) -> _CompanyOutcome:
        async with gate:
            found = people.get(plan.domain, []) if plan.needs_lusha and plan.domain else []
            return await _company_contacts(plan, found, night)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(plan)) for plan in plans]
    outcomes = [task.result() for task in tasks]
    report = _report(outcomes, fallback)
    primaries = await asyncio.to_thread(assign_primary_contacts, night, [o.company_id for o in outcomes],
                                        preferred_titles)
    report.primary_contacts = sum(1 for email in primaries.values() if email is not None)
    report.degradations = _degradations(report, unavailable=unavailable_reason(lusha), fallback=fallback,
                                        cap=night.settings.lusha_max_contact_lookups)
    return report
