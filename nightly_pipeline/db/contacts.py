"""Contacts, their primary flags, the Lusha lookup cache and the email verification cache.

Every function runs inside the caller's tenant transaction (``Database.tenant``) and reads the
tenant from it (``current_tenant_id()``), so a query is right even before row-level security
filters it and a row written here belongs to that tenant.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from nightly_pipeline.db.rows import Verdict
from nightly_pipeline.domain.contacts import Contact, merge_contacts, sources_from_label

_CONTACT_COLUMNS = ("company_id", "email", "full_name", "title", "email_kind", "on_company_domain", "phone",
                    "source", "vendor_ref", "seniority", "linkedin")


def _contact_row(contact: Contact) -> dict[str, Any]:
    vendor_ref = {**contact.vendor_ref, "name_source": contact.name_source}
    return {"company_id": contact.company_id, "email": contact.email,
            "full_name": contact.full_name, "title": contact.title, "email_kind": contact.email_kind,
            "on_company_domain": contact.on_company_domain, "phone": contact.phone, "source": contact.source,
            "vendor_ref": Jsonb(vendor_ref), "seniority": contact.seniority, "linkedin": contact.linkedin}


def _contact(row: Mapping[str, Any]) -> Contact:
    vendor_ref = dict(row["vendor_ref"] or {})
    name_source = vendor_ref.pop("name_source", None)
    return Contact(
        company_id=row["company_id"], email=row["email"], email_kind=row["email_kind"] or "personal",
        on_company_domain=bool(row["on_company_domain"]), full_name=row["full_name"], title=row["title"],
        seniority=row["seniority"] or 0, phone=row["phone"], linkedin=row["linkedin"],
        sources=sources_from_label(row["source"]), name_source=name_source, vendor_ref=vendor_ref)


def _lock_companies(conn: psycopg.Connection, company_ids: Iterable[int]) -> None:
    # Two runs of one tenant may write the same company: each merges with what the other stored.
    for company_id in sorted(set(company_ids)):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('contacts:' || %s::text, current_tenant_id()))",
                     (company_id,))


def upsert_contacts(conn: psycopg.Connection, contacts: Sequence[Contact]) -> list[Contact]:
    """Write ``contacts``, each merged with the row already stored for its (company, address).

    Returns the contacts as stored. Re-runs update rows, never add them; ``is_primary`` and
    ``first_seen_at`` are left as they were.
    """
    incoming: dict[tuple[int, str], Contact] = {}
    for contact in contacts:
        key = (contact.company_id, contact.email)
        incoming[key] = merge_contacts(incoming[key], contact) if key in incoming else contact
    if not incoming:
        return []
    _lock_companies(conn, (company_id for company_id, _ in incoming))
    company_ids, emails = zip(*incoming)
    stored = {(row["company_id"], row["email"]): _contact(row) for row in conn.execute(
        f"""SELECT {', '.join(_CONTACT_COLUMNS)} FROM contacts
            WHERE tenant_id = current_tenant_id()
              AND (company_id, email) IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))""",
        (list(company_ids), list(emails))).fetchall()}
    merged = [merge_contacts(stored[key], contact) if key in stored else contact for key, contact in incoming.items()]
    updates = ", ".join(f"{column} = excluded.{column}" for column in _CONTACT_COLUMNS[2:])
    with conn.cursor() as cursor:
        cursor.executemany(
            f"""INSERT INTO contacts ({', '.join(_CONTACT_COLUMNS)})
                VALUES ({', '.join(f'%({c})s' for c in _CONTACT_COLUMNS)})
                ON CONFLICT (tenant_id, company_id, email) DO UPDATE SET {updates}, updated_at = now()""",
            [_contact_row(contact) for contact in merged])
    return merged


def contacts_of_companies(conn: psycopg.Connection, company_ids: Iterable[int]) -> dict[int, list[Contact]]:
    rows = conn.execute(
        f"""SELECT {', '.join(_CONTACT_COLUMNS)} FROM contacts
            WHERE tenant_id = current_tenant_id() AND company_id = ANY(%s)
            ORDER BY company_id, email""", (list(company_ids),)).fetchall()
    found: dict[int, list[Contact]] = {}
    for row in rows:
        found.setdefault(row["company_id"], []).append(_contact(row))
    return found


def set_primary_contacts(conn: psycopg.Connection, primary: Mapping[int, str | None]) -> int:
    """Flag each company's chosen address (None: no primary) and unflag the rest; returns rows changed."""
    if not primary:
        return 0
    company_ids, emails = zip(*primary.items())
    return conn.execute(
        """UPDATE contacts AS c SET is_primary = coalesce(c.email = p.email, false), updated_at = now()
           FROM unnest(%s::bigint[], %s::text[]) AS p(company_id, email)
           WHERE c.tenant_id = current_tenant_id() AND c.company_id = p.company_id
             AND c.is_primary IS DISTINCT FROM coalesce(c.email = p.email, false)""",
        (list(company_ids), list(emails))).rowcount


def primary_contacts(conn: psycopg.Connection, company_ids: Iterable[int]) -> dict[int, str]:
    rows = conn.execute("""SELECT company_id, email FROM contacts
                           WHERE tenant_id = current_tenant_id() AND company_id = ANY(%s) AND is_primary""",
                        (list(company_ids),)).fetchall()
    return {row["company_id"]: row["email"] for row in rows}


@dataclasses.dataclass(frozen=True)
class LushaLookup:
    """What one Lusha lookup of a company domain returned (``contacts`` as ``EnrichedContact.to_dict()``)."""

    domain: str
    looked_up_at: dt.datetime
    request_id: str | None
    contacts: list[dict[str, Any]]
    credits: int
    is_fresh: bool


def get_lusha_lookup(conn: psycopg.Connection, domain: str, max_age: dt.timedelta) -> LushaLookup | None:
    """The stored lookup of ``domain``; ``is_fresh`` when it is younger than ``max_age``."""
    row = conn.execute(
        """SELECT domain, looked_up_at, request_id, contacts, credits, looked_up_at > now() - %s AS is_fresh
           FROM lusha_lookups WHERE tenant_id = current_tenant_id() AND domain = %s""", (max_age, domain)).fetchone()
    return LushaLookup(**row) if row else None


def get_lusha_lookups(conn: psycopg.Connection, domains: Iterable[str],
                      max_age: dt.timedelta) -> dict[str, LushaLookup]:
    """The stored lookups of ``domains`` by domain; ``is_fresh`` when younger than ``max_age``."""
    rows = conn.execute(
        """SELECT domain, looked_up_at, request_id, contacts, credits, looked_up_at > now() - %s AS is_fresh
           FROM lusha_lookups WHERE tenant_id = current_tenant_id() AND domain = ANY(%s)""",
        (max_age, list(domains))).fetchall()
    return {row["domain"]: LushaLookup(**row) for row in rows}


def put_lusha_lookup(conn: psycopg.Connection, domain: str, request_id: str | None,
                     contacts: Sequence[Mapping[str, Any]], credits: int, *, complete: bool = True) -> None:
    """Store a lookup of ``domain`` made now; ``credits`` is what this lookup cost.

    A lookup cut short (``complete=False``) keeps the contacts it paid for but is dated at the epoch,
    stale for any cache age: the next run looks the domain up again without paying for them twice.
    """
    conn.execute(
        """INSERT INTO lusha_lookups (domain, looked_up_at, request_id, contacts, credits)
           VALUES (%s, CASE WHEN %s THEN now() ELSE 'epoch'::timestamptz END, %s, %s, %s)
           ON CONFLICT (tenant_id, domain) DO UPDATE SET looked_up_at = excluded.looked_up_at,
               request_id = excluded.request_id, contacts = excluded.contacts, credits = excluded.credits""",
        (domain, complete, request_id, Jsonb([dict(c) for c in contacts]), credits))


@dataclasses.dataclass(frozen=True)
class VerificationRecord:
    """A verdict to cache: it expires ``ttl`` after it is written."""

    email: str
    status: str
    sub_status: str | None
    policy: str
    ttl: dt.timedelta


def cached_verifications(conn: psycopg.Connection, emails: Iterable[str], *,
                         fresh_only: bool = True) -> dict[str, Verdict]:
    """Cached verdicts of ``emails`` (lower-case); with ``fresh_only`` only those not yet expired."""
    rows = conn.execute(
        """SELECT email, status, sub_status, policy, verified_at, expires_at FROM email_verification_cache
           WHERE tenant_id = current_tenant_id() AND email = ANY(%s) AND (NOT %s OR expires_at > now())""",
        (list(emails), fresh_only)).fetchall()
    return {row["email"]: Verdict(**row) for row in rows}


def unverified_addresses_elsewhere(conn: psycopg.Connection, company_ids: Iterable[int], limit: int) -> list[str]:
    """Up to ``limit`` addresses of this tenant's contacts outside ``company_ids`` with no verdict yet,
    the contacts found longest ago first (earlier nights' contacts a delayed verification left behind)."""
    if limit <= 0:
        return []
    rows = conn.execute(
        """SELECT ct.email FROM contacts ct
           LEFT JOIN email_verification_cache v ON v.tenant_id = ct.tenant_id AND v.email = ct.email
           WHERE ct.tenant_id = current_tenant_id() AND v.email IS NULL AND NOT (ct.company_id = ANY(%s))
           GROUP BY ct.email ORDER BY min(ct.first_seen_at), ct.email LIMIT %s""",
        (list(company_ids), limit)).fetchall()
    return [row["email"] for row in rows]


def put_verifications(conn: psycopg.Connection, records: Sequence[VerificationRecord]) -> None:
    if not records:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO email_verification_cache (email, status, sub_status, policy, verified_at, expires_at)
               VALUES (%s, %s, %s, %s, now(), now() + %s)
               ON CONFLICT (tenant_id, email) DO UPDATE SET status = excluded.status,
                   sub_status = excluded.sub_status, policy = excluded.policy,
                   verified_at = excluded.verified_at, expires_at = excluded.expires_at""",
            [(r.email, r.status, r.sub_status, r.policy, r.ttl) for r in records])
