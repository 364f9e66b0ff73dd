"""The runtime role on a real server: it never acts as the schema owner, it is switched to per
transaction (so RESET ROLE, DISCARD ALL or a transaction-pooling PgBouncer cannot undo it), and it
cannot rewrite the tenant registry."""
from __future__ import annotations

import dataclasses

import psycopg
import pytest

from nightly_pipeline.cli import main
from nightly_pipeline.db import Database, DatabaseError, DatabaseTarget
from nightly_pipeline.db.database import ensure_schema
from nightly_pipeline.db.migrate import OWNER_ROLE, MigrationError, migrate
from nightly_pipeline_tests.conftest import APP_ROLE
from nightly_pipeline_tests.db.conftest import url_as

pytestmark = pytest.mark.database


@pytest.fixture
def two_tenants(db, admin):
    with db.shared() as conn:
        for name in ("tenant a", "tenant b"):
            conn.execute("SELECT register_tenant(%s, NULL)", (name,))
    for tenant in (1, 2):
        with db.tenant(tenant) as conn:
            conn.execute("""INSERT INTO odoo_connections (tenant_id, url, db_name, username, password_env)
                            VALUES (%s, 'https://odoo.example.com', 'db', 'u', 'ODOO_PASSWORD')""", (tenant,))
    return 1, 2


def open_as(db_target: DatabaseTarget, login_url: str, app_role: str = APP_ROLE) -> Database:
    return Database(dataclasses.replace(db_target, app_url=login_url, app_role=app_role), max_size=1)


def seen_tenants(database: Database, tenant: int) -> list[str]:
    with database.tenant(tenant) as conn:
        return [r["name"] for r in conn.execute("SELECT name FROM tenants ORDER BY tenant_id").fetchall()]


def test_a_login_that_is_a_member_of_the_owner_role_runs_as_the_runtime_role(db_target, two_tenants,
                                                                              scratch_role):
    # What `db migrate` leaves behind for a non-superuser administrator used for everything.
    login = scratch_role("LOGIN NOSUPERUSER", member_of=[OWNER_ROLE, APP_ROLE])
    database = open_as(db_target, url_as(db_target.admin_url, login))
    try:
        assert seen_tenants(database, 1) == ["tenant a"]
        with database.tenant(1) as conn:
            assert conn.execute("SELECT current_user AS who").fetchone()["who"] == APP_ROLE
        with pytest.raises(psycopg.errors.InsufficientPrivilege), database.tenant(1) as conn:
            conn.execute("ALTER TABLE odoo_connections NO FORCE ROW LEVEL SECURITY")
        with database.shared() as conn:
            assert conn.execute("SELECT count(*) AS n FROM odoo_connections").fetchone()["n"] == 0
    finally:
        database.close()


def test_resetting_the_session_does_not_lift_row_level_security(db_target, two_tenants):
    # A privileged login (the test server's administrator) for a single-URL deployment.
    database = open_as(db_target, db_target.admin_url)
    try:
        with database.shared() as conn:
            conn.execute("RESET ROLE")  # committed with the transaction, as session state
        assert seen_tenants(database, 1) == ["tenant a"]
        with database.pool.connection() as conn:  # what PgBouncer's server_reset_query runs
            conn.autocommit = True
            conn.execute("DISCARD ALL")
            conn.autocommit = False
        assert seen_tenants(database, 2) == ["tenant b"]
        with database.shared() as conn:
            assert conn.execute("SELECT count(*) AS n FROM odoo_connections").fetchone()["n"] == 0
    finally:
        database.close()


@pytest.mark.parametrize("options, member_of", [
    ("LOGIN", [OWNER_ROLE]),
    ("LOGIN NOINHERIT", [OWNER_ROLE]),  # may still SET ROLE to the owner
    ("LOGIN CREATEROLE", []),  # may grant itself the owner role
    ("LOGIN BYPASSRLS", []),
])
def test_a_runtime_role_that_can_act_as_the_owner_is_refused(db_target, scratch_role, options, member_of):
    rogue = scratch_role(options, member_of=member_of)
    with pytest.raises(DatabaseError, match="refusing to run"):
        open_as(db_target, url_as(db_target.admin_url, rogue), app_role=rogue).close()


def test_the_checks_apply_after_switching_from_a_privileged_login(db_target, scratch_role):
    rogue = scratch_role("NOLOGIN", member_of=[OWNER_ROLE])
    with pytest.raises(DatabaseError, match="refusing to run"):
        open_as(db_target, db_target.admin_url, app_role=rogue).close()


def test_migrate_refuses_a_runtime_role_that_can_act_as_the_owner(db_target, scratch_role):
    rogue = scratch_role("LOGIN", member_of=[OWNER_ROLE])
    with pytest.raises(MigrationError, match=rogue):
        migrate(db_target.admin_url, rogue)


# -- the tenant registry ---------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "SELECT set_tenant_status(2, 'disabled')",
    "SELECT set_tenant_export_unverified(2, true)",
    "SELECT set_tenant_export_unverified(1, true)",
    "UPDATE tenants SET export_unverified = true",
    "UPDATE tenants SET status = 'disabled'",
    "UPDATE tenants SET daily_cap = 10000",
    "DELETE FROM tenants",
])
def test_a_tenant_transaction_cannot_change_the_registry(db, admin, two_tenants, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.tenant(1) as conn:
        conn.execute(statement)
    rows = admin.execute("SELECT tenant_id, status, export_unverified, daily_cap FROM tenants "
                         "ORDER BY tenant_id").fetchall()
    assert rows == [(1, "active", False, None), (2, "active", False, None)]


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_changes_the_registry_as_the_administrator(db_env, admin, two_tenants, capsys):
    assert cli(capsys, "tenant", "export-unverified", "2", "on")[0] == 0
    assert cli(capsys, "tenant", "disable", "2")[0] == 0
    rows = admin.execute("SELECT tenant_id, status, export_unverified FROM tenants ORDER BY tenant_id").fetchall()
    assert rows == [(1, "active", False), (2, "disabled", True)]


def test_registry_changes_without_the_administrator_url_fail_clearly(db_env, db_target, admin, two_tenants,
                                                                     capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", url_as(db_target.admin_url, APP_ROLE))
    monkeypatch.delenv("DATABASE_ADMIN_URL")
    for args in (("tenant", "disable", "2"), ("tenant", "export-unverified", "2", "on")):
        code, _, err = cli(capsys, *args)
        assert code == 2 and "DATABASE_ADMIN_URL" in err, err
    rows = admin.execute("SELECT status, export_unverified FROM tenants WHERE tenant_id = 2").fetchall()
    assert rows == [("active", False)]


# -- which credentials a run uses ------------------------------------------------------------------

@pytest.mark.parametrize("embedded", [False, True])
def test_a_run_reads_the_schema_version_as_the_runtime_role(db, db_target, embedded):
    unusable_admin = url_as(db_target.admin_url, "np_no_such_administrator")
    target = DatabaseTarget(admin_url=unusable_admin, app_url=url_as(db_target.admin_url, APP_ROLE),
                            app_role=APP_ROLE, embedded=embedded)
    ensure_schema(target)


def test_a_database_target_never_shows_its_credentials():
    target = DatabaseTarget(admin_url="postgresql://admin:admin-pw-1@db.internal:5432/leads",
                            app_url="postgresql://nightly_app:app-pw-2@db.internal:5432/leads",
                            app_role="nightly_app", embedded=False)
    for text in (repr(target), str(target), f"{target}", f"{target!r}"):
        assert "admin-pw-1" not in text and "app-pw-2" not in text, text
        assert "db.internal" in text
