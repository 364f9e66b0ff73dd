"""Public facts shared by the fleet: websites, site crawls, extractions, address verdicts, and the
claims that let one run fetch a fact while the others wait for it.

These functions run in a shared transaction (``Database.shared``): the tables have no tenant or run
column and nothing written here names who asked. Every value from the web or a model is cleaned by
:mod:`nightly_pipeline.domain.sanitize` on its way in.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from nightly_pipeline.db.rows import MappingRow
from nightly_pipeline.domain import sanitize

FactKind = Literal["website", "crawl", "extraction", "verification"]
MAX_EVIDENCE_CHARS = 500
MAX_REASON_CHARS = 500
# A stored page is the decoded HTML the signals are read from; the fetcher already caps what it reads.
MAX_PAGE_CHARS = 2_000_000


# -- claims -------------------------------------------------------------------------------------------------
def claim(conn: psycopg.Connection, kind: FactKind, key: str, ttl: dt.timedelta) -> bool:
    """Take the claim on fetching ``kind``/``key`` for ``ttl``; False while someone else's is unexpired."""
    row = conn.execute(
        """INSERT INTO public_fact_claims (kind, fact_key, expires_at) VALUES (%s, %s, now() + %s)
           ON CONFLICT (kind, fact_key) DO UPDATE SET expires_at = excluded.expires_at
           WHERE public_fact_claims.expires_at <= now()
           RETURNING true AS claimed""", (kind, key, ttl)).fetchone()
    return row is not None


def claim_many(conn: psycopg.Connection, kind: FactKind, keys: Sequence[str], ttl: dt.timedelta) -> set[str]:
    """The keys of ``keys`` whose claim this call took (the rest are someone else's, unexpired)."""
    if not keys:
        return set()
    rows = conn.execute(
        """INSERT INTO public_fact_claims (kind, fact_key, expires_at)
           SELECT %s, k, now() + %s FROM unnest(%s::text[]) AS k
           ON CONFLICT (kind, fact_key) DO UPDATE SET expires_at = excluded.expires_at
           WHERE public_fact_claims.expires_at <= now()
           RETURNING fact_key""", (kind, ttl, list(dict.fromkeys(keys)))).fetchall()
    return {row["fact_key"] for row in rows}


def release(conn: psycopg.Connection, kind: FactKind, keys: Iterable[str]) -> None:
    conn.execute("DELETE FROM public_fact_claims WHERE kind = %s AND fact_key = ANY(%s)", (kind, list(keys)))


def claimed(conn: psycopg.Connection, kind: FactKind, key: str) -> bool:
    """Whether an unexpired claim on ``kind``/``key`` is held (by anyone)."""
    return conn.execute("SELECT 1 FROM public_fact_claims WHERE kind = %s AND fact_key = %s AND expires_at > now()",
                        (kind, key)).fetchone() is not None


# -- websites -----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PublicWebsite(MappingRow):
    company_id: int
    domain: str | None
    source: str | None
    confidence: float | None
    evidence: str | None
    checked_at: dt.datetime


def fresh_website(conn: psycopg.Connection, company_id: int, max_age: dt.timedelta) -> PublicWebsite | None:
    row = conn.execute("""SELECT company_id, domain, source, confidence, evidence, checked_at FROM public_websites
                          WHERE company_id = %s AND checked_at > now() - %s""", (company_id, max_age)).fetchone()
    return PublicWebsite(**row) if row else None


def put_website(conn: psycopg.Connection, company_id: int, domain: str | None, source: str | None,
                confidence: float | None, evidence: str | None) -> None:
    conn.execute(
        """INSERT INTO public_websites (company_id, domain, source, confidence, evidence, checked_at)
           VALUES (%s, %s, %s, %s, %s, now())
           ON CONFLICT (company_id) DO UPDATE SET domain = excluded.domain, source = excluded.source,
               confidence = excluded.confidence, evidence = excluded.evidence, checked_at = excluded.checked_at""",
        (company_id, sanitize.clean_optional_text(domain, 253), sanitize.clean_optional_text(source, 50),
         sanitize.finite_float(confidence), sanitize.clean_optional_text(evidence, MAX_EVIDENCE_CHARS)))


# -- crawls -------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StoredPage:
    url: str
    html: str
    headers: dict[str, str]


@dataclasses.dataclass(frozen=True)
class PublicCrawl:
    """A site's crawl as the fleet keeps it: the outcome, the summary without bodies, the decoded pages."""

    domain: str
    outcome: str
    reason: str
    summary: dict[str, Any]
    pages: tuple[StoredPage, ...]
    crawled_at: dt.datetime | None = None


def fresh_crawl(conn: psycopg.Connection, domain: str, max_age: dt.timedelta) -> PublicCrawl | None:
    row = conn.execute("""SELECT domain, outcome, reason, summary, pages, crawled_at FROM public_site_crawls
                          WHERE domain = %s AND crawled_at > now() - %s""", (domain, max_age)).fetchone()
    if row is None:
        return None
    pages = tuple(StoredPage(p["url"], p["html"], dict(p.get("headers") or {})) for p in row["pages"])
    return PublicCrawl(row["domain"], row["outcome"], row["reason"], row["summary"], pages, row["crawled_at"])


def put_crawl(conn: psycopg.Connection, crawl: PublicCrawl) -> None:
    pages = [{"url": sanitize.clean_text(page.url, 2_000), "html": sanitize.clean_text(page.html, MAX_PAGE_CHARS),
              "headers": sanitize.clean_json(page.headers, max_depth=1, max_items=100, max_chars=2_000)}
             for page in crawl.pages]
    conn.execute(
        """INSERT INTO public_site_crawls (domain, outcome, reason, summary, pages, crawled_at)
           VALUES (%s, %s, %s, %s, %s, now())
           ON CONFLICT (domain) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason,
               summary = excluded.summary, pages = excluded.pages, crawled_at = excluded.crawled_at""",
        (crawl.domain, sanitize.clean_text(crawl.outcome, 50), sanitize.clean_text(crawl.reason, MAX_REASON_CHARS),
         Jsonb(sanitize.clean_json(crawl.summary)), Jsonb(pages)))


# -- extractions --------------------------------------------------------------------------------------------
def get_extraction(conn: psycopg.Connection, corpus_hash: str, model: str) -> dict[str, Any] | None:
    """The profile the model made of this corpus, or None when it was never extracted.

    The key is the hash of the text itself, so a profile stays right for as long as the text is the
    same; the freshness window applies to the crawl that produced the text."""
    row = conn.execute("SELECT profile FROM public_extractions WHERE corpus_hash = %s AND model = %s",
                       (corpus_hash, model)).fetchone()
    return row["profile"] if row is not None else None


def put_extraction(conn: psycopg.Connection, corpus_hash: str, model: str, profile: Mapping[str, Any],
                   tokens_used: int) -> None:
    conn.execute(
        """INSERT INTO public_extractions (corpus_hash, model, profile, tokens_used) VALUES (%s, %s, %s, %s)
           ON CONFLICT (corpus_hash, model) DO UPDATE SET profile = excluded.profile,
               tokens_used = excluded.tokens_used, extracted_at = now()""",
        (corpus_hash, model, Jsonb(sanitize.clean_json(dict(profile))),
         sanitize.bounded_int(tokens_used, 0) or 0))


# -- address verdicts ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Verdict(MappingRow):
    email: str
    status: str
    sub_status: str | None
    policy: str
    verified_at: dt.datetime
    expires_at: dt.datetime


def fresh_verdicts(conn: psycopg.Connection, emails: Iterable[str]) -> dict[str, Verdict]:
    rows = conn.execute("""SELECT email, status, sub_status, policy, verified_at, expires_at
                           FROM public_email_verifications WHERE email = ANY(%s) AND expires_at > now()""",
                        (list(emails),)).fetchall()
    return {row["email"]: Verdict(**row) for row in rows}


def put_verdicts(conn: psycopg.Connection, verdicts: Sequence[tuple[str, str, str | None, str, dt.timedelta]]) -> None:
    """Store (email, status, sub_status, policy, ttl) verdicts made now."""
    if not verdicts:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO public_email_verifications (email, status, sub_status, policy, verified_at, expires_at)
               VALUES (%s, %s, %s, %s, now(), now() + %s)
               ON CONFLICT (email) DO UPDATE SET status = excluded.status, sub_status = excluded.sub_status,
                   policy = excluded.policy, verified_at = excluded.verified_at, expires_at = excluded.expires_at""",
            [(email, sanitize.clean_text(status, 50), sanitize.clean_optional_text(sub_status, 100), policy, ttl)
             for email, status, sub_status, policy, ttl in verdicts])
