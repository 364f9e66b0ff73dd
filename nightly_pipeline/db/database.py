"""Connections: a psycopg 3 pool for the runtime role, with every tenant-scoped transaction
setting ``request.tenant_id`` transaction-locally, and a guard that the role RLS relies on is
really the one that runs the queries."""
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
from nightly_pipeline.db.migrate import (
    OWNER_ROLE,
    available_migrations,
    migrate,
    pending_migrations,
)
from nightly_pipeline.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "nightly"


class DatabaseError(RuntimeError):
    pass


class TenantNotSet(DatabaseError):
    pass


@dataclasses.dataclass(frozen=True)
class DatabaseTarget:
    admin_url: str = dataclasses.field(repr=False)
    app_url: str = dataclasses.field(repr=False)
    app_role: str
    embedded: bool

    def describe(self) -> str:
        """Where the database is, without credentials (for logs and metadata)."""
        info = psycopg.conninfo.conninfo_to_dict(self.app_url)
        place = info.get("host") or "local socket"
        return f"{'embedded ' if self.embedded else ''}PostgreSQL {place}/{info.get('dbname', '')}"

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"DatabaseTarget({self.describe()!r}, app_role={self.app_role!r})"


# Roles whose members can escape row-level security: SET ROLE to a superuser or BYPASSRLS role, or
# (before PostgreSQL 16) use CREATEROLE to grant themselves the owner role.
_PRIVILEGE_CHECK = """
    SELECT EXISTS (SELECT 1 FROM pg_roles r
                   WHERE (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolname = %(owner)s)
                     AND pg_has_role(current_user, r.oid, 'MEMBER'))
        OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                     AND pg_has_role(current_user, c.relowner, 'MEMBER'))"""


def _privileged(conn: psycopg.Connection) -> bool:
    """Whether the current role could act as a table owner or otherwise bypass row-level security.

    Membership counts, not just identity: a member of the owner role may SET ROLE to it (or inherits
    its rights) and then reads every tenant's rows or turns row-level security off.
    """
    row = conn.cursor(row_factory=tuple_row).execute(_PRIVILEGE_CHECK, {"owner": OWNER_ROLE}).fetchone()
    return bool(row[0])


class Database:
    """The runtime role's pool. Use :meth:`tenant` for tenant data and :meth:`shared` otherwise."""

    def __init__(self, target: DatabaseTarget, *, max_size: int = 8) -> None:
        self.target = target
        # The role each transaction switches to when the login itself is privileged (one URL for
        # everything); None when the login is the runtime role.
        self._local_role: str | None = None
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
            raise DatabaseError(f"cannot connect to {self.target.describe()} as the runtime role: "
                                f"{_reason(exc)}") from None

    def _configure(self, conn: psycopg.Connection) -> None:
        """Check a new connection's roles; refuse any set-up in which queries could bypass RLS."""
        login = conn.info.user
        try:
            with conn.transaction():
                if not _privileged(conn):
                    return
                # One URL for everything: every transaction switches to the runtime role with SET
                # LOCAL (see _begin). A session-wide SET ROLE would be undone by RESET ROLE, DISCARD
                # ALL or a transaction-pooling PgBouncer handing the server connection to another client.
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.target.app_role)))
                still_privileged = _privileged(conn)
        except psycopg.errors.InsufficientPrivilege:
            raise DatabaseError(f"database user {login!r} can bypass row-level security and may not switch to "
                                f"the runtime role {self.target.app_role!r}; refusing to run") from None
        if still_privileged:
            raise DatabaseError(f"runtime role {self.target.app_role!r} can act as the schema owner or bypass "
                                f"row-level security (superuser, BYPASSRLS, CREATEROLE or a member of "
                                f"{OWNER_ROLE!r}); refusing to run")
        self._local_role = self.target.app_role

    def _begin(self, conn: psycopg.Connection) -> None:
        """First statement of every transaction handed out for tenant or shared work."""
        if self._local_role is not None:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self._local_role)))

    @contextlib.contextmanager
    def tenant(self, tenant_id: int) -> Iterator[psycopg.Connection]:
        """One transaction in which row-level security shows exactly ``tenant_id``'s rows."""
        if not isinstance(tenant_id, int) or isinstance(tenant_id, bool) or tenant_id < 1:
            raise TenantNotSet(f"a positive integer tenant id is required, got {tenant_id!r}")
        with self.pool.connection() as conn, conn.transaction():
            self._begin(conn)
            conn.execute("SELECT set_config('request.tenant_id', %s, true)", (str(tenant_id),))
            yield conn

    @contextlib.contextmanager
    def shared(self) -> Iterator[psycopg.Connection]:
        """One transaction for shared (non-tenant) data; tenant tables show no rows here."""
        with self.pool.connection() as conn, conn.transaction():
            self._begin(conn)
            yield conn

    def dedicated_connection(self) -> psycopg.Connection:
        """An autocommit connection of its own in the runtime role, outside the pool: for work that
        must outlive the pool (a lease released as the process exits) or must not wait for it."""
        conn = psycopg.connect(self.target.app_url, autocommit=True, connect_timeout=10)
        if self._local_role is not None:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self._local_role)))
        return conn

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
        yield DatabaseTarget(
            admin_url=server.uri(database=EMBEDDED_DATABASE),
            app_url=server.uri(user=settings.database_app_role, database=EMBEDDED_DATABASE),
            app_role=settings.database_app_role,
            embedded=True,
        )
    finally:
        server.stop()


def _reason(exc: psycopg.Error) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def ensure_schema(target: DatabaseTarget, *, migrate_embedded: bool = True) -> None:
    """Check the schema version as the runtime role; migrate the embedded database when it is behind.

    The administrator's URL is used only to migrate: on the embedded database's first start (when
    neither its database nor the runtime role exist yet) or after an upgrade of this code. A server
    database is migrated explicitly with ``db migrate``.
    """
    try:
        with psycopg.connect(target.app_url, connect_timeout=10) as conn:
            pending = pending_migrations(conn)
    except psycopg.OperationalError as exc:
        if not target.embedded:
            raise DatabaseError(f"cannot connect to {target.describe()} as the runtime role: {_reason(exc)}") from None
        pending = list(available_migrations())
    if not pending:
        return
    if not target.embedded or not migrate_embedded:
        missing = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise DatabaseError(f"the database schema lacks migration(s) {missing}: run `nightly-pipeline db migrate`")
    server = psycopg.conninfo.conninfo_to_dict(target.admin_url)
    _ensure_database(psycopg.conninfo.make_conninfo(**{**server, "dbname": "postgres"}), EMBEDDED_DATABASE)
    migrate(target.admin_url, target.app_role)


@contextlib.contextmanager
def administrator_transaction(target: DatabaseTarget) -> Iterator[psycopg.Connection]:
    """One transaction as the administrator (``DATABASE_ADMIN_URL``, else ``DATABASE_URL``), for the
    operator's changes to the tenant registry that the runtime role may not make."""
    try:
        conn = psycopg.connect(target.admin_url, connect_timeout=10, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to {target.describe()} as the administrator: {_reason(exc)}") from None
    with conn, conn.transaction():
        yield conn


@contextlib.contextmanager
def open_database(settings: Settings, *, max_size: int = 8, migrate_embedded: bool = True) -> Iterator[Database]:
    """The app database; ``migrate_embedded=False`` refuses a schema that is behind instead of migrating."""
    with database_target(settings) as target:
        ensure_schema(target, migrate_embedded=migrate_embedded)
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
