"""ZeroBounce API v2 sandbox: single and batch validation, credits and usage, served under ``/v2``
so one server stands in for both the API host and the bulk host (vendor-apis.md §3).

Verdicts are a pure function of ``(seed, address)``:

* a local part that names a status forces it: ``valid.*``, ``invalid.*``, ``catchall.*``,
  ``unknown.*``, ``spamtrap.*``, ``abuse.*``, ``donotmail.*`` (also ``valid@…`` or ``valid+x@…``);
* a catch-all domain (its label contains ``catchall``, or a seeded ``catch_all_domain_rate`` of
  company domains) answers ``catch-all`` for every mailbox, as real catch-all servers do;
* role mailboxes (``info@``, ``sales@`` …) are ``do_not_mail`` / ``role_based`` (``role_based_catch_all``
  on a catch-all domain), which is where ZeroBounce files them;
* everything else draws from a seeded hash: overall about 70 % valid, 10 % invalid, 10 % catch-all,
  6 % unknown and the rest spamtrap / abuse / do_not_mail.

Errors other than the batch block come back as HTTP 200 with ``{"error": …}``, like the vendor.
More than ``batch_per_minute`` ``validatebatch`` calls per key inside a rolling minute are refused
with HTTP 429, and every batch call with that key stays refused for ``batch_block_s`` seconds from
that point (the vendor's pages speak of blocks from one minute to one hour; the default here is the
hour, the longest, so a client that overruns the limit learns what it costs). The 429 carries no
``Retry-After``: the vendor documents none, so the wait is only stated in the error text. The
``validate`` endpoint's 50,000-per-10-s limit is far beyond what the product sends and is not modelled.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web
from email_validator import EmailNotValidError, validate_email

from nightly_pipeline_sandbox.base import FaultConfig, LatencyModel, SandboxServer
from nightly_pipeline_sandbox.vendors_common import (
    FREE_MAIL_DOMAINS, RollingWindow, stable_fraction, stable_int,
)

BAD_KEY_OR_NO_CREDITS = "Invalid API Key or your account ran out of credits"
STATUSES = ("valid", "invalid", "catch-all", "unknown", "spamtrap", "abuse", "do_not_mail")

_FORCED_STATUS = {"valid": "valid", "invalid": "invalid", "catchall": "catch-all", "unknown": "unknown",
                  "spamtrap": "spamtrap", "abuse": "abuse", "donotmail": "do_not_mail"}
_FORCED_LOCAL = re.compile(r"^(" + "|".join(_FORCED_STATUS) + r")(?:[._+-]|$)")
ROLE_MAILBOXES = frozenset({
    "info", "sales", "admin", "contact", "contactus", "hello", "enquiries", "enquiry", "inquiries", "support",
    "hr", "careers", "jobs", "recruitment", "office", "marketing", "accounts", "billing", "finance", "team",
    "mail", "webmaster", "postmaster", "noreply", "no-reply", "service", "customerservice", "feedback",
    "general", "operations",
})
_TYPO_DOMAINS = {"gmial.com": "gmail.com", "gmai.com": "gmail.com", "gnail.com": "gmail.com",
                 "hotmial.com": "hotmail.com", "yaho.com": "yahoo.com", "outlok.com": "outlook.com"}
# Shares of the mailboxes on ordinary (not catch-all) domains; with 10 % catch-all domains on top
# the overall mix is about 70 / 10 / 10 / 6 / 4.
_MAILBOX_MIX: tuple[tuple[str, float], ...] = (
    ("valid", 70.0), ("invalid", 10.0), ("unknown", 6.0), ("spamtrap", 1.5), ("abuse", 1.5),
    ("do_not_mail", 1.0))
_SUB_STATUSES: dict[str, tuple[str, ...]] = {
    "valid": ("",), "catch-all": ("",), "spamtrap": ("",), "abuse": ("",),
    "invalid": ("mailbox_not_found", "mailbox_not_found", "mailbox_not_found", "does_not_accept_mail",
                "no_dns_entries"),
    "unknown": ("greylisted", "mail_server_temporary_error", "timeout_exceeded", "mail_server_did_not_respond",
                "antispam_system"),
    "do_not_mail": ("global_suppression", "possible_trap", "toxic", "disposable"),
}
_REPORTED_SUB_STATUSES = tuple(sorted(
    {s for choices in _SUB_STATUSES.values() for s in choices if s}
    | {"role_based", "role_based_catch_all", "failed_syntax_check", "possible_typo"}))
_MAIL_HOSTS = (("google", "aspmx.l.google.com"), ("microsoft", "{tenant}.mail.protection.outlook.com"),
               ("zoho", "mx.zoho.com"), ("", "mail.{domain}"))


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: str
    sub_status: str
    did_you_mean: str | None = None


@dataclasses.dataclass
class _BatchAccount:
    window: RollingWindow = dataclasses.field(default_factory=lambda: RollingWindow(60.0))
    arrivals: RollingWindow = dataclasses.field(default_factory=lambda: RollingWindow(60.0))
    blocked_until: float = float("-inf")


class ZeroBounceServer(SandboxServer):
    name = "zerobounce"

    def __init__(self, *, seed: int = 7, api_keys: set[str] | None = None, credits: int = 100_000,
                 batch_per_minute: int = 5, batch_max: int = 200, batch_block_s: float = 3600.0,
                 catch_all_domain_rate: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 latency: LatencyModel | None = None, faults: FaultConfig | None = None) -> None:
        super().__init__(seed=seed, latency=latency, faults=faults)
        self.api_keys = api_keys
        self.initial_credits = credits
        self.batch_per_minute, self.batch_max, self.batch_block_s = batch_per_minute, batch_max, batch_block_s
        self.catch_all_domain_rate = catch_all_domain_rate
        self.clock = clock
        self._state_lock = threading.Lock()
        self._reset_state()

    # -- SandboxServer ---------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/validate", self._validate)
        app.router.add_post("/v2/validatebatch", self._validate_batch)
        app.router.add_get("/v2/getcredits", self._get_credits)
        app.router.add_get("/v2/getapiusage", self._get_api_usage)

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._state_lock:
            stats.update({
                "calls_by_endpoint": dict(self._calls),
                "credits_used": self.initial_credits - self._credits,
                "credits_remaining": self._credits,
                "addresses_validated": sum(self._statuses.values()),
                "by_result_status": dict(self._statuses),
                "batch_refusals": self._batch_refusals,
                "error_bodies": self._error_bodies,
                "max_batch_calls_in_60s": max((a.arrivals.peak for a in self._batch_accounts.values()), default=0),
            })
        return stats

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self._credits = self.initial_credits
        self._calls: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._sub_statuses: Counter[str] = Counter()
        self._batch_accounts: dict[str, _BatchAccount] = {}
        self._batch_refusals = 0
        self._error_bodies = 0

    # -- verdicts --------------------------------------------------------------------------------
    def verdict(self, address: str) -> Verdict:
        """What the sandbox answers for ``address``; a pure function of the seed and the address."""
        address = address.strip().lower()
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError:
            return Verdict("invalid", "failed_syntax_check")
        local, _, domain = address.rpartition("@")
        if forced := _FORCED_LOCAL.match(local):
            status = _FORCED_STATUS[forced.group(1)]
            return Verdict(status, self._sub_status(status, address))
        if domain in _TYPO_DOMAINS:
            return Verdict("invalid", "possible_typo", _TYPO_DOMAINS[domain])
        catch_all = self.is_catch_all_domain(domain)
        if local in ROLE_MAILBOXES:
            return Verdict("do_not_mail", "role_based_catch_all" if catch_all else "role_based")
        if catch_all:
            return Verdict("catch-all", "")
        status = _weighted_pick(_MAILBOX_MIX, stable_fraction(self.seed, "zb-status", address))
        return Verdict(status, self._sub_status(status, address))

    def is_catch_all_domain(self, domain: str) -> bool:
        if domain in FREE_MAIL_DOMAINS:
            return False
        return "catchall" in domain or stable_fraction(self.seed, "zb-catchall", domain) < self.catch_all_domain_rate

    def _sub_status(self, status: str, address: str) -> str:
        choices = _SUB_STATUSES[status]
        return choices[stable_int(self.seed, "zb-sub", address, modulo=len(choices))]

    def _result(self, address: str) -> dict[str, Any]:
        verdict = self.verdict(address)
        local, _, domain = address.strip().lower().rpartition("@")
        has_dns = verdict.sub_status not in ("no_dns_entries", "failed_syntax_check", "possible_typo")
        provider, mx_record = self._mail_host(domain) if has_dns else ("", "")
        first, last = _names_from_local_part(local)
        return {
            "address": address, "status": verdict.status, "sub_status": verdict.sub_status, "account": local,
            "domain": domain, "did_you_mean": verdict.did_you_mean,
            "domain_age_days": str(stable_int(self.seed, "zb-age", domain, modulo=9000) + 60) if has_dns else None,
            "free_email": domain in FREE_MAIL_DOMAINS, "mx_found": "true" if has_dns else "false",
            "mx_record": mx_record, "smtp_provider": provider, "firstname": first, "lastname": last,
            "gender": None, "country": None, "region": None, "city": None, "zipcode": None,
            "processed_at": _processed_at(),
        }

    def _mail_host(self, domain: str) -> tuple[str, str]:
        provider, pattern = _MAIL_HOSTS[stable_int(self.seed, "zb-mx", domain, modulo=len(_MAIL_HOSTS))]
        return provider, pattern.format(domain=domain, tenant=domain.replace(".", "-"))

    def _validate_charged(self, address: str) -> dict[str, Any] | None:
        """Validate one address and bill it; ``None`` when the account has no credit left."""
        with self._state_lock:
            if self._credits < 1:
                return None
        result = self._result(address)
        with self._state_lock:
            if result["status"] != "unknown":
                self._credits -= 1
            self._statuses[result["status"]] += 1
            self._sub_statuses[result["sub_status"]] += 1
        return result

    # -- endpoints -------------------------------------------------------------------------------
    def _key_accepted(self, key: str) -> bool:
        return bool(key) and (self.api_keys is None or key in self.api_keys)

    def _count_call(self, endpoint: str) -> None:
        with self._state_lock:
            self._calls[endpoint] += 1

    def _error(self, message: str, status: int = 200) -> web.Response:
        with self._state_lock:
            self._error_bodies += 1
        return web.json_response({"error": message}, status=status)

    async def _validate(self, request: web.Request) -> web.Response:
        self._count_call("validate")
        query = request.query
        if not self._key_accepted(query.get("api_key", "")):
            return self._error(BAD_KEY_OR_NO_CREDITS)
        address = query.get("email", "")
        if not address.strip():
            return self._error("Missing parameter: email")
        result = self._validate_charged(address)
        return web.json_response(result) if result is not None else self._error(BAD_KEY_OR_NO_CREDITS)

    async def _validate_batch(self, request: web.Request) -> web.Response:
        self._count_call("validatebatch")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error("The request body must be a JSON object")
        key = body.get("api_key")
        if not isinstance(key, str) or not self._key_accepted(key):
            return self._error(BAD_KEY_OR_NO_CREDITS)
        if (refusal := self._batch_refusal(key)) is not None:
            return refusal
        batch = body.get("email_batch")
        if not isinstance(batch, list) or not batch:
            return self._error("email_batch must be a non-empty list")
        if len(batch) > self.batch_max:
            return self._error(f"Too many emails: at most {self.batch_max} email addresses per batch request")
        with self._state_lock:
            if self._credits < 1:
                return self._error(BAD_KEY_OR_NO_CREDITS)
        results, errors = [], []
        for item in batch:
            address = item.get("email_address") if isinstance(item, dict) else None
            if not isinstance(address, str) or not address.strip():
                errors.append({"error": "email_address is required", "email_address": str(address or "")})
                continue
            result = self._validate_charged(address)
            if result is None:
                errors.append({"error": BAD_KEY_OR_NO_CREDITS, "email_address": address})
            else:
                results.append(result)
        return web.json_response({"email_batch": results, "errors": errors})

    def _batch_refusal(self, key: str) -> web.Response | None:
        """The 429 for a call over the per-minute batch limit or inside the block that follows it."""
        now = self.clock()
        with self._state_lock:
            account = self._batch_accounts.setdefault(key, _BatchAccount())
            account.arrivals.add(now)
            if now < account.blocked_until:
                self._batch_refusals += 1
                wait = math.ceil(account.blocked_until - now)
                message = (f"validatebatch is blocked for this API key for another {wait} seconds after "
                           f"exceeding {self.batch_per_minute} calls per minute")
                return web.json_response({"error": message}, status=429)
            if account.window.total(now) >= self.batch_per_minute:
                self._batch_refusals += 1
                account.blocked_until = now + self.batch_block_s
                message = (f"validatebatch allows {self.batch_per_minute} calls per minute; this API key is "
                           f"blocked for {round(self.batch_block_s)} seconds")
                return web.json_response({"error": message}, status=429)
            account.window.add(now)
        return None

    async def _get_credits(self, request: web.Request) -> web.Response:
        self._count_call("getcredits")
        if not self._key_accepted(request.query.get("api_key", "")):
            return web.json_response({"Credits": "-1"})
        with self._state_lock:
            return web.json_response({"Credits": str(self._credits)})

    async def _get_api_usage(self, request: web.Request) -> web.Response:
        self._count_call("getapiusage")
        query = request.query
        if not self._key_accepted(query.get("api_key", "")):
            return self._error(BAD_KEY_OR_NO_CREDITS)
        try:
            start, end = (dt.date.fromisoformat(query.get(name, "")) for name in ("start_date", "end_date"))
        except ValueError:
            return self._error("start_date and end_date are required as YYYY-MM-DD")
        with self._state_lock:
            usage: dict[str, Any] = {"total": sum(self._statuses.values())}
            usage.update({f"status_{s.replace('-', '_')}": self._statuses[s] for s in STATUSES})
            usage.update({f"sub_status_{s}": self._sub_statuses[s] for s in _REPORTED_SUB_STATUSES})
        usage.update({"start_date": f"{start.month}/{start.day}/{start.year}",
                      "end_date": f"{end.month}/{end.day}/{end.year}"})
        return web.json_response(usage)


def _weighted_pick(weights: tuple[tuple[str, float], ...], fraction: float) -> str:
    point = fraction * sum(weight for _, weight in weights)
    for value, weight in weights:
        point -= weight
        if point < 0:
            return value
    return weights[-1][0]


def _names_from_local_part(local: str) -> tuple[str | None, str | None]:
    """ZeroBounce fills names only when the mailbox spells them, as in ``first.last``."""
    match = re.fullmatch(r"([a-z]{2,})[._]([a-z]{2,})", local)
    if not match or local.split(".")[0] in _FORCED_STATUS:
        return None, None
    return match.group(1).title(), match.group(2).title()


def _processed_at() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
