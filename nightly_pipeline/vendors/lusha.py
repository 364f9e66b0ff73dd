"""Lusha's v2 prospecting API: contact search (free) and enrich (one credit per revealed contact),
the client's resource, and what a call costs.

At most ``max_in_flight`` requests are on the wire at once. Calls are retried by the shared policy of
:mod:`nightly_pipeline.vendors.retrying` (three attempts by default). A 429 is retried after the wait Lusha
names ("Reset in N seconds", or ``Retry-After`` when present) plus an exponentially widening full
jitter, so concurrent workers refused together do not return together; a wait longer than
``max_wait_s`` (a daily quota) is not waited out but raised. Search is free and idempotent, so it
is also retried on 5xx and transport errors; enrich is billed, so it is retried only when the
request provably never reached Lusha (429, connection refused). Errors name the endpoint and the
status, never the key (it travels in the ``api_key`` header only).

The run's cap counts contacts enriched, which is what Lusha bills: an enrich call is settled with
the contacts it revealed, and a call lost after it was sent with everything it asked for.
"""
import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Self

import dagster as dg
import httpx
from pydantic import PrivateAttr

from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.rate_limits import UNLIMITED, CallLimiter, key_fingerprint
from nightly_pipeline.vendors.paid_call import Answer, Billed, NullClient
from nightly_pipeline.vendors.retrying import MAX_ATTEMPTS, CallRetry

DEFAULT_BASE_URL = "https://api.lusha.com"
SEARCH_PATH = "/prospecting/contact/search"
ENRICH_PATH = "/prospecting/contact/enrich"
MAX_IN_FLIGHT = 5
VENDOR = "lusha"
# Every search and enrich request counts against the key's per-minute/hour/day limits.
REQUESTS_BUCKET = "lusha.requests"
MAX_ENRICH_IDS = 100
MAX_PAGE_SIZE = 50
MAX_PAGES = 1000
DEFAULT_MAX_ATTEMPTS = MAX_ATTEMPTS
_RESET_IN = re.compile(r"reset in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
_MESSAGE_CHARS = 200

Sleep = Callable[[float], Awaitable[None]]


class LushaError(RuntimeError):
    """A Lusha call that did not succeed; ``attempts`` counts the HTTP requests it took."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = 1


class LushaRateLimited(LushaError):
    """429: the request was refused before Lusha did anything (it is not billed)."""

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        super().__init__(message, status=429)
        self.retry_after_s = retry_after_s


class LushaUnavailable(LushaError):
    """5xx, a transport failure or an unreadable answer. ``sent`` is False when the request
    provably never reached Lusha (so it can neither have been processed nor billed)."""

    def __init__(self, message: str, *, status: int | None = None, sent: bool = True) -> None:
        super().__init__(message, status=status)
        self.sent = sent


class LushaAccountError(LushaError):
    """401/402/403: the key, the plan or the credits refuse every further call of this run."""


class LushaRequestError(LushaError):
    """Any other 4xx: this request was wrong, other requests may still work."""


@dataclasses.dataclass(frozen=True)
class SearchHit:
    contact_id: str
    name: str | None
    job_title: str | None
    company_name: str | None
    fqdn: str | None
    has_work_email: bool


@dataclasses.dataclass(frozen=True)
class SearchResult:
    request_id: str
    hits: tuple[SearchHit, ...]
    total: int
    attempts: int = 1
    page: int = 0
    page_size: int = 25

    @property
    def pages(self) -> int:
        """How many pages of ``page_size`` the whole result takes (Lusha serves at most ``MAX_PAGES``)."""
        return min(MAX_PAGES, -(-self.total // self.page_size)) if self.total > 0 else 1


@dataclasses.dataclass(frozen=True)
class EnrichedContact:
    """A revealed contact; :meth:`to_dict` is the shape stored in ``lusha_lookups.contacts``."""

    contact_id: str
    request_id: str
    full_name: str | None
    first_name: str | None
    last_name: str | None
    job_title: str | None
    seniority: str | None
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    linkedin: str | None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["emails"], data["phones"] = list(self.emails), list(self.phones)
        return data


@dataclasses.dataclass(frozen=True)
class EnrichResult:
    request_id: str
    contacts: tuple[EnrichedContact, ...]
    failed_ids: tuple[str, ...]
    attempts: int = 1

    @property
    def contacts_enriched(self) -> int:
        """What Lusha bills for the call: one credit per successfully revealed contact."""
        return len(self.contacts)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The wait a 429 asks for: ``Retry-After`` if sent, else the "Reset in N seconds" of Lusha's message."""
    header = response.headers.get("retry-after", "").strip()
    if header.replace(".", "", 1).isdigit():
        return float(header)
    match = _RESET_IN.search(_message(response))
    return float(match.group(1)) if match else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:_MESSAGE_CHARS]
    if isinstance(body, Mapping):
        return str(body.get("message") or body.get("error") or "")[:_MESSAGE_CHARS]
    return ""


def _error_for(method: str, path: str, response: httpx.Response) -> LushaError:
    where = f"Lusha {method} {path} answered {response.status_code}"
    message = _message(response)
    text = f"{where}: {message}" if message else where
    status = response.status_code
    if status == 429:
        return LushaRateLimited(text, retry_after_s=retry_after_seconds(response))
    if status in (401, 402, 403):
        return LushaAccountError(text, status=status)
    if status >= 500 or status == 499:
        return LushaUnavailable(text, status=status)
    return LushaRequestError(text, status=status)


def _retry_after_of(error: BaseException) -> float | None:
    return getattr(error, "retry_after_s", None)


def _str_or_none(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _search_hit(item: Mapping[str, Any]) -> SearchHit | None:
    contact_id = item.get("contactId")
    if not isinstance(contact_id, str) or not contact_id:
        return None
    return SearchHit(contact_id=contact_id, name=_str_or_none(item.get("name")),
                     job_title=_str_or_none(item.get("jobTitle")), company_name=_str_or_none(item.get("companyName")),
                     fqdn=_str_or_none(item.get("fqdn")), has_work_email=bool(item.get("hasWorkEmail", True)))


def _job_title(value: Any) -> str | None:
    # /v2/person nests the title ({"title": …}); the prospecting enrich sends a plain string.
    return _str_or_none(value.get("title")) if isinstance(value, Mapping) else _str_or_none(value)


def _enriched(request_id: str, contact_id: str, data: Mapping[str, Any]) -> EnrichedContact:
    emails = tuple(e["email"].strip().lower() for e in data.get("emailAddresses") or []
                   if isinstance(e, Mapping) and isinstance(e.get("email"), str) and "@" in e["email"])
    phones = tuple(p["number"] for p in data.get("phoneNumbers") or []
                   if isinstance(p, Mapping) and isinstance(p.get("number"), str) and not p.get("doNotCall"))
    social = data.get("socialLinks")
    return EnrichedContact(
        contact_id=contact_id, request_id=request_id, full_name=_str_or_none(data.get("fullName")),
        first_name=_str_or_none(data.get("firstName")), last_name=_str_or_none(data.get("lastName")),
        job_title=_job_title(data.get("jobTitle")), seniority=_str_or_none(data.get("seniority")),
        emails=emails, phones=phones,
        linkedin=_str_or_none(social.get("linkedin")) if isinstance(social, Mapping) else None)


class LushaClient:
    """``async with LushaClient(key, base_url=…) as lusha:``, once per event loop: each ``async with``
    opens the connections (and the in-flight limit) on the running loop and closes them on exit, so
    one client serves a run whose steps each run their own event loop."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 30.0,
                 max_in_flight: int = MAX_IN_FLIGHT, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 backoff_base_s: float = 1.0, max_wait_s: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None, sleep: Sleep = asyncio.sleep) -> None:
        if not api_key.strip():
            raise ValueError("a Lusha API key is required")
        if max_in_flight < 1 or max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be >= 1")
        self._key = api_key.strip()
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._transport = transport
        self._max_in_flight = max_in_flight
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._http: httpx.AsyncClient | None = None
        self._in_flight: asyncio.Semaphore | None = None
        # Paces every request to the key's limits across processes (set by the run; see rate_limits).
        self.limiter: CallLimiter = UNLIMITED
        self.key_fingerprint = key_fingerprint(VENDOR, self._key)

    def __repr__(self) -> str:
        return f"LushaClient(base_url={self._base_url!r})"

    async def __aenter__(self) -> Self:
        if self._http is not None:
            raise RuntimeError("this LushaClient is already open on an event loop")
        self._http = httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout_s, transport=self._transport,
                                       headers={"api_key": self._key, "accept": "application/json"})
        self._in_flight = asyncio.Semaphore(self._max_in_flight)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        http, self._http, self._in_flight = self._http, None, None
        if http is not None:
            await http.aclose()

    async def search_contacts(self, domains: str | Sequence[str] | None, names: Sequence[str] = (),
                              titles: Sequence[str] = (), *, page: int = 0, page_size: int = 25) -> SearchResult:
        """Page ``page`` of the contacts of the companies at ``domains`` (and/or named ``names``) whose
        titles contain one of ``titles``. Each page is its own search request: enrich the ids of a page
        with that page's ``request_id``."""
        domain_list = [domains] if isinstance(domains, str) else list(domains or ())
        domain_list = list(dict.fromkeys(d for d in domain_list if d))
        if not domain_list and not names:
            raise ValueError("search needs a company domain or name")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {page_size}")
        if not 0 <= page < MAX_PAGES:
            raise ValueError(f"page must be in 0..{MAX_PAGES - 1}, got {page}")
        companies: dict[str, list[str]] = {}
        if domain_list:
            companies["domains"] = domain_list
        if names:
            companies["names"] = list(dict.fromkeys(names))
        contacts = {"jobTitles": list(dict.fromkeys(titles))} if titles else {}
        body = {"pages": {"page": page, "size": page_size},
                "filters": {"contacts": {"include": contacts}, "companies": {"include": companies}}}
        payload, attempts = await self._post(SEARCH_PATH, body, idempotent=True)
        request_id = payload.get("requestId")
        if not isinstance(request_id, str) or not request_id:
            raise LushaUnavailable(f"Lusha POST {SEARCH_PATH} answered without a requestId")
        items = payload.get("data") if isinstance(payload.get("data"), list) else []
        hits = tuple(hit for item in items if isinstance(item, Mapping) and (hit := _search_hit(item)) is not None)
        total = payload.get("totalResults")
        return SearchResult(request_id, hits, total if isinstance(total, int) else len(hits), attempts,
                            page=page, page_size=page_size)

    async def enrich(self, request_id: str, contact_ids: Sequence[str]) -> EnrichResult:
        """Reveal ``contact_ids`` of search ``request_id``; Lusha bills each contact it reveals."""
        ids = list(dict.fromkeys(contact_ids))
        if not ids or len(ids) > MAX_ENRICH_IDS:
            raise ValueError(f"enrich takes 1..{MAX_ENRICH_IDS} contact ids, got {len(ids)}")
        payload, attempts = await self._post(ENRICH_PATH, {"requestId": request_id, "contactIds": ids},
                                             idempotent=False)
        contacts, failed = [], []
        for item in payload.get("contacts") or []:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                continue
            data = item.get("data")
            if item.get("isSuccess") and isinstance(data, Mapping):
                contacts.append(_enriched(request_id, item["id"], data))
            else:
                failed.append(item["id"])
        return EnrichResult(request_id, tuple(contacts), tuple(failed), attempts)

    # -- transport ---------------------------------------------------------------------------
    def _retry(self, idempotent: bool) -> CallRetry:
        def is_transient(error: BaseException) -> bool:
            if isinstance(error, LushaRateLimited):
                return True
            if isinstance(error, LushaUnavailable):
                return idempotent or not error.sent
            return False
        return CallRetry(is_transient, _retry_after_of, max_attempts=self._max_attempts,
                         base_wait_s=self._backoff_base_s, max_backoff_s=self._max_wait_s,
                         max_retry_after_s=self._max_wait_s)

    async def _post(self, path: str, body: Mapping[str, Any], *, idempotent: bool) -> tuple[dict[str, Any], int]:
        attempts = 0

        def count(attempt: int) -> None:
            nonlocal attempts
            attempts = attempt

        try:
            payload = await self._retry(idempotent).acall(lambda: self._post_once(path, body), sleep=self._sleep,
                                                          on_attempt=count)
        except LushaError as error:
            error.attempts = attempts
            raise
        return payload, attempts

    async def _post_once(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if self._http is None or self._in_flight is None:
            raise RuntimeError("open the client on this event loop first: `async with lusha:`")
        await self.limiter.acquire(REQUESTS_BUCKET)
        async with self._in_flight:
            try:
                response = await self._http.post(path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                raise LushaUnavailable(f"Lusha POST {path}: {type(error).__name__}", sent=False) from None
            except httpx.HTTPError as error:
                raise LushaUnavailable(f"Lusha POST {path}: {type(error).__name__}") from None
        if response.status_code != 200:
            raise _error_for("POST", path, response)
        try:
            payload = response.json()
        except ValueError:
            raise LushaUnavailable(f"Lusha POST {path} answered 200 with a body that is not JSON") from None
        if not isinstance(payload, dict):
            raise LushaUnavailable(f"Lusha POST {path} answered 200 with a body that is not a JSON object")
        return payload


# -- what a call costs ------------------------------------------------------------------------------------
def ok_status(attempts: int) -> str:
    return "ok" if attempts <= 1 else f"ok after {attempts} attempts"


def failed_status(error: LushaError) -> str:
    code = f" {error.status}" if error.status else ""
    return f"error{code}: {type(error).__name__} after {error.attempts} attempt(s)"


def maybe_billed(error: LushaError) -> bool:
    """Whether a failed enrich may have been processed: a connection lost after the request went out."""
    return isinstance(error, LushaUnavailable) and error.sent and error.status is None


def enrich_answer(result: EnrichResult) -> Answer[EnrichResult]:
    return Answer(result, Billed(result.contacts_enriched, ok_status(result.attempts)))


def billed_for_error(error: Exception, reserved: int) -> Billed:
    """Everything asked for when the call may have been processed, else nothing."""
    if not isinstance(error, LushaError):
        return Billed(reserved, f"error: {type(error).__name__}")
    return Billed(reserved if maybe_billed(error) else 0, failed_status(error))


# -- the resource ------------------------------------------------------------------------------------------
NO_KEY = "no LUSHA_API_KEY"
DISABLED = "Lusha fallback disabled (ENABLE_LUSHA_FALLBACK)"


class NullLushaClient(NullClient):
    """No Lusha tonight (no key, or the fallback switched off): companies keep their site contacts."""


class LushaResource(dg.ConfigurableResource):
    """Builds the run's :class:`LushaClient` once, when the run starts.

    The key comes from the run's settings (``LUSHA_API_KEY``), never from a field, so it cannot
    appear in run config or the UI; without it, or with ``ENABLE_LUSHA_FALLBACK`` off, the client is
    a :class:`NullLushaClient`. ``base_url`` left unset takes ``LUSHA_BASE_URL``.
    """

    settings: PipelineSettings
    base_url: str | None = None
    timeout_s: float = 30.0
    max_in_flight: int = MAX_IN_FLIGHT

    _client: LushaClient | NullLushaClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = self.settings.settings
        key = (settings.secret("lusha_api_key") or "").strip()
        if not settings.enable_lusha_fallback:
            self._client = NullLushaClient(DISABLED)
        elif not key:
            self._client = NullLushaClient(NO_KEY)
        else:
            self._client = LushaClient(key, base_url=self.base_url or settings.lusha_base_url or DEFAULT_BASE_URL,
                                       timeout_s=self.timeout_s, max_in_flight=self.max_in_flight)

    def get_client(self) -> LushaClient | NullLushaClient:
        if self._client is None:
            raise RuntimeError("LushaResource is used outside a run; Dagster builds its client at run start")
        return self._client
