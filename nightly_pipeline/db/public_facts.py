"""Public facts shared by the fleet: websites, site crawls, extractions, address verdicts, the
claims that let one run fetch a fact while the others wait for it, and the night's queue of
addresses waiting for a ZeroBounce batch that any run may send.

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

from nightly_pipeline.db.rows import MappingRow, Verdict
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


# -- the night's verification queue -------------------------------------------------------------------------
QueueEnd = Literal["verified", "delayed", "refused"]
_WAITING = "(state = 'queued' OR (state = 'taken' AND lease_until <= now()))"


@dataclasses.dataclass(frozen=True)
class QueuedOutcome(MappingRow):
    """How a queued address ended: ``state`` is a :data:`QueueEnd`, ``charged`` whether it was billed."""

    email: str
    state: str
    charged: bool
    reason: str | None
    attempts: int


def enqueue_verifications(conn: psycopg.Connection, emails: Sequence[str]) -> None:
    """Queue ``emails`` for the next batch; the caller holds their verification claims.

    A row already there is one whose queuer gave up or died: a row still waiting or in a batch stays
    as it is, one that ended unverified waits again.
    """
    if not emails:
        return
    # Ended rows whose queuer died before reading them are of no use to anyone after a night.
    conn.execute("DELETE FROM public_verification_queue WHERE ended_at < now() - interval '1 day'")
    conn.execute(
        """INSERT INTO public_verification_queue (email) SELECT unnest(%s::text[])
           ON CONFLICT (email) DO UPDATE SET state = 'queued', queued_at = clock_timestamp(), charged = false,
               reason = NULL, ended_at = NULL, lease_until = NULL
           WHERE public_verification_queue.state NOT IN ('queued', 'taken')""",
        (list(dict.fromkeys(emails)),))


@dataclasses.dataclass(frozen=True)
class QueueWaiting:
    """Addresses waiting for a taker (queued, or taken by a taker whose lease ran out)."""

    own: int            # of the caller's addresses
    total: int          # of everyone's
    oldest_s: float     # how long the oldest of them has waited
    others_verifying: bool = False  # another run holds verification claims on addresses not the caller's


def queue_waiting(conn: psycopg.Connection, emails: Sequence[str], mine: Sequence[str] = ()) -> QueueWaiting:
    """The waiting addresses, ``emails`` among them; ``mine`` are every address the caller claimed."""
    row = conn.execute(
        f"""SELECT count(*) FILTER (WHERE email = ANY(%s)) AS own, count(*) AS total,
                   coalesce(extract(epoch FROM clock_timestamp() - min(queued_at)), 0)::float8 AS oldest_s,
                   EXISTS (SELECT 1 FROM public_fact_claims WHERE kind = 'verification' AND expires_at > now()
                           AND NOT fact_key = ANY(%s)) AS others_verifying
            FROM public_verification_queue WHERE {_WAITING}""",
        (list(emails), list(dict.fromkeys([*mine, *emails])))).fetchone()
    return QueueWaiting(int(row["own"]), int(row["total"]), float(row["oldest_s"]), bool(row["others_verifying"]))


def take_verification_batch(conn: psycopg.Connection, limit: int, lease: dt.timedelta) -> list[str]:
    """Up to ``limit`` of the oldest waiting addresses, whoever queued them, leased for ``lease``.

    Takers take one after the other, so two slots granted at once fill one full batch and find the
    queue empty, rather than splitting the same addresses into two part-filled calls; the lock is the
    transaction's, so it is held for this short update only. A taker that dies leaves its rows to be
    taken again when the lease runs out.
    """
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('public_verification_queue', 0))")
    rows = conn.execute(
        f"""WITH picked AS (SELECT email FROM public_verification_queue WHERE {_WAITING}
                            ORDER BY queued_at, email LIMIT %s FOR UPDATE SKIP LOCKED)
            UPDATE public_verification_queue q SET state = 'taken', lease_until = now() + %s,
                   attempts = q.attempts + 1
            FROM picked WHERE q.email = picked.email RETURNING q.email, q.queued_at""",
        (limit, lease)).fetchall()
    return [row["email"] for row in sorted(rows, key=lambda r: (r["queued_at"], r["email"]))]


def end_verifications(conn: psycopg.Connection, outcomes: Sequence[tuple[str, QueueEnd, bool, str | None]]) -> None:
    """Mark taken addresses with how their batch ended: (email, state, charged, reason)."""
    if not outcomes:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            """UPDATE public_verification_queue SET state = %s, charged = %s, reason = %s, lease_until = NULL,
                   ended_at = now() WHERE email = %s AND state = 'taken'""",
            [(state, charged, sanitize.clean_optional_text(reason, MAX_REASON_CHARS), email)
             for email, state, charged, reason in outcomes])


def put_back(conn: psycopg.Connection, emails: Sequence[str]) -> None:
    """Taken addresses whose batch was never processed wait again, in their place in the queue."""
    conn.execute("""UPDATE public_verification_queue SET state = 'queued', lease_until = NULL
                    WHERE email = ANY(%s) AND state = 'taken'""", (list(emails),))


def collect_ended(conn: psycopg.Connection, emails: Sequence[str]) -> tuple[list[QueuedOutcome], set[str]]:
    """The ended rows among ``emails``, deleted as they are read, and which of ``emails`` are still
    queued or in a batch (an address in neither left the queue some other way)."""
    ended = conn.execute(
        """DELETE FROM public_verification_queue WHERE email = ANY(%s) AND state NOT IN ('queued', 'taken')
           RETURNING email, state, charged, reason, attempts""", (list(emails),)).fetchall()
    present = conn.execute("SELECT email FROM public_verification_queue WHERE email = ANY(%s)",
                           (list(emails),)).fetchall()
    return [QueuedOutcome(**row) for row in ended], {row["email"] for row in present}


def withdraw(conn: psycopg.Connection, emails: Sequence[str]) -> set[str]:
    """Take ``emails`` out of the queue where no live taker holds them; the ones withdrawn."""
    rows = conn.execute(f"DELETE FROM public_verification_queue WHERE email = ANY(%s) AND {_WAITING} RETURNING email",
                        (list(emails),)).fetchall()
    return {row["email"] for row in rows}


def renew_claims(conn: psycopg.Connection, kind: FactKind, keys: Sequence[str], ttl: dt.timedelta) -> None:
    """Keep the caller's unexpired claims on ``keys`` for another ``ttl``."""
    conn.execute("""UPDATE public_fact_claims SET expires_at = now() + %s
                    WHERE kind = %s AND fact_key = ANY(%s) AND expires_at > now()""", (ttl, kind, list(keys)))
