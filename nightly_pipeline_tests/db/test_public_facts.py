"""The fleet's public facts in PostgreSQL: no table without row-level security names a tenant or a
run, claims let one fetcher in at a time and expire, and facts are fresh only inside their window."""
import concurrent.futures
import datetime as dt
import re
from importlib import resources

import psycopg
import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.db import public_facts as facts_db
from nightly_pipeline.db.public_facts import PublicCrawl, StoredPage

pytestmark = pytest.mark.database
# Operator records, not data: who may call the admin API and what it did, and which tenant runs are
# working now (a lease names its tenant because "never two runs of one tenant" is its purpose). They
# name tenants on purpose, hold nothing learnt about a company, and no tenant run reads another's.
ADMINISTRATION = {"api_tokens", "api_audit", "api_submissions", "schema_migrations", "tenant_run_leases"}
TENANT_OR_RUN = re.compile(r"tenant|(^|_)run(_|$)|run_id")
DAY = dt.timedelta(hours=20)


def shared_tables(conn: psycopg.Connection) -> list[str]:
    """Every table of the schema without row-level security: what every tenant's run reads and writes."""
    return [r[0] for r in conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
           ORDER BY c.relname""")]


def test_no_shared_table_has_a_column_naming_a_tenant_or_a_run(admin: psycopg.Connection) -> None:
    tables = [t for t in shared_tables(admin) if t not in ADMINISTRATION]
    assert {"companies", "public_websites", "public_site_crawls", "public_extractions",
            "public_email_verifications", "public_fact_claims", "public_verification_queue"} <= set(tables)
    offending = admin.execute(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = ANY(%s) ORDER BY 1, 2""", (tables,)).fetchall()
    assert [(t, c) for t, c in offending if TENANT_OR_RUN.search(c)] == []


def test_the_runtime_role_reads_and_writes_public_facts_in_a_tenant_transaction(db: Database) -> None:
    with db.shared() as conn:
        tenant = conn.execute("SELECT register_tenant('acme', NULL) AS id").fetchone()["id"]
    with db.tenant(tenant) as conn:
        facts_db.put_extraction(conn, "h", "m", {"industry": "logistics\x00"}, 12)
    with db.shared() as conn:
        assert facts_db.get_extraction(conn, "h", "m") == {"industry": "logistics"}


def test_a_claim_lets_one_claimer_in_until_it_is_released_or_expires(db: Database, admin) -> None:
    with db.shared() as conn:
        assert facts_db.claim(conn, "crawl", "acme.sg", dt.timedelta(minutes=5))
        assert not facts_db.claim(conn, "crawl", "acme.sg", dt.timedelta(minutes=5))
        assert facts_db.claim(conn, "crawl", "globex.sg", dt.timedelta(minutes=5))
        assert facts_db.claimed(conn, "crawl", "acme.sg")
        facts_db.release(conn, "crawl", ["acme.sg"])
        assert facts_db.claim(conn, "crawl", "acme.sg", dt.timedelta(minutes=5))
        assert facts_db.claim_many(conn, "verification", ["a@x.sg", "b@x.sg"], dt.timedelta(minutes=5)) == \
            {"a@x.sg", "b@x.sg"}
        assert facts_db.claim_many(conn, "verification", ["b@x.sg", "c@x.sg"], dt.timedelta(minutes=5)) == \
            {"c@x.sg"}
    # A claimer that died: its claim's time ran out, and the next claimer takes it over.
    admin.execute("UPDATE public_fact_claims SET expires_at = now() - interval '1 second' WHERE fact_key = 'acme.sg'")
    with db.shared() as conn:
        assert not facts_db.claimed(conn, "crawl", "acme.sg")
        assert facts_db.claim(conn, "crawl", "acme.sg", dt.timedelta(minutes=5))


def test_a_crawl_older_than_the_window_is_not_fresh(db: Database, admin) -> None:
    crawl = PublicCrawl("acme.sg", "ok", "done\x00", {"pages_fetched": 1, "requests_made": 10**20},
                        (StoredPage("https://acme.sg/", "<html>Acme\x00</html>", {"X-Bad": "a\x00b"}),))
    with db.shared() as conn:
        facts_db.put_crawl(conn, crawl)
        stored = facts_db.fresh_crawl(conn, "acme.sg", DAY)
    assert stored is not None
    assert (stored.reason, stored.pages[0].html, stored.pages[0].headers) == ("done", "<html>Acme</html>",
                                                                              {"X-Bad": "ab"})
    assert stored.summary == {"pages_fetched": 1, "requests_made": None}
    admin.execute("UPDATE public_site_crawls SET crawled_at = now() - interval '21 hours'")
    with db.shared() as conn:
        assert facts_db.fresh_crawl(conn, "acme.sg", DAY) is None


def test_shared_provenance_of_earlier_nights_loses_its_tenant_and_run(admin, db_target) -> None:
    # What migration 0017 does to rows written before it, run again on a row written the old way.
    admin.execute("""INSERT INTO companies (uen, name, legal_name, is_live, source_row_hash, source_updated_at,
                                            field_provenance)
                     VALUES ('201912345K', 'Acme', 'ACME', true, 'h', now(),
                             '{"industry": {"source": "llm", "confidence": 0.8, "tenant_id": 3,
                                            "run_id": "0b8e", "at": "2026-06-01T00:00:00+00:00"}}')""")
    text = (resources.files("nightly_pipeline.db") / "migrations" / "0017_public_facts.sql").read_text()
    statement = text[text.index("UPDATE companies SET field_provenance"):]
    statement = statement[:statement.index(";") + 1]
    admin.execute(statement)
    provenance = admin.execute("SELECT field_provenance FROM companies").fetchone()[0]
    assert provenance == {"industry": {"source": "llm", "confidence": 0.8, "at": "2026-06-01T00:00:00+00:00"}}


QUEUED = [f"valid.q{i}@firm.com.sg" for i in range(5)]
LEASE = dt.timedelta(minutes=5)


def test_takers_of_the_verification_queue_get_the_oldest_addresses_and_never_the_same(db: Database) -> None:
    with db.shared() as conn:
        facts_db.enqueue_verifications(conn, QUEUED[:3])
    with db.shared() as conn:
        facts_db.enqueue_verifications(conn, QUEUED[3:])
    with db.shared() as conn:
        assert facts_db.take_verification_batch(conn, 2, LEASE) == QUEUED[:2]
    with db.shared() as conn:
        assert facts_db.take_verification_batch(conn, 2, LEASE) == QUEUED[2:4]
    with db.shared() as conn:
        waiting = facts_db.queue_waiting(conn, QUEUED[:1])
        assert (waiting.own, waiting.total) == (0, 1) and waiting.oldest_s > 0
        assert facts_db.take_verification_batch(conn, 200, LEASE) == QUEUED[4:]
        assert facts_db.take_verification_batch(conn, 200, LEASE) == []


def test_a_lapsed_lease_or_an_unsent_batch_puts_addresses_back_in_the_queue(db: Database, admin) -> None:
    with db.shared() as conn:
        facts_db.enqueue_verifications(conn, QUEUED)
        assert facts_db.take_verification_batch(conn, 2, LEASE) == QUEUED[:2]
        assert facts_db.take_verification_batch(conn, 2, LEASE) == QUEUED[2:4]
        facts_db.put_back(conn, QUEUED[2:4])
    # The taker of the first two died: its lease runs out.
    admin.execute("UPDATE public_verification_queue SET lease_until = now() - interval '1 second' "
                  "WHERE state = 'taken'")
    with db.shared() as conn:
        assert facts_db.queue_waiting(conn, QUEUED[:2]).own == 2
        assert facts_db.take_verification_batch(conn, 200, LEASE) == QUEUED
        attempts = {r["email"]: r["attempts"]
                    for r in conn.execute("SELECT email, attempts FROM public_verification_queue").fetchall()}
    assert attempts == {QUEUED[0]: 2, QUEUED[1]: 2, QUEUED[2]: 2, QUEUED[3]: 2, QUEUED[4]: 1}


def test_the_queuer_reads_how_its_addresses_ended_and_withdraws_the_rest(db: Database) -> None:
    with db.shared() as conn:
        facts_db.enqueue_verifications(conn, QUEUED)
        taken = facts_db.take_verification_batch(conn, 3, LEASE)
        facts_db.end_verifications(conn, [(QUEUED[0], "verified", True, None), (QUEUED[1], "verified", False, None),
                                          (QUEUED[2], "delayed", False, "verification delayed to next night: 503")])
        ended, present = facts_db.collect_ended(conn, QUEUED + ["valid.other@firm.com.sg"])
        assert taken == QUEUED[:3]
        assert sorted((o.email, o.state, o.charged, o.reason) for o in ended) == [
            (QUEUED[0], "verified", True, None), (QUEUED[1], "verified", False, None),
            (QUEUED[2], "delayed", False, "verification delayed to next night: 503")]
        assert present == set(QUEUED[3:])
        facts_db.take_verification_batch(conn, 1, LEASE)
        # The address in a live taker's batch stays; the waiting one is withdrawn.
        assert facts_db.withdraw(conn, QUEUED) == {QUEUED[4]}
        # An address whose queuer gave up while it was ending waits again when queued anew.
        facts_db.end_verifications(conn, [(QUEUED[3], "delayed", False, "503")])
        facts_db.enqueue_verifications(conn, [QUEUED[3]])
        assert facts_db.queue_waiting(conn, [QUEUED[3]]).own == 1


def test_takers_at_once_each_get_full_batches_of_different_addresses(db: Database) -> None:
    emails = [f"valid.c{i:02d}@firm.com.sg" for i in range(12)]
    with db.shared() as conn:
        facts_db.enqueue_verifications(conn, emails)

    def take() -> list[str]:
        with db.shared() as conn:
            return facts_db.take_verification_batch(conn, 4, LEASE)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: take(), range(4)))
    assert sorted(len(batch) for batch in batches) == [0, 4, 4, 4]
    assert sorted(email for batch in batches for email in batch) == emails


def test_the_queue_says_whether_another_run_is_verifying(db: Database) -> None:
    with db.shared() as conn:
        facts_db.claim_many(conn, "verification", QUEUED[:2], dt.timedelta(minutes=5))
        facts_db.enqueue_verifications(conn, QUEUED[:2])
        assert not facts_db.queue_waiting(conn, QUEUED[:1], QUEUED[:2]).others_verifying
        facts_db.claim_many(conn, "verification", QUEUED[2:3], dt.timedelta(minutes=5))
        assert facts_db.queue_waiting(conn, QUEUED[:1], QUEUED[:2]).others_verifying
        facts_db.release(conn, "verification", QUEUED[2:3])
        facts_db.claim_many(conn, "verification", QUEUED[3:4], dt.timedelta(seconds=-1))  # a lapsed claim
        assert not facts_db.queue_waiting(conn, QUEUED[:1], QUEUED[:2]).others_verifying
