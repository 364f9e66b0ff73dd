"""The tenants' Odoo instances over JSON-RPC: the odoorpc client, its resource and its errors.

Each tenant's ``odoo_connections`` row names the URL, database and user, and the *name* of the
environment variable that holds the password; the password itself is read only when connecting and
never stored, logged or put in run metadata.

odoorpc logs every JSON-RPC request at DEBUG and masks only a parameter *named* ``password``,
while ``login`` and ``execute_kw`` send the password positionally in ``args``; the filter installed
on its logger masks those positions, so turning on DEBUG logging never prints a tenant's password.
"""
from __future__ import annotations

import copy
import http.client
import logging
import os
import urllib.error
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import odoorpc
from pydantic import Field

from nightly_pipeline.db.tenants import OdooConnection
from nightly_pipeline.domain.odoo_connection import OdooConnectionRejected, check_odoo_connection
from nightly_pipeline.vendors.retrying import CallRetry, parse_retry_after

# urllib's URLError and HTTPError (5xx), refused or reset connections and timeouts are all OSErrors;
# a connection dropped mid-reply surfaces as an http.client exception.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
_PROTOCOLS = {"http": ("jsonrpc", 80), "https": ("jsonrpc+ssl", 443)}
# The logger odoorpc writes its JSON-RPC requests and responses to.
ODOORPC_RPC_LOGGER = "odoorpc.rpc.jsonrpclib"
MASK = "**********"
# Position of the password in ``params.args`` of the JSON-RPC services that take one: ``common``
# (login, authenticate: db, login, password, …) and ``object`` (execute, execute_kw: db, uid,
# password, …). The ``db`` service's methods take the master password first.
_PASSWORD_POSITION = {"common": 2, "object": 2, "db": 0}


# Answers of Odoo or of the proxy in front of it that mean the request was not carried out: a rate
# limit, or a gateway that could not hand it to Odoo. Only these are retried for a ``create``, which
# is not idempotent; a timeout or a reset mid-create fails the step instead, and the step's retry
# finds what the lost call may have created through the sync's matching.
_NOT_CARRIED_OUT = frozenset({429, 502, 503})
_METHODS_SAFE_TO_REPEAT = frozenset({"search_read", "search", "read", "search_count", "fields_get", "write"})


def _http_status(error: BaseException) -> int | None:
    return error.code if isinstance(error, urllib.error.HTTPError) else None


def is_transient(error: BaseException) -> bool:
    """A rate limit, a 5xx, a timeout or a dropped connection: worth asking again."""
    status = _http_status(error)
    if status is not None:
        return status == 429 or status >= 500
    return isinstance(error, TRANSPORT_ERRORS)


def is_not_carried_out(error: BaseException) -> bool:
    """Transient, and provably not acted on by Odoo (safe to repeat even for a ``create``)."""
    status = _http_status(error)
    if status is not None:
        return status in _NOT_CARRIED_OUT
    reason = getattr(error, "reason", None)
    return isinstance(error, ConnectionRefusedError) or isinstance(reason, ConnectionRefusedError)


def retry_after_of(error: BaseException) -> float | None:
    if isinstance(error, urllib.error.HTTPError) and error.headers is not None:
        return parse_retry_after(error.headers.get("Retry-After"))
    return None


def odoo_retries(*, base_wait_s: float, max_attempts: int) -> tuple[CallRetry, CallRetry]:
    """``(for calls safe to repeat, for creates)``."""
    return (CallRetry(is_transient, retry_after_of, max_attempts=max_attempts, base_wait_s=base_wait_s),
            CallRetry(is_not_carried_out, retry_after_of, max_attempts=max_attempts, base_wait_s=base_wait_s))


class OdooError(RuntimeError):
    """Base of the errors talking to a tenant's Odoo."""


class OdooUnavailable(OdooError):
    """Odoo could not be reached (refused, timed out, HTTP 5xx); the step should be retried."""


class OdooLoginError(OdooError):
    """Odoo answered but refused the login (wrong database, user or password)."""


class OdooConfigError(OdooError):
    """A connection row that cannot work (bad URL, password variable unset)."""


# -- keeping the password out of odoorpc's DEBUG log -------------------------------------------------
def masked_rpc_payload(data: Any) -> Any:
    """A copy of a JSON-RPC request with the password masked wherever odoorpc sends one.

    A call to a service this code does not know has all of its ``args`` masked: better an
    unreadable debug line than a leaked secret.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping):
        return data
    params = data["params"]
    masked = copy.deepcopy(dict(data))
    if "password" in params:
        masked["params"]["password"] = MASK
    args = params.get("args")
    if isinstance(args, Sequence) and not isinstance(args, str):
        position = _PASSWORD_POSITION.get(str(params.get("service")))
        masked["params"]["args"] = [MASK if position is None or index == position else value
                                    for index, value in enumerate(args)]
    return masked


class _MaskPasswords(logging.Filter):
    """Masks the password in odoorpc's ``(JSON,send)`` and ``(JSON,recv)`` records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping) and "data" in record.args:
            record.args = {**record.args, "data": masked_rpc_payload(record.args["data"])}
        return True


def _install_password_mask() -> None:
    logger = logging.getLogger(ODOORPC_RPC_LOGGER)
    if not any(isinstance(existing, _MaskPasswords) for existing in logger.filters):
        logger.addFilter(_MaskPasswords())


_install_password_mask()


# -- connection rows ---------------------------------------------------------------------------------
def endpoint(url: str) -> tuple[str, str, int]:
    """``(protocol, host, port)`` for odoorpc from an Odoo base URL such as ``https://crm.acme.sg``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in _PROTOCOLS or not parts.hostname:
        raise OdooConfigError(f"Odoo URL must be http(s)://host[:port], got scheme {parts.scheme!r}")
    if parts.path not in ("", "/") or parts.query:
        # odoorpc always posts to /jsonrpc at the root of the host.
        raise OdooConfigError("Odoo URL must not have a path or query: odoorpc talks to the server root")
    protocol, default_port = _PROTOCOLS[parts.scheme]
    return protocol, parts.hostname, parts.port or default_port


def password_from_env(connection: OdooConnection, environ: Mapping[str, str] | None = None) -> str:
    """The password from the variable the connection row names; the error names only the variable.

    A row written before the connection rules existed is checked again here, before the variable is
    read, so no secret is ever sent to a URL or read from a variable those rules refuse.
    """
    try:
        check_odoo_connection(connection.url, connection.password_env)
    except OdooConnectionRejected as exc:
        raise OdooConfigError(f"Odoo connection {exc.field} {exc}") from None
    value = (os.environ if environ is None else environ).get(connection.password_env)
    if not value:
        raise OdooConfigError(f"environment variable {connection.password_env} (the Odoo password) is not set")
    return value


# -- the client --------------------------------------------------------------------------------------
class OdooClient:
    """A logged-in tenant Odoo. Every call is one counted JSON-RPC ``execute_kw``; a failure to reach
    Odoo becomes :class:`OdooUnavailable`, while Odoo's own refusals (``odoorpc.error.RPCError``)
    pass through for the caller to judge."""

    def __init__(self, odoo: odoorpc.ODOO, where: str, *,
                 retries: tuple[CallRetry, CallRetry] | None = None) -> None:
        self._odoo = odoo
        self.where = where
        self.rpc_calls = 0
        self._retry, self._retry_create = retries or odoo_retries(base_wait_s=1.0, max_attempts=3)

    def call(self, model: str, method: str, *args: Any, context: Mapping[str, Any] | None = None,
             **kwargs: Any) -> Any:
        """``model.method(*args, **kwargs)`` in the user's context (``context`` adds to it); a
        transient failure is retried (see :mod:`nightly_pipeline.vendors.retrying`)."""
        merged = {**self._odoo.env.context, **(context or {})}
        retry = self._retry if method in _METHODS_SAFE_TO_REPEAT else self._retry_create

        def count(_: int) -> None:
            self.rpc_calls += 1

        try:
            return retry.call(lambda: self._odoo.execute_kw(model, method, list(args), {**kwargs, "context": merged}),
                              on_attempt=count)
        except TRANSPORT_ERRORS as exc:
            raise OdooUnavailable(f"Odoo unreachable at {self.where}: {type(exc).__name__}: {exc}") from exc

    def search_read(self, model: str, domain: Sequence[Any], fields: Sequence[str], **kwargs: Any) -> list[dict[str, Any]]:
        return self.call(model, "search_read", list(domain), fields=list(fields), **kwargs)

    def create(self, model: str, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Any:
        """The new record's id, or the list of ids when ``values`` is a list of records."""
        payload = dict(values) if isinstance(values, Mapping) else [dict(v) for v in values]
        return self.call(model, "create", payload)

    def write(self, model: str, ids: Sequence[int], values: Mapping[str, Any]) -> None:
        self.call(model, "write", list(ids), dict(values))


class OdooResource(dg.ConfigurableResource):
    """Connects to a tenant's Odoo over JSON-RPC; holds no credentials itself."""

    timeout_s: float = Field(30.0, gt=0)
    retry_attempts: int = Field(3, ge=1, description="attempts per JSON-RPC call before Odoo counts as unreachable")
    retry_base_wait_s: float = Field(1.0, ge=0, description="scale of the jittered exponential backoff")

    def connect(self, connection: OdooConnection, password: str) -> OdooClient:
        """A logged-in client. Unreachable → :class:`OdooUnavailable`; refused login → :class:`OdooLoginError`."""
        protocol, host, port = endpoint(connection.url)
        where = f"{host}:{port}"
        retries = odoo_retries(base_wait_s=self.retry_base_wait_s, max_attempts=self.retry_attempts)

        def log_in() -> odoorpc.ODOO:
            # version unset: the constructor asks the server, so any supported Odoo release works.
            odoo = odoorpc.ODOO(host, protocol=protocol, port=port, timeout=self.timeout_s)
            odoo.login(connection.db_name, connection.username, password)
            return odoo

        try:
            odoo = retries[0].call(log_in)
        except TRANSPORT_ERRORS as exc:
            raise OdooUnavailable(f"Odoo unreachable at {where}: {type(exc).__name__}: {exc}") from exc
        except odoorpc.error.RPCError:
            # Odoo's message can echo the request; say only which login failed.
            raise OdooLoginError(f"Odoo at {where} refused the login of {connection.username!r} "
                                 f"to database {connection.db_name!r}") from None
        return OdooClient(odoo, where, retries=retries)
