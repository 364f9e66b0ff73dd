"""ZeroBounce v2: single ``validate``, ``validatebatch`` on the bulk host, and ``getcredits``; the
client's resource, and what a call costs.

ZeroBounce reports most errors as HTTP 200 with ``{"error": …}``, so answers are judged by their
body, not their status code. A 429 or an error that speaks of a block is :class:`ZeroBounceThrottled`;
5xx, transport failures and unreadable answers are :class:`ZeroBounceUnavailable`; any other error
body (a bad key, no credits) is :class:`ZeroBounceRejected`. A call is retried by the shared policy
of :mod:`nightly_pipeline.vendors.retrying` only when it was provably not processed (throttled, 5xx,
connection refused), since a batch is billed; what is still unverified after that is verified on a
later night.

The key is a query parameter on GET calls, so it is part of the URL: error messages name the
endpoint only, and httpx's request log lines have the key masked.

The run's cap counts verifications, and ZeroBounce bills every result except ``unknown``: a call is
settled with what it billed, and a call that may have been processed (the connection failed after
it was sent) with every address it carried.
"""
import dataclasses
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Self

import dagster as dg
import httpx
from pydantic import PrivateAttr

from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.paid_call import Answer, Billed, NullClient
from nightly_pipeline.vendors.rate_limits import UNLIMITED, CallLimiter, KeyBlocked, key_fingerprint
from nightly_pipeline.vendors.retrying import CallRetry, parse_retry_after

DEFAULT_BASE_URL = "https://api.zerobounce.net/v2"
DEFAULT_BULK_BASE_URL = "https://bulkapi.zerobounce.net/v2"
MAX_BATCH_SIZE = 200
_MESSAGE_CHARS = 200
_THROTTLE_WORDS = ("block", "rate limit", "too many requests", "calls per minute")
_KEY_PARAM = "api_key"
VENDOR = "zerobounce"
# validatebatch calls are limited per key per rolling minute; a block covers every bucket of the key.
BATCH_BUCKET = "zerobounce.batch"
SINGLE_BUCKET = "zerobounce.single"
KEY_BLOCK = "zerobounce"
DEFAULT_BLOCK_S = 3600.0


@dataclasses.dataclass(frozen=True)
class BatchSlot:
    """A ``validatebatch`` call admitted by the key's limiter and not sent yet."""

    admitted_at: object


class ZeroBounceError(RuntimeError):
    pass


class ZeroBounceThrottled(ZeroBounceError):
    """ZeroBounce refused the call for its rate limit or blocked the key for a while."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ZeroBounceBatchRefused(ZeroBounceThrottled):
    """A batch call over the key's limit: ZeroBounce now blocks the key for an hour, so no retry helps."""


class ZeroBounceKeyBlocked(ZeroBounceThrottled):
    """The key is blocked by the vendor for longer than any retry waits: every process keeps off it."""


class ZeroBounceUnavailable(ZeroBounceError):
    """No usable answer. ``maybe_charged`` is True when the request may have been processed
    (the connection failed after it was sent), so the caller must assume it was billed."""

    def __init__(self, message: str, *, maybe_charged: bool = False) -> None:
        super().__init__(message)
        self.maybe_charged = maybe_charged


class ZeroBounceRejected(ZeroBounceError):
    """An error body such as an invalid key or an account out of credits."""


def is_not_processed(error: BaseException) -> bool:
    """Throttled, or unavailable before ZeroBounce could process (and bill) anything."""
    if isinstance(error, (ZeroBounceBatchRefused, ZeroBounceKeyBlocked)):
        return False
    return isinstance(error, ZeroBounceThrottled) or (
        isinstance(error, ZeroBounceUnavailable) and not error.maybe_charged)


ZEROBOUNCE_RETRY = CallRetry(is_not_processed, lambda error: getattr(error, "retry_after_s", None))


@dataclasses.dataclass(frozen=True)
class Validation:
    email: str
    status: str
    sub_status: str
    did_you_mean: str | None = None
    free_email: bool = False

    @property
    def charged(self) -> bool:
        """ZeroBounce never bills an ``unknown`` result."""
        return self.status != "unknown"


@dataclasses.dataclass(frozen=True)
class BatchItemError:
    email: str
    error: str


@dataclasses.dataclass(frozen=True)
class BatchResult:
    validations: tuple[Validation, ...]
    errors: tuple[BatchItemError, ...]

    @property
    def credits_charged(self) -> int:
        return sum(1 for v in self.validations if v.charged)


class _MaskApiKey(logging.Filter):
    """Masks ``api_key`` in the URLs httpx logs ("HTTP Request: GET …?api_key=…")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_has_key(arg) for arg in record.args):
            record.args = tuple(arg.copy_set_param(_KEY_PARAM, "***") if _has_key(arg) else arg
                                for arg in record.args)
        return True


def _has_key(value: Any) -> bool:
    return isinstance(value, httpx.URL) and _KEY_PARAM in value.params


def _install_log_mask() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _MaskApiKey) for f in httpx_logger.filters):
        httpx_logger.addFilter(_MaskApiKey())


_install_log_mask()


def _error_from_body(endpoint: str, message: str) -> ZeroBounceError:
    text = f"ZeroBounce {endpoint}: {message[:_MESSAGE_CHARS]}"
    if any(word in message.lower() for word in _THROTTLE_WORDS):
        return ZeroBounceThrottled(text)
    return ZeroBounceRejected(text)


def _validation(item: Mapping[str, Any], endpoint: str) -> Validation:
    address, status = item.get("address"), item.get("status")
    if not isinstance(address, str) or not isinstance(status, str) or not status:
        raise ZeroBounceUnavailable(f"ZeroBounce {endpoint} answered a result without address or status")
    did_you_mean = item.get("did_you_mean")
    return Validation(email=address.strip().lower(), status=status.strip().lower(),
                      sub_status=str(item.get("sub_status") or ""),
                      did_you_mean=did_you_mean if isinstance(did_you_mean, str) and did_you_mean else None,
                      free_email=item.get("free_email") in (True, "true", "True"))


class ZeroBounceClient:
    """``async with ZeroBounceClient(key, base_url=…, bulk_base_url=…) as zb:``, once per event loop:
    each ``async with`` opens the connections on the running loop and closes them on exit."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 bulk_base_url: str = DEFAULT_BULK_BASE_URL, timeout_s: float = 30.0,
                 batch_timeout_s: float = 150.0, transport: httpx.AsyncBaseTransport | None = None,
                 block_s: float = DEFAULT_BLOCK_S,
                 retry: CallRetry = ZEROBOUNCE_RETRY) -> None:
        if not api_key.strip():
            raise ValueError("a ZeroBounce API key is required")
        self._key = api_key.strip()
        # Paces calls to the key's limits across processes (set by the run; see rate_limits), and
        # how long every process keeps off the key once ZeroBounce has blocked it.
        self.limiter: CallLimiter = UNLIMITED
        self.key_fingerprint = key_fingerprint(VENDOR, self._key)
        self.block_s = block_s
        self._base_url = base_url.rstrip("/")
        self._bulk_base_url = bulk_base_url.rstrip("/")
        # A batch of 200 can take about 70 s at ZeroBounce (vendor-apis §3.2).
        self._batch_timeout_s = batch_timeout_s
        self._timeout_s = timeout_s
        self._transport = transport
        self._retry = retry
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"ZeroBounceClient(base_url={self._base_url!r}, bulk_base_url={self._bulk_base_url!r})"

    async def __aenter__(self) -> Self:
        if self._http is not None:
            raise RuntimeError("this ZeroBounceClient is already open on an event loop")
        self._http = httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport,
                                       headers={"accept": "application/json"})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def validate(self, email: str) -> Validation:
        body = await self._call(SINGLE_BUCKET, "validate", "GET", f"{self._base_url}/validate",
                                params={_KEY_PARAM: self._key, "email": email, "ip_address": ""})
        return _validation(body, "validate")

    async def batch_slot(self) -> BatchSlot:
        """Wait for a ``validatebatch`` slot in the key's windows, to fill the batch once it is held
        (see :meth:`validate_batch`); a slot left unused goes back with :meth:`return_batch_slot`."""
        return BatchSlot(await self._acquire(BATCH_BUCKET))

    async def return_batch_slot(self, slot: BatchSlot) -> None:
        await self.limiter.release(BATCH_BUCKET, slot.admitted_at)

    async def validate_batch(self, emails: Sequence[str], *, slot: BatchSlot | None = None) -> BatchResult:
        """One ``validatebatch`` call; its first attempt uses ``slot`` when given, a retry waits for its own."""
        if not 1 <= len(emails) <= MAX_BATCH_SIZE:
            raise ValueError(f"validatebatch takes 1..{MAX_BATCH_SIZE} addresses, got {len(emails)}")
        payload = {_KEY_PARAM: self._key,
                   "email_batch": [{"email_address": email, "ip_address": None} for email in emails]}
        try:
            body = await self._call(BATCH_BUCKET, "validatebatch", "POST", f"{self._bulk_base_url}/validatebatch",
                                    json=payload, timeout=self._batch_timeout_s, slot=slot)
        except ZeroBounceKeyBlocked:
            raise
        except ZeroBounceThrottled as error:
            await self.limiter.block(KEY_BLOCK, self.block_s, str(error))
            raise
        items = body.get("email_batch")
        if not isinstance(items, list):
            raise ZeroBounceUnavailable("ZeroBounce validatebatch answered without email_batch", maybe_charged=True)
        errors = tuple(BatchItemError(str(e.get("email_address") or "").strip().lower(), str(e.get("error") or ""))
                       for e in body.get("errors") or [] if isinstance(e, Mapping))
        return BatchResult(tuple(_validation(item, "validatebatch") for item in items if isinstance(item, Mapping)),
                           errors)

    async def credits(self) -> int:
        body = await self._call(SINGLE_BUCKET, "getcredits", "GET", f"{self._base_url}/getcredits", params={_KEY_PARAM: self._key})
        try:
            credits = int(str(body.get("Credits")))
        except ValueError:
            raise ZeroBounceUnavailable("ZeroBounce getcredits answered without a credit count") from None
        if credits < 0:
            raise ZeroBounceRejected("ZeroBounce getcredits: the API key is not valid")
        return credits

    async def _acquire(self, bucket: str) -> object:
        try:
            return await self.limiter.acquire(bucket)
        except KeyBlocked as error:
            raise ZeroBounceKeyBlocked(f"ZeroBounce: {error}") from None

    async def _call(self, bucket: str, endpoint: str, method: str, url: str, *,
                    params: Mapping[str, str] | None = None, json: Any = None,
                    timeout: float | None = None, slot: BatchSlot | None = None) -> dict[str, Any]:
        held = [slot]

        def attempt() -> Awaitable[dict[str, Any]]:
            first_slot, held[0] = held[0], None
            return self._call_once(bucket, endpoint, method, url, params=params, json=json, timeout=timeout,
                                   slot=first_slot)
        return await self._retry.acall(attempt)

    async def _call_once(self, bucket: str, endpoint: str, method: str, url: str, *,
                         params: Mapping[str, str] | None, json: Any, timeout: float | None,
                         slot: BatchSlot | None = None) -> dict[str, Any]:
        if self._http is None:
            raise RuntimeError("open the client on this event loop first: `async with zerobounce:`")
        # Every attempt, a retry included, waits for its own slot in the key's windows.
        if slot is None:
            await self._acquire(bucket)
        extra = {"timeout": timeout} if timeout is not None else {}
        try:
            response = await self._http.request(method, url, params=params, json=json, **extra)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise ZeroBounceUnavailable(f"ZeroBounce {endpoint}: {type(error).__name__}") from None
        except httpx.HTTPError as error:
            raise ZeroBounceUnavailable(f"ZeroBounce {endpoint}: {type(error).__name__}", maybe_charged=True) from None
        return self._body(endpoint, response)

    def _body(self, endpoint: str, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 429:
            detail = message if isinstance(message, str) and message else "rate limited"
            refusal = ZeroBounceBatchRefused if endpoint == "validatebatch" else ZeroBounceThrottled
            raise refusal(f"ZeroBounce {endpoint} answered 429: {detail[:_MESSAGE_CHARS]}",
                                      retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 500:
            raise ZeroBounceUnavailable(f"ZeroBounce {endpoint} answered {response.status_code}")
        if isinstance(message, str) and message:
            raise _error_from_body(endpoint, message)
        if not isinstance(body, dict):
            raise ZeroBounceUnavailable(
                f"ZeroBounce {endpoint} answered {response.status_code} with an unreadable body",
                maybe_charged=response.status_code == 200)
        if response.status_code != 200:
            raise ZeroBounceRejected(f"ZeroBounce {endpoint} answered {response.status_code}")
        return body


# -- what a call costs ------------------------------------------------------------------------------------
def batch_answer(result: BatchResult) -> Answer[BatchResult]:
    return Answer(result, Billed(result.credits_charged, "ok"))


def billed_for_error(error: Exception, reserved: int) -> Billed:
    """Every address of the call when it may have been processed, else nothing."""
    maybe_charged = not isinstance(error, ZeroBounceError) or (
        isinstance(error, ZeroBounceUnavailable) and error.maybe_charged)
    return Billed(reserved if maybe_charged else 0, f"error: {type(error).__name__}")


# -- the resource ------------------------------------------------------------------------------------------
NO_KEY = "no ZEROBOUNCE_API_KEY"


class NullZeroBounceClient(NullClient):
    """No ZeroBounce tonight: addresses stay unverified."""


class ZeroBounceResource(dg.ConfigurableResource):
    """Builds the run's :class:`ZeroBounceClient` once, when the run starts.

    ``base_url`` serves ``validate`` and ``getcredits``, ``bulk_base_url`` serves ``validatebatch``
    (the sandbox answers both under one URL); left unset they take ``ZEROBOUNCE_BASE_URL`` and
    ``ZEROBOUNCE_BULK_BASE_URL``. The key comes from the run's settings (``ZEROBOUNCE_API_KEY``),
    never from a field; without it the client is a :class:`NullZeroBounceClient`.
    """

    settings: PipelineSettings
    base_url: str | None = None
    bulk_base_url: str | None = None
    timeout_s: float = 30.0
    batch_timeout_s: float = 150.0

    _client: ZeroBounceClient | NullZeroBounceClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = self.settings.settings
        key = (settings.secret("zerobounce_api_key") or "").strip()
        if not key:
            self._client = NullZeroBounceClient(NO_KEY)
            return
        self._client = ZeroBounceClient(
            key, base_url=self.base_url or settings.zerobounce_base_url or DEFAULT_BASE_URL,
            bulk_base_url=self.bulk_base_url or settings.zerobounce_bulk_base_url or DEFAULT_BULK_BASE_URL,
            timeout_s=self.timeout_s, batch_timeout_s=self.batch_timeout_s, block_s=settings.zerobounce_block_s)

    def get_client(self) -> ZeroBounceClient | NullZeroBounceClient:
        if self._client is None:
            raise RuntimeError("ZeroBounceResource is used outside a run; Dagster builds its client at run start")
        return self._client
