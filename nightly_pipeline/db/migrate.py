"""Ordered plain-SQL migrations with a version table, applied as the schema owner.

Roles: ``nightly_owner`` (NOLOGIN) owns every table; the runtime role (``DATABASE_APP_ROLE``,
default ``nightly_app``) logs in, is neither superuser nor BYPASSRLS nor owner, and only gets the
grants each migration names. A server where we may not create roles must already have both.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from importlib import resources

import psycopg
from psycopg import sql

OWNER_ROLE = "nightly_owner"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6E_69_67_68  # advisory lock id shared by every migrating process


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class MigrationError(RuntimeError):
    pass


@functools.lru_cache(maxsize=1)
def available_migrations() -> tuple[Migration, ...]:
    folder = resources.files("nightly_pipeline.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    # Branches number their migrations ahead of each other, so a version may be missing for a while;
    # a version used twice would apply one file and silently skip the other.
    if len(set(versions)) != len(versions):
        raise MigrationError(f"migration versions must be unique, found {versions}")
    return tuple(found)


def latest_version() -> int:
    return available_migrations()[-1].version


def current_version(conn: psycopg.Connection) -> int:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def applied_versions(conn: psycopg.Connection) -> set[int]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def pending_migrations(conn: psycopg.Connection) -> list[Migration]:
    """Available migrations not applied yet, lower versions included (one merged after a higher one)."""
    done = applied_versions(conn)
    return [m for m in available_migrations() if m.version not in done]


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _ensure_roles(conn: psycopg.Connection, app_role: str) -> None:
    can_create = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    for role, options in ((OWNER_ROLE, "NOLOGIN"), (app_role, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE")):
        if _role_exists(conn, role):
            continue
        if not can_create:
            raise MigrationError(f"role {role!r} does not exist and {conn.info.user!r} may not create roles; "
                                 f"create it first (see README, 'Production database')")
        try:
            conn.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(role)))
        except psycopg.errors.DuplicateObject:
            pass  # another migrating process created it between our check and our CREATE
    unsafe = conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", (app_role,)).fetchone()
    if unsafe[0]:
        raise MigrationError(f"runtime role {app_role!r} is a superuser or has BYPASSRLS; row-level security "
                             f"would not apply to it")
    # Membership lets a non-superuser administrator build tables as the owner, and lets a deployment
    # with a single URL drop to the runtime role (see Database._drop_privileges).
    for role in (OWNER_ROLE, app_role):
        is_member = conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)).fetchone()[0]
        if not is_member:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(conn.info.user)))


def migrate(admin_url: str, app_role: str) -> list[Migration]:
    """Apply pending migrations; return those applied. Safe to run concurrently and repeatedly."""
    applied: list[Migration] = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            _ensure_roles(conn, app_role)
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema),
                                                                          sql.Identifier(app_role)))
            conn.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(sql.Identifier(schema),
                                                                           sql.Identifier(OWNER_ROLE)))
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER_ROLE)))
                conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                                    version int PRIMARY KEY, name text NOT NULL,
                                    applied_at timestamptz NOT NULL DEFAULT now())""")
                # The runtime role checks the schema version before it runs.
                conn.execute(sql.SQL("GRANT SELECT ON schema_migrations TO {}").format(sql.Identifier(app_role)))
            for migration in pending_migrations(conn):
                text = migration.sql.replace("{app_role}", sql.Identifier(app_role).as_string(conn)) \
                    .replace("{owner_role}", sql.Identifier(OWNER_ROLE).as_string(conn)) \
                    .replace("{schema}", sql.Identifier(schema).as_string(conn))
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER_ROLE)))
                    try:
                        conn.execute(text)
                    except psycopg.Error as exc:
                        raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: "
                                             f"{exc.diag.message_primary or exc}") from exc
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                 (migration.version, migration.name))
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
