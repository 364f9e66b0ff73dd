"""What a tenant's Odoo connection may name, checked when it is added and again before connecting.

The password of a tenant's Odoo is read from an environment variable the connection names and sent
to the connection's URL. Both come from whoever registered the tenant, so without these rules one
could name ``OPENAI_API_KEY`` or ``DATABASE_URL`` and have it posted, possibly in clear text, to a
server they control.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# ODOO_PASSWORD as a whole word of an upper-case name: ODOO_PASSWORD, ODOO_PASSWORD_ACME,
# ACME_ODOO_PASSWORD. Vendor keys, database URLs and other process secrets never match.
PASSWORD_ENV_PATTERN = re.compile(r"(?:[A-Z][A-Z0-9]*_)*ODOO_PASSWORD(?:_[A-Z0-9]+)*")
PASSWORD_ENV_RULE = ("an environment variable with ODOO_PASSWORD as a word of its upper-case name "
                     "(ODOO_PASSWORD_ACME, ACME_ODOO_PASSWORD)")


class OdooConnectionRejected(ValueError):
    """A connection that must not be used; ``field`` names what is wrong (``url`` or ``password_env``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_password_env(name: str) -> str:
    if not PASSWORD_ENV_PATTERN.fullmatch(name):
        raise OdooConnectionRejected("password_env", f"must name {PASSWORD_ENV_RULE}, got {name!r}")
    return name


def check_odoo_url(url: str) -> str:
    """``url`` if it is an https server root (http only on loopback), else :class:`OdooConnectionRejected`."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises ValueError when the port is not a number
    except ValueError as exc:
        raise OdooConnectionRejected("url", f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise OdooConnectionRejected("url", f"must look like https://host[:port], got {parts.scheme or 'no'} scheme")
    if parts.username is not None or parts.password is not None:
        raise OdooConnectionRejected("url", "must not carry credentials: the password comes from its variable")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        # odoorpc always posts to /jsonrpc at the root of the host.
        raise OdooConnectionRejected("url", "must not have a path, query or fragment: odoorpc talks to the server root")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise OdooConnectionRejected("url", f"must use https: the password would cross the network to {host} "
                                            f"in clear text (http is accepted only for loopback)")
    return url.strip()


def check_odoo_connection(url: str, password_env: str) -> None:
    """Both rules; raise :class:`OdooConnectionRejected` naming the first one broken."""
    check_password_env(password_env)
    check_odoo_url(url)
