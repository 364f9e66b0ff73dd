"""Bearer tokens: issued once, stored as a SHA-256 digest, each with a role and maybe one tenant."""
from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets

from nightly_pipeline.db import Database
from nightly_pipeline.db import admin_api as admin_db

ROLES = ("viewer", "operator", "admin")
TOKEN_PREFIX = "npa_"
TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MAX_TOKEN_LENGTH = 200


class TokenRequestError(ValueError):
    """A token that cannot be issued as asked (bad name, role or tenant binding)."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's name, role and the tenant it is bound to, if any."""

    token_id: int
    name: str
    role: str
    tenant_id: int | None

    def may(self, role: str) -> bool:
        """Roles nest: an operator may do what a viewer may, an admin what an operator may."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, tenant_id: int) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id

    @property
    def label(self) -> str:
        return f"api:{self.name}"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_request(name: str, role: str, tenant_id: int | None) -> None:
    if not TOKEN_NAME.match(name):
        raise TokenRequestError(f"token name must be 1 to 63 lowercase letters, digits, '.', '_' or '-' "
                                f"starting with a letter or digit, got {name!r}")
    if role not in ROLES:
        raise TokenRequestError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "admin" and tenant_id is not None:
        raise TokenRequestError("an admin token manages every token, so it cannot be bound to a tenant")
    if tenant_id is not None and tenant_id < 1:
        raise TokenRequestError(f"tenant id must be a positive integer, got {tenant_id}")


def issue_token(db: Database, name: str, role: str, tenant_id: int | None,
                created_by: str) -> tuple[admin_db.TokenRecord, str]:
    """Store a new token's digest and return the token itself, which is never stored or shown again."""
    check_request(name, role, tenant_id)
    token = new_token()
    with db.shared() as conn:
        record = admin_db.create_token(conn, name, role, tenant_id, digest(token), created_by)
    return record, token


def authenticate(db: Database, token: str) -> admin_db.TokenRecord | None:
    """The token's record (revoked ones too), or None for a token we never issued."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    with db.shared() as conn:
        return admin_db.authenticate(conn, digest(token))
