"""Tenant isolation, proven on the real server for every table the catalogue says holds tenant data.

A new table with a tenant_id column fails here until it has row-level security (enabled and
forced, with the NULLIF policy) and a sample row below, so isolation is tested for it too.
"""
import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.database

RUN_A, RUN_B = uuid.UUID(int=1), uuid.UUID(int=2)


def sample_rows(tenant: int, company: int) -> dict[str, dict]:
    """One valid row per tenant table, for ``tenant``."""
    run = RUN_A if tenant == 1 else RUN_B
    return {
        "tenants": {},  # created by the fixture through register_tenant()
        "odoo_connections": dict(url="http://odoo", db_name="db", username="u", password_env="ODOO_PASSWORD_T"),
        "icp_rules": dict(payload=Jsonb({})),
        "icp_candidate_companies": dict(company_id=company, match_score=1.0, reasons=Jsonb([]),
                                        refreshed_on="2026-06-01"),
        "enrichment_runs": dict(run_id=run, run_date="2026-06-01", selected_company_ids=[company],
                                caps=Jsonb({}), budget_snapshot=Jsonb({})),
        "company_enrichment_runs": dict(run_id=run, company_id=company, outcome="ok"),
        "contacts": dict(company_id=company, email=f"ceo{tenant}@acme.sg", source="site"),
        "email_verification_cache": dict(email=f"ceo{tenant}@acme.sg", status="valid",
                                         verified_at="2026-06-01", expires_at="2026-07-01"),
        "lead_features": dict(company_id=company, feature_date="2026-06-01", features=Jsonb({}), feature_hash="h"),
        "lead_scores": dict(company_id=company, score_date="2026-06-01", score=0.5, bucket="Medium",
                            reasons=Jsonb([]), rationale="r", rationale_source="template"),
        "vendor_usage": dict(run_id=run, vendor="tavily", endpoint="/extract", status="settled"),
        "odoo_sync_log": dict(run_id=run, company_id=company, operation="create"),
        "lusha_lookups": dict(domain="acme.sg"),
        "rationale_cache": dict(feature_hash="h", rationale="r", source="template"),
        "enrichment_run_stages": dict(run_id=run, stage="crawl_corpus"),
        "night_alerts": dict(run_date="2026-06-01", outcome="failed"),
    }


def tenant_tables(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("""
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname""")]


def writable_column(conn: psycopg.Connection, table: str) -> str:
    return conn.execute("""SELECT column_name FROM information_schema.columns
                           WHERE table_schema = current_schema() AND table_name = %s AND is_identity = 'NO'
                           ORDER BY ordinal_position LIMIT 1""", (table,)).fetchone()[0]


def insert(conn: psycopg.Connection, table: str, tenant: int, values: dict) -> None:
    row = {"tenant_id": tenant, **values}
    conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row))), list(row.values()))


@pytest.fixture
def two_tenants(admin, db):
    with db.shared() as conn:
        a = conn.execute("SELECT register_tenant('tenant a', NULL) AS id").fetchone()["id"]
        b = conn.execute("SELECT register_tenant('tenant b', NULL) AS id").fetchone()["id"]
    assert (a, b) == (1, 2)
    company = admin.execute("""INSERT INTO companies (uen, name, legal_name, is_live, source_row_hash,
                               source_updated_at) VALUES ('201912345K', 'Acme', 'ACME', true, 'h', now())
                               RETURNING company_id""").fetchone()[0]
    ordered = ["odoo_connections", "icp_rules", "icp_candidate_companies", "enrichment_runs",
               "company_enrichment_runs", "contacts", "email_verification_cache", "lead_features", "lead_scores",
               "vendor_usage", "odoo_sync_log", "lusha_lookups", "rationale_cache",
               "enrichment_run_stages", "night_alerts"]
    for tenant in (a, b):
        rows = sample_rows(tenant, company)
        for table in ordered:
            with db.tenant(tenant) as conn:
                insert(conn, table, tenant, rows[table])
    return company


def test_every_tenant_table_has_forced_rls_with_the_nullif_policy(admin):
    tables = tenant_tables(admin)
    assert len(tables) >= 12
    for table in tables:
        enabled, forced = admin.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = %s", (table,)).fetchone()
        assert enabled and forced, f"{table}: row-level security must be enabled and forced"
        policies = admin.execute("SELECT qual, with_check FROM pg_policies WHERE tablename = %s "
                                 "AND policyname = 'tenant_isolation'", (table,)).fetchall()
        assert policies, f"{table}: no tenant_isolation policy"
        for expression in policies[0]:
            assert "NULLIF(current_setting('request.tenant_id'::text, true), ''::text))::integer" in expression
        assert table in sample_rows(1, 1), f"{table}: add a sample row so isolation is tested for it"


def test_every_tenant_table_is_keyed_by_tenant_first(admin):
    for table in tenant_tables(admin):
        first = admin.execute("""
            SELECT a.attname FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = %s::regclass AND i.indisprimary""", (table,)).fetchone()
        assert first and first[0] == "tenant_id", f"{table}: primary key must start with tenant_id"


def test_the_runtime_role_cannot_bypass_rls(db):
    with db.shared() as conn:
        row = conn.execute("""SELECT r.rolsuper, r.rolbypassrls, current_user AS who,
                                     (SELECT count(*) FROM pg_tables WHERE tableowner = current_user) AS owned
                              FROM pg_roles r WHERE r.rolname = current_user""").fetchone()
    assert row == {"rolsuper": False, "rolbypassrls": False, "who": "nightly_app", "owned": 0}


def test_a_tenant_sees_reads_and_changes_only_its_own_rows(db, admin, two_tenants):
    for table in tenant_tables(admin):
        total = admin.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        assert total == 2, f"{table}: fixture should hold one row per tenant"
        with db.tenant(1) as conn:
            seen = conn.execute(sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.Identifier(table))).fetchall()
            assert seen == [{"tenant_id": 1}], table
        column = sql.Identifier(writable_column(admin, table))
        update = sql.SQL("UPDATE {} SET {} = {} WHERE tenant_id = 2").format(sql.Identifier(table), column, column)
        delete = sql.SQL("DELETE FROM {} WHERE tenant_id = 2").format(sql.Identifier(table))
        if table == "tenants":  # the runtime role only reads the registry; the administrator changes it
            for statement in (update, delete):
                with pytest.raises(psycopg.errors.InsufficientPrivilege), db.tenant(1) as conn:
                    conn.execute(statement)
        else:
            with db.tenant(1) as conn:
                assert (conn.execute(update).rowcount, conn.execute(delete).rowcount) == (0, 0), table
        if table != "tenants":  # tenants.tenant_id is an identity column: nobody can move it
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.tenant(1) as conn:
                conn.execute(sql.SQL("UPDATE {} SET tenant_id = 2 WHERE tenant_id = 1").format(sql.Identifier(table)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.tenant(1) as conn:
                insert(conn, table, 2, sample_rows(2, two_tenants)[table])
        still = admin.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        assert still == 2, table


def test_without_a_tenant_nothing_is_visible_or_writable(db, admin, two_tenants):
    for table in tenant_tables(admin):
        with db.shared() as conn:
            count = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()
            assert count["n"] == 0, table
        if table != "tenants":
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.shared() as conn:
                insert(conn, table, 1, sample_rows(1, two_tenants)[table])


def test_a_pooled_connection_does_not_leak_the_previous_tenant(db, two_tenants):
    for _ in range(3):
        with db.tenant(2) as conn:
            assert conn.execute("SELECT count(*) AS n FROM contacts").fetchone()["n"] == 1
        with db.shared() as conn:
            assert conn.execute("SELECT count(*) AS n FROM contacts").fetchone()["n"] == 0


def test_the_registry_functions_are_the_only_cross_tenant_view(db, two_tenants):
    from nightly_pipeline.db import tenants as tenants_db

    with db.shared() as conn:
        names = [t.name for t in tenants_db.directory(conn)]
    assert names == ["tenant a", "tenant b"]
    with db.tenant(1) as conn:
        assert [r["name"] for r in conn.execute("SELECT name FROM tenants").fetchall()] == ["tenant a"]


@pytest.mark.parametrize("bad", [0, -1, "1", None, True])
def test_a_tenant_transaction_needs_a_real_tenant_id(db, bad):
    from nightly_pipeline.db import TenantNotSet

    with pytest.raises(TenantNotSet):
        with db.tenant(bad):
            pass


def test_current_tenant_id_is_the_transactions_tenant_and_null_outside_one(db, admin):
    with db.tenant(7) as conn:
        assert conn.execute("SELECT current_tenant_id() AS t").fetchone()["t"] == 7
    with db.shared() as conn:
        assert conn.execute("SELECT current_tenant_id() AS t").fetchone()["t"] is None
    owner, volatility, public = admin.execute(
        """SELECT pg_get_userbyid(p.proowner), p.provolatile,
                  has_function_privilege('public', p.oid, 'EXECUTE')
           FROM pg_proc p WHERE p.proname = 'current_tenant_id'""").fetchone()
    assert (owner, volatility, public) == ("nightly_owner", "s", False)


def test_a_row_written_in_a_tenant_transaction_belongs_to_that_tenant(db, admin, two_tenants):
    for table in tenant_tables(admin):
        if table == "tenants":
            continue
        default = admin.execute("""SELECT column_default FROM information_schema.columns
                                   WHERE table_schema = current_schema() AND table_name = %s
                                     AND column_name = 'tenant_id'""", (table,)).fetchone()[0]
        assert default == "current_tenant_id()", table
    with db.tenant(2) as conn:
        conn.execute("INSERT INTO rationale_cache (feature_hash, rationale, source) VALUES ('h2', 'r', 'llm')")
    assert admin.execute("SELECT tenant_id FROM rationale_cache WHERE feature_hash = 'h2'").fetchone()[0] == 2
    with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.NotNullViolation)), db.shared() as conn:
        conn.execute("INSERT INTO rationale_cache (feature_hash, rationale, source) VALUES ('h3', 'r', 'llm')")
