"""Lusha API v2 sandbox: prospecting search (free) → enrich (1 credit per revealed contact), the
single-person and company lookups, per-key rate limits with Lusha's headers, and credit accounting.

Behaviour chosen where Lusha's documentation is silent (see vendor-apis.md §2):

* Rate limits are sliding windows (a log of request times over the last 60 s / 3,600 s / 86,400 s),
  so a burst is refused until its oldest request leaves the window. Refused and unauthenticated
  requests do not use quota. 429s carry no ``Retry-After``; the reset time is only in the message.
* ``credit_limit`` applies per API key; a call whose charge would exceed it is refused whole with
  402. Contacts are charged every time they are enriched: the vendor does not deduplicate.
* The sandbox directory is keyed by company: a search without a company domain or name finds
  nobody, and ``unknown_domain_rate`` of all domains (picked by a seeded hash), free-mail domains
  and malformed domains are unknown to Lusha and return no contacts.
* ``GET /v2/company`` is free and answers 404 for unknown companies; firmographics are synthetic.
* ``GET /v2/person?linkedinUrl=`` finds the people of ``companies`` (the sandbox world's
  domain → name map, when given) and of every company this server has already looked up, because a
  LinkedIn URL does not name the company. ``companies`` also supplies the names shown in results.
* ``search_outage_domains`` and ``enrich_outage_domains`` imitate an outage that hits some requests
  only: a search naming one of the first, or an enrich of a contact at one of the second, answers 503
  every time (nothing billed).
"""
from __future__ import annotations

import dataclasses
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from nightly_pipeline_sandbox.base import FaultConfig, LatencyModel, SandboxServer
from nightly_pipeline_sandbox.people import DEPARTMENTS, SENIORITY_LABELS, Person, people_for
from nightly_pipeline_sandbox.vendors_common import (
    FREE_MAIL_DOMAINS, RollingWindow, normalise_domain, registrable_label, stable_fraction, stable_int,
)

MAX_PAGE_SIZE = 50
MAX_PAGE = 1000
MAX_ENRICH_IDS = 100
_LEGAL_SUFFIXES = re.compile(
    r"\b(pte\.?\s*ltd\.?|private\s+limited|limited|ltd\.?|llp|llc|inc\.?|co\.?|corporation|company|"
    r"holdings|singapore|sg)\b")
_COMPANY_INDUSTRIES = ("Computer Software", "Logistics & Supply Chain", "Construction", "Wholesale",
                       "Information Technology & Services", "Marketing & Advertising", "Food & Beverages",
                       "Manufacturing", "Financial Services", "Real Estate")

# Lusha lists only some of a company's staff; the headcount estimate scales the listed contacts up.
_STAFF_PER_LISTED_CONTACT = 4

Handler = Callable[[web.Request, str], Awaitable[web.Response]]


@dataclasses.dataclass
class _Quota:
    """One of Lusha's per-key limits and the names of its response headers."""

    period: str  # the word Lusha uses in the header names: minute, hourly, daily
    limit: int
    window: RollingWindow
    exceeded: str  # how Lusha's 429 message starts for this limit
    unit: str

    def headers(self, used: int) -> dict[str, str]:
        return {f"x-rate-limit-{self.period}": str(self.limit),
                f"x-{self.period}-requests-left": str(max(0, self.limit - used)),
                f"x-{self.period}-usage": str(used)}

    def refusal_message(self, now: float) -> str:
        wait = self.window.seconds_until_room(now, self.limit)
        return f"{self.exceeded}. Limit {self.limit} calls per {self.unit}. Reset in {wait} seconds"


@dataclasses.dataclass
class _Account:
    quotas: list[_Quota]
    arrivals: RollingWindow = dataclasses.field(default_factory=lambda: RollingWindow(60.0))
    credits_used: int = 0
    revealed: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(frozen=True)
class _Company:
    company_id: int
    domain: str
    name: str


class LushaServer(SandboxServer):
    name = "lusha"

    def __init__(self, *, seed: int = 7, api_keys: set[str] | None = None, per_minute: int = 300,
                 per_hour: int | None = None, per_day: int | None = None, credit_limit: int | None = None,
                 unknown_domain_rate: float = 0.1, unified_credits: bool = False,
                 companies: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 latency: LatencyModel | None = None, faults: FaultConfig | None = None,
                 search_outage_domains: Iterable[str] = (), enrich_outage_domains: Iterable[str] = ()) -> None:
        super().__init__(seed=seed, latency=latency, faults=faults)
        self.api_keys = api_keys
        self.per_minute, self.per_hour, self.per_day = per_minute, per_hour, per_day
        self.credit_limit = credit_limit
        self.unknown_domain_rate = unknown_domain_rate
        self.unified_credits = unified_credits
        self.known_companies = {normalise_domain(d): name for d, name in (companies or {}).items()}
        self.search_outage_domains = frozenset(normalise_domain(d) for d in search_outage_domains)
        self.enrich_outage_domains = frozenset(normalise_domain(d) for d in enrich_outage_domains)
        self.clock = clock
        self._state_lock = threading.Lock()
        self._reset_state()
        self._index_known_companies()

    # -- SandboxServer ---------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/prospecting/contact/search", self._api(self._contact_search))
        app.router.add_post("/prospecting/contact/enrich", self._api(self._contact_enrich))
        app.router.add_get("/v2/person", self._api(self._person))
        app.router.add_get("/v2/company", self._api(self._company_lookup))
        app.router.add_get("/prospecting/filters/contacts/seniority", self._api(self._seniority_filter))
        app.router.add_get("/prospecting/filters/contacts/departments", self._api(self._department_filter))

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._state_lock:
            stats.update({
                "calls_by_endpoint": dict(self._calls),
                "credits_by_key": {key: acc.credits_used for key, acc in self._accounts.items()},
                "credits_total": sum(acc.credits_used for acc in self._accounts.values()),
                "contacts_enriched": self._contacts_enriched,
                "rate_limited": self._outcomes["rate_limited"],
                "unauthorized": self._outcomes["unauthorized"],
                "payment_required": self._outcomes["payment_required"],
                "max_requests_in_60s": max((acc.arrivals.peak for acc in self._accounts.values()), default=0),
            })
        return stats

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self._reset_state()
        self._index_known_companies()

    def _reset_state(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._calls: Counter[str] = Counter()
        self._outcomes: Counter[str] = Counter()
        self._contacts_enriched = 0
        self._searches: dict[str, frozenset[str]] = {}
        self._contacts: dict[str, Person] = {}
        self._by_linkedin: dict[str, Person] = {}
        self._companies: dict[int, _Company] = {}

    def _index_known_companies(self) -> None:
        for domain in self.known_companies:
            if self._known_to_lusha(domain):
                self._people(self._company(domain))

    # -- auth, quotas, accounting ----------------------------------------------------------------
    def _api(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            key = request.headers.get("api_key", "").strip()
            with self._state_lock:
                self._calls[request.path] += 1
                if not self._key_accepted(key):
                    self._outcomes["unauthorized"] += 1
                    return _error(401, "Invalid API key")
                refusal, headers = self._take_quota(key)
            if refusal is not None:
                refusal.headers.update(headers)
                return refusal
            response = await handler(request, key)
            response.headers.update(headers)
            return response
        return guarded

    def _key_accepted(self, key: str) -> bool:
        return bool(key) and (self.api_keys is None or key in self.api_keys)

    def _account(self, key: str) -> _Account:
        account = self._accounts.get(key)
        if account is None:
            account = _Account(quotas=self._new_quotas())
            self._accounts[key] = account
        return account

    def _new_quotas(self) -> list[_Quota]:
        quotas = [_Quota("minute", self.per_minute, RollingWindow(60.0), "Minute API rate limit exceeded",
                         "minute")]
        if self.per_hour is not None:
            quotas.append(_Quota("hourly", self.per_hour, RollingWindow(3600.0), "Hourly API rate limit exceeded",
                                 "hour"))
        if self.per_day is not None:
            quotas.append(_Quota("daily", self.per_day, RollingWindow(86400.0), "Daily API quota limit exceeded",
                                 "day"))
        return quotas

    def _take_quota(self, key: str) -> tuple[web.Response | None, dict[str, str]]:
        """Count one request against every window, or build the 429 for the first window that is full."""
        now = self.clock()
        account = self._account(key)
        account.arrivals.add(now)
        for quota in account.quotas:
            used = quota.window.total(now)
            if used >= quota.limit:
                self._outcomes["rate_limited"] += 1
                headers = {k: v for q in account.quotas for k, v in q.headers(q.window.total(now)).items()}
                return _error(429, quota.refusal_message(now)), headers
        headers = {}
        for quota in account.quotas:
            headers.update(quota.headers(quota.window.add(now)))
        return None, headers

    def _charge(self, key: str, credits: int) -> web.Response | None:
        """Bill ``credits`` to ``key``, or return the 402 that refuses the whole call."""
        with self._state_lock:
            account = self._account(key)
            if self.credit_limit is not None and account.credits_used + credits > self.credit_limit:
                self._outcomes["payment_required"] += 1
                left = max(0, self.credit_limit - account.credits_used)
                return _error(402, f"Insufficient credits: {credits} needed, {left} left")
            account.credits_used += credits
        return None

    # -- the sandbox's company directory ---------------------------------------------------------
    def _known_to_lusha(self, domain: str) -> bool:
        if "." not in domain or not registrable_label(domain) or domain in FREE_MAIL_DOMAINS:
            return False
        return stable_fraction(self.seed, "lusha-unknown", domain) >= self.unknown_domain_rate

    def _company(self, domain: str, name: str | None = None) -> _Company:
        company_id = stable_int(self.seed, "lusha-company", domain, modulo=10**8)
        company = _Company(company_id, domain, name or self.known_companies.get(domain) or _name_from_domain(domain))
        with self._state_lock:
            self._companies.setdefault(company_id, company)
        return company

    def _people(self, company: _Company) -> list[Person]:
        people = people_for(company.domain, company.name, seed=self.seed)
        with self._state_lock:
            for person in people:
                self._contacts[person.person_id] = person
                self._by_linkedin[_linkedin_key(person.linkedin_url)] = person
        return people

    def _has_mobile(self, person: Person) -> bool:
        return stable_fraction(self.seed, "lusha-mobile", person.person_id) < 0.7

    # -- endpoints -------------------------------------------------------------------------------
    async def _contact_search(self, request: web.Request, key: str) -> web.Response:
        body = await _json_object(request)
        if body is None:
            return _error(400, "Request body must be a JSON object")
        try:
            page, size = _pagination(body.get("pages"))
            filters = _SearchFilters.parse(body.get("filters"))
        except ValueError as exc:
            return _error(400, str(exc))
        if self.search_outage_domains & {normalise_domain(d) for d in filters.company_domains}:
            return _error(503, "Service temporarily unavailable")
        matches = [person for company in self._companies_for(filters) for person in self._people(company)
                   if filters.accepts(person)]
        shown = matches[page * size:(page + 1) * size]
        request_id = str(uuid.uuid4())
        with self._state_lock:
            self._searches[request_id] = frozenset(p.person_id for p in shown)
            revealed = set(self._account(key).revealed)
        return web.json_response({
            "requestId": request_id, "currentPage": page, "pageLength": len(shown),
            "totalResults": len(matches),
            "data": [self._search_item(person, person.person_id in revealed) for person in shown]})

    def _companies_for(self, filters: _SearchFilters) -> list[_Company]:
        names_by_label = {_name_key(name): name for name in filters.company_names}
        domains = [normalise_domain(d) for d in filters.company_domains]
        labels = {registrable_label(d) for d in domains}
        candidates = [(domain, names_by_label.get(registrable_label(domain))) for domain in domains]
        candidates += [(f"{label}.com.sg", name) for label, name in names_by_label.items()
                       if label and label not in labels]
        unique = dict.fromkeys(candidates)
        return [self._company(domain, name) for domain, name in unique if self._known_to_lusha(domain)]

    def _search_item(self, person: Person, is_shown: bool) -> dict[str, Any]:
        company = self._company(person.domain, person.company_name)
        return {"contactId": person.person_id, "isShown": is_shown, "name": person.full_name,
                "jobTitle": person.title, "companyId": company.company_id, "companyName": company.name,
                "fqdn": person.domain, "hasWorkEmail": True, "hasMobilePhone": self._has_mobile(person),
                "hasSocialLink": True}

    async def _contact_enrich(self, request: web.Request, key: str) -> web.Response:
        body = await _json_object(request)
        if body is None:
            return _error(400, "Request body must be a JSON object")
        request_id, contact_ids = body.get("requestId"), body.get("contactIds")
        if not isinstance(request_id, str) or not _is_string_list(contact_ids) or not contact_ids:
            return _error(400, "requestId (string) and contactIds (non-empty list of strings) are required")
        if len(contact_ids) > MAX_ENRICH_IDS:
            return _error(400, f"contactIds must contain at most {MAX_ENRICH_IDS} ids")
        if ("revealEmails" in body or "revealPhones" in body) and not self.unified_credits:
            return _error(403, "revealEmails/revealPhones are available only on Unified Credits plans")
        with self._state_lock:
            searched = self._searches.get(request_id)
        if searched is None:
            return _error(400, f"Unknown requestId {request_id}")
        found = [cid for cid in contact_ids if cid in searched]
        with self._state_lock:
            hit_by_outage = any(self._contacts[cid].domain in self.enrich_outage_domains for cid in found)
        if hit_by_outage:
            return _error(503, "Service temporarily unavailable")
        refusal = self._charge(key, len(found))
        if refusal is not None:
            return refusal
        with self._state_lock:
            self._account(key).revealed.update(found)
            self._contacts_enriched += len(found)
            people = {cid: self._contacts[cid] for cid in found}
        return web.json_response({"requestId": request_id, "contacts": [
            {"id": cid, "isSuccess": True, "data": self._contact_data(people[cid])} if cid in people
            else {"id": cid, "isSuccess": False,
                  "error": {"code": 404, "message": "Contact was not part of this search request"}}
            for cid in contact_ids]})

    def _contact_data(self, person: Person) -> dict[str, Any]:
        company = self._company(person.domain, person.company_name)
        phones = ([{"number": person.mobile, "phoneType": "mobile", "doNotCall": False}]
                  if self._has_mobile(person) else [])
        return {
            "firstName": person.first_name, "lastName": person.last_name, "fullName": person.full_name,
            "jobTitle": person.title, "seniority": person.seniority_label, "departments": [person.department],
            "emailAddresses": [{"email": person.email, "emailType": "work", "emailConfidence": "A+"}],
            "phoneNumbers": phones, "socialLinks": {"linkedin": person.linkedin_url},
            "location": {"country": "Singapore", "country_iso2": "SG", "city": "Singapore"},
            "company": {"id": company.company_id, "name": company.name, "domain": company.domain,
                        "fqdn": company.domain}}

    async def _person(self, request: web.Request, key: str) -> web.Response:
        query = request.query
        if not (query.get("email") or query.get("linkedinUrl") or (
                query.get("firstName") and query.get("lastName")
                and (query.get("companyName") or query.get("companyDomain")))):
            return _error(400, "Give email, linkedinUrl, or firstName + lastName + companyName/companyDomain")
        person = self._find_person(query)
        if person is None:
            return web.json_response({"contact": {
                "error": {"code": 404, "name": "NotFound", "message": "Could not find requested data"},
                "isCreditCharged": False, "data": None}})
        refusal = self._charge(key, 1)
        if refusal is not None:
            return refusal
        data = self._contact_data(person)
        data["jobTitle"] = {"title": person.title, "departments": [person.department],
                            "seniority": person.seniority_label}
        return web.json_response({"contact": {"error": None, "isCreditCharged": True, "data": data}})

    def _find_person(self, query: Any) -> Person | None:
        if email := query.get("email", "").strip().lower():
            domain = email.rpartition("@")[2]
            return self._first_in(domain, None, lambda p: p.email == email)
        if linkedin := query.get("linkedinUrl", "").strip():
            with self._state_lock:
                return self._by_linkedin.get(_linkedin_key(linkedin))
        first, last = _name_key(query["firstName"]), _name_key(query["lastName"])
        company_name = query.get("companyName")
        domain = query.get("companyDomain") or f"{_name_key(company_name or '')}.com.sg"
        return self._first_in(domain, company_name,
                              lambda p: (_name_key(p.first_name), _name_key(p.last_name)) == (first, last))

    def _first_in(self, domain: str, company_name: str | None, wanted: Callable[[Person], bool]) -> Person | None:
        domain = normalise_domain(domain)
        if not self._known_to_lusha(domain):
            return None
        return next((p for p in self._people(self._company(domain, company_name)) if wanted(p)), None)

    async def _company_lookup(self, request: web.Request, key: str) -> web.Response:
        query = request.query
        company = self._find_company(query)
        if company is None:
            return _error(404, "Company not found")
        people = self._people(company)
        return web.json_response({"data": {
            "id": company.company_id, "name": company.name, "domain": company.domain, "fqdn": company.domain,
            "website": f"https://www.{company.domain}",
            "industry": _COMPANY_INDUSTRIES[stable_int(self.seed, "lusha-industry", company.domain,
                                                       modulo=len(_COMPANY_INDUSTRIES))],
            "employees": _employee_range(len(people) * _STAFF_PER_LISTED_CONTACT),
            "location": {"country": "Singapore", "country_iso2": "SG", "city": "Singapore"}}})

    def _find_company(self, query: Any) -> _Company | None:
        if company_id := query.get("companyId", "").strip():
            with self._state_lock:
                return self._companies.get(int(company_id)) if company_id.isdigit() else None
        name = query.get("company", "").strip() or None
        domain = normalise_domain(query.get("domain", "")) or (f"{_name_key(name)}.com.sg" if name else "")
        return self._company(domain, name) if domain and self._known_to_lusha(domain) else None

    async def _seniority_filter(self, request: web.Request, key: str) -> web.Response:
        return web.json_response([{"id": rank, "value": label} for rank, label in SENIORITY_LABELS.items()])

    async def _department_filter(self, request: web.Request, key: str) -> web.Response:
        return web.json_response(list(DEPARTMENTS))


@dataclasses.dataclass(frozen=True)
class _SearchFilters:
    """The subset of Lusha's search filters the sandbox evaluates; both key spellings are accepted."""

    titles: tuple[str, ...]
    departments: frozenset[str]
    seniority: frozenset[int]
    countries: frozenset[str]
    company_domains: tuple[str, ...]
    company_names: tuple[str, ...]

    @classmethod
    def parse(cls, filters: Any) -> _SearchFilters:
        filters = _mapping(filters, "filters")
        contacts = _mapping(_mapping(filters.get("contacts"), "filters.contacts").get("include"),
                            "filters.contacts.include")
        companies = _mapping(_mapping(filters.get("companies"), "filters.companies").get("include"),
                             "filters.companies.include")
        locations = contacts.get("locations") or []
        if not isinstance(locations, list) or not all(isinstance(loc, dict) for loc in locations):
            raise ValueError("filters.contacts.include.locations must be a list of objects")
        return cls(
            titles=tuple(t.lower() for t in _strings(contacts, "jobTitles", "titles")),
            departments=frozenset(d.lower() for d in _strings(contacts, "departments")),
            seniority=frozenset(_seniority_ranks(contacts.get("seniority") or [])),
            countries=frozenset(str(loc["country"]).lower() for loc in locations if loc.get("country")),
            company_domains=_strings(companies, "domains", "companyDomains"),
            company_names=_strings(companies, "names", "companyNames"))

    def accepts(self, person: Person) -> bool:
        title = person.title.lower()
        return ((not self.titles or any(t in title for t in self.titles))
                and (not self.departments or person.department.lower() in self.departments)
                and (not self.seniority or person.seniority in self.seniority)
                and (not self.countries or bool(self.countries & {"singapore", "sg"})))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


def _strings(section: dict[str, Any], *keys: str) -> tuple[str, ...]:
    values: list[str] = []
    for key in keys:
        found = section.get(key) or []
        if not _is_string_list(found):
            raise ValueError(f"{key} must be a list of strings")
        values.extend(found)
    return tuple(values)


def _seniority_ranks(values: Any) -> Iterable[int]:
    if not isinstance(values, list):
        raise ValueError("seniority must be a list")
    for value in values:
        if isinstance(value, bool) or not str(value).strip().isdigit():
            raise ValueError(f"seniority values are integers, got {value!r}")
        yield int(value)


def _pagination(pages: Any) -> tuple[int, int]:
    pages = _mapping(pages, "pages")
    page, size = pages.get("page", 0), pages.get("size", 20)
    if not isinstance(page, int) or isinstance(page, bool) or not 0 <= page < MAX_PAGE:
        raise ValueError(f"pages.page must be an integer in 0..{MAX_PAGE - 1}")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"pages.size must be an integer in 1..{MAX_PAGE_SIZE}")
    return page, size


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message}, status=status)


def _name_key(name: str) -> str:
    """Company or person name reduced to lowercase letters and digits, legal suffixes dropped."""
    return re.sub(r"[^a-z0-9]", "", _LEGAL_SUFFIXES.sub(" ", name.lower()))


def _name_from_domain(domain: str) -> str:
    return f"{registrable_label(domain).replace('-', ' ').title()} Pte. Ltd."


def _linkedin_key(url: str) -> str:
    """The profile slug, so ``http://linkedin.com/in/x/`` and ``https://www.linkedin.com/in/x`` match."""
    return urlsplit(url.strip()).path.rstrip("/").rsplit("/", 1)[-1].lower()


def _employee_range(estimate: int) -> str:
    for upper, label in ((10, "1-10"), (50, "11-50"), (200, "51-200"), (500, "201-500")):
        if estimate <= upper:
            return label
    return "501-1000"
