"""Logged-in odoorpc clients for the tenants' Odoo instances.

Each tenant's ``odoo_connections`` row names the URL, database and user, and the *name* of the
environment variable that holds the password; the password itself is read only when connecting and
never stored, logged or put in run metadata.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import dagster as dg
import odoorpc
from pydantic import Field

from nightly_pipeline.db.tenants import OdooConnection
from nightly_pipeline.odoo_sync.sync import (
    TRANSPORT_ERRORS,
    OdooLoginError,
    OdooSyncError,
    OdooUnavailable,
)

_PROTOCOLS = {"http": ("jsonrpc", 80), "https": ("jsonrpc+ssl", 443)}


class OdooConfigError(OdooSyncError):
    """A connection row that cannot work (bad URL, password variable unset)."""


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
    """The password from the variable the connection row names; the error names only the variable."""
    value = (os.environ if environ is None else environ).get(connection.password_env)
    if not value:
        raise OdooConfigError(f"environment variable {connection.password_env} (the Odoo password) is not set")
    return value


class OdooResource(dg.ConfigurableResource):
    """Connects to a tenant's Odoo over JSON-RPC; holds no credentials itself."""

    timeout_s: float = Field(30.0, gt=0)

    def connect(self, connection: OdooConnection, password: str) -> odoorpc.ODOO:
        """A logged-in client. Unreachable → :class:`OdooUnavailable`; refused login → :class:`OdooLoginError`."""
        protocol, host, port = endpoint(connection.url)
        where = f"{host}:{port}"
        try:
            # version unset: the constructor asks the server, so any supported Odoo release works.
            client = odoorpc.ODOO(host, protocol=protocol, port=port, timeout=self.timeout_s)
            client.login(connection.db_name, connection.username, password)
        except TRANSPORT_ERRORS as exc:
            raise OdooUnavailable(f"Odoo at {where} unreachable: {type(exc).__name__}: {exc}") from exc
        except odoorpc.error.RPCError:
            # Odoo's message can echo the request; say only which login failed.
            raise OdooLoginError(f"Odoo at {where} refused the login of {connection.username!r} "
                                 f"to database {connection.db_name!r}") from None
        return client
