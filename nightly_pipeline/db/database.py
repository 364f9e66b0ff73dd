"""Connections: a psycopg 3 pool for the runtime role, with every tenant-scoped transaction
setting ``request.tenant_id`` transaction-locally, and a guard that the role RLS relies on is
really the one connected."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool

from nightly_pipeline.db.embedded import EmbeddedPostgres
from nightly_pipeline.db.migrate import current_version, migrate, pending_migrations
from nightly_pipeline.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "nightly"


class DatabaseError(RuntimeError):
    pass


class TenantNotSet(DatabaseError):
    pass


@dataclasses.dataclass(frozen=True)
class DatabaseTarget:
    admin_url: str
    app_url: str
    app_role: str
    embedded: bool

    def describe(self) -> str:
        """Where the database is, without credentials (for logs and metadata)."""
        info = psycopg.conninfo.conninfo_to_dict(self.app_url)
        place = info.get("host") or "local socket"
        return f"{'embedded ' if self.embedded else ''}PostgreSQL {place}/{info.get('dbname', '')}"


def _privileged(conn: psycopg.Connection) -> bool:
    row = conn.cursor(row_factory=tuple_row).execute(
        """SELECT r.rolsuper OR r.rolbypassrls
                  OR EXISTS (SELECT 1 FROM pg_tables t
                             WHERE t.schemaname = current_schema() AND t.tableowner = current_user)
           FROM pg_roles r WHERE r.rolname = current_user""").fetchone()
    return bool(row[0])


class Database:
    """The runtime role's pool. Use :meth:`tenant` for tenant data and :meth:`shared` otherwise."""

    def __init__(self, target: DatabaseTarget, *, max_size: int = 8) -> None:
        self.target = target
        self.pool = ConnectionPool(target.app_url, min_size=1, max_size=max_size, open=False,
                                   configure=self._configure, kwargs={"row_factory": dict_row},
                                   name="nightly_pipeline")
        self._probe()
        self.pool.open(wait=True, timeout=30)

    def _probe(self) -> None:
        """Fail fast with a readable error instead of letting the pool retry a bad target."""
        try:
            with psycopg.connect(self.target.app_url, connect_timeout=10) as conn:
                self._configure(conn)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(f"cannot connect to {self.target.describe()} as the runtime role: {reason}") from None

    def _configure(self, conn: psycopg.Connection) -> None:
        if _privileged(conn):
            # A deployment with one URL for everything: drop to the runtime role for the session,
            # since row-level security never applies to superusers, BYPASSRLS roles or table owners.
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.target.app_role)))
            if _privileged(conn):
                raise DatabaseError(f"role {self.target.app_role!r} bypasses row-level security; refusing to run")
        conn.commit()

    @contextlib.contextmanager
    def tenant(self, tenant_id: int) -> Iterator[psycopg.Connection]:
        """One transaction in which row-level security shows exactly ``tenant_id``'s rows."""
        if not isinstance(tenant_id, int) or isinstance(tenant_id, bool) or tenant_id < 1:
            raise TenantNotSet(f"a positive integer tenant id is required, got {tenant_id!r}")
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT set_config('request.tenant_id', %s, true)", (str(tenant_id),))
            yield conn

    @contextlib.contextmanager
    def shared(self) -> Iterator[psycopg.Connection]:
        """One transaction for shared (non-tenant) data; tenant tables show no rows here."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        self.pool.close()


def _ensure_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass


@contextlib.contextmanager
def database_target(settings: Settings) -> Iterator[DatabaseTarget]:
    """Resolve where the app database is; with ``DATABASE_URL`` unset, hold the embedded server."""
    if settings.database_url is not None:
        app_url = settings.secret("database_url")
        admin_url = settings.secret("database_admin_url") or app_url
        yield DatabaseTarget(admin_url, app_url, settings.database_app_role, embedded=False)
        return
    server = EmbeddedPostgres(Path(settings.dagster_home)).start()
    try:
        _ensure_database(server.uri(), EMBEDDED_DATABASE)
        yield DatabaseTarget(
            admin_url=server.uri(database=EMBEDDED_DATABASE),
            app_url=server.uri(user=settings.database_app_role, database=EMBEDDED_DATABASE),
            app_role=settings.database_app_role,
            embedded=True,
        )
    finally:
        server.stop()


def ensure_schema(target: DatabaseTarget) -> None:
    """Migrate the embedded database on use; a server database must be migrated explicitly."""
    with psycopg.connect(target.admin_url) as conn:
        have = current_version(conn)
        pending = pending_migrations(conn)
    if not pending:
        return
    if target.embedded:
        migrate(target.admin_url, target.app_role)
    else:
        missing = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise DatabaseError(f"the database schema is at version {have} and lacks {missing}: "
                            f"run `nightly-pipeline db migrate`")


@contextlib.contextmanager
def open_database(settings: Settings, *, max_size: int = 8) -> Iterator[Database]:
    with database_target(settings) as target:
        ensure_schema(target)
        db = Database(target, max_size=max_size)
        try:
            yield db
        finally:
            db.close()


@contextlib.contextmanager
def tenant_lock(db: Database, tenant_id: int, purpose: str) -> Iterator[None]:
    """Hold a session-level advisory lock for (tenant, purpose) across several transactions.

    Two runs of one tenant (a nightly run and a backfill, say) then serialize on the step that must
    not interleave, such as the Odoo sync. The lock connection leaves the pool only for this block.
    """
    with db.pool.connection() as conn:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, %s))", (purpose, tenant_id))
        conn.commit()
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, %s))", (purpose, tenant_id))
            conn.commit()
