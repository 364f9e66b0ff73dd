"""The admin API's records: bearer tokens (by digest), the audit trail and the submission ledger.

These tables hold no tenant data and are read in shared transactions; see migration 0011.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import psycopg


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    token_id: int
    name: str
    role: str
    tenant_id: int | None
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    action: str
    outcome: str
    token_id: int | None = None
    token_name: str | None = None
    role: str | None = None
    tenant: int | None = None
    http_status: int | None = None
    detail: str = ""
    client: str | None = None


class TokenNameTaken(ValueError):
    pass


class TokenNotFound(LookupError):
    pass


class UnknownTenant(LookupError):
    pass


_TOKEN_COLUMNS = """token_id, name, role, bound_tenant_id AS tenant_id, created_by, created_at, last_used_at,
                    revoked_at"""


def create_token(conn: psycopg.Connection, name: str, role: str, tenant_id: int | None, digest: str,
                 created_by: str) -> TokenRecord:
    try:
        with conn.transaction():
            row = conn.execute(
                f"""INSERT INTO api_tokens (name, role, bound_tenant_id, token_sha256, created_by)
                    VALUES (%s, %s, %s, %s, %s) RETURNING {_TOKEN_COLUMNS}""",
                (name, role, tenant_id, digest, created_by)).fetchone()
    except psycopg.errors.UniqueViolation:
        raise TokenNameTaken(f"an active token named {name!r} exists; revoke it first or choose another name") \
            from None
    except psycopg.errors.ForeignKeyViolation:
        raise UnknownTenant(f"no tenant with id {tenant_id}") from None
    return TokenRecord(**row)


def authenticate(conn: psycopg.Connection, digest: str) -> TokenRecord | None:
    """The token with this digest (revoked ones too, so a refusal can name them); marks an active one used."""
    row = conn.execute(
        f"""UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = %s AND revoked_at IS NULL
            RETURNING {_TOKEN_COLUMNS}""", (digest,)).fetchone()
    if row is None:
        row = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_sha256 = %s",
                           (digest,)).fetchone()
    return TokenRecord(**row) if row else None


def list_tokens(conn: psycopg.Connection, *, include_revoked: bool = True) -> list[TokenRecord]:
    rows = conn.execute(f"""SELECT {_TOKEN_COLUMNS} FROM api_tokens
                            WHERE %s OR revoked_at IS NULL ORDER BY name, created_at""",
                        (include_revoked,)).fetchall()
    return [TokenRecord(**r) for r in rows]


def revoke_token(conn: psycopg.Connection, name: str) -> TokenRecord:
    row = conn.execute(f"""UPDATE api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL
                           RETURNING {_TOKEN_COLUMNS}""", (name,)).fetchone()
    if row is None:
        raise TokenNotFound(f"no active token named {name!r}")
    return TokenRecord(**row)


def record_audit(conn: psycopg.Connection, entry: AuditEntry) -> None:
    conn.execute("""INSERT INTO api_audit (token_id, token_name, role, action, tenant, outcome, http_status, detail,
                                           client)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                 (entry.token_id, entry.token_name, entry.role, entry.action, entry.tenant, entry.outcome,
                  entry.http_status, entry.detail[:1000], entry.client))


def audit_trail(conn: psycopg.Connection, *, limit: int = 100, since: dt.datetime | None = None,
                action: str | None = None, token_name: str | None = None) -> list[dict]:
    """Newest first."""
    return conn.execute(
        """SELECT audit_id, at, token_name, role, action, tenant, outcome, http_status, detail, client
           FROM api_audit
           WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s)
             AND (%(action)s::text IS NULL OR action = %(action)s)
             AND (%(token)s::text IS NULL OR token_name = %(token)s)
           ORDER BY at DESC, audit_id DESC LIMIT %(limit)s""",
        {"since": since, "action": action, "token": token_name, "limit": limit}).fetchall()


def reserve_submission(conn: psycopg.Connection, token_id: int, per_minute: int) -> float | None:
    """Take one of the token's submissions for the sliding minute.

    Returns None when taken, else the seconds until the oldest counted submission leaves the window.
    A transaction-level advisory lock per token serializes concurrent requests from any process.
    """
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('api-submissions', %s))", (token_id,))
    conn.execute("""DELETE FROM api_submissions
                    WHERE token_id = %s AND submitted_at < clock_timestamp() - interval '1 hour'""", (token_id,))
    row = conn.execute(
        """SELECT count(*) AS used, min(submitted_at) AS oldest,
                  extract(epoch FROM min(submitted_at) + interval '1 minute' - clock_timestamp()) AS wait_s
           FROM api_submissions WHERE token_id = %s AND submitted_at > clock_timestamp() - interval '1 minute'""",
        (token_id,)).fetchone()
    if row["used"] >= per_minute:
        return max(float(row["wait_s"] or 0.0), 0.0)
    conn.execute("INSERT INTO api_submissions (token_id) VALUES (%s)", (token_id,))
    return None


def ping(conn: psycopg.Connection) -> None:
    conn.execute("SELECT 1").fetchone()
