"""Tenants, their Odoo connections and ICPs.

The registry functions (``register_tenant``, ``directory``, ``set_status``, ``set_export_unverified``)
span tenants and run in ``Database.shared``; the rest run in the tenant's own transaction
(``Database.tenant``) and read the tenant from it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from nightly_pipeline.db.database import TenantNotSet


@dataclasses.dataclass(frozen=True)
class TenantInfo:
    tenant_id: int
    name: str
    status: str
    daily_cap: int | None
    odoo_active: bool
    created_at: dt.datetime
    export_unverified: bool = False

    @property
    def schedulable(self) -> bool:
        """Active tenants with an active Odoo connection are the ones the nightly run serves."""
        return self.status == "active" and self.odoo_active


@dataclasses.dataclass(frozen=True)
class OdooConnection:
    url: str
    db_name: str
    username: str
    password_env: str
    active: bool


class TenantNotFound(LookupError):
    pass


class TenantExists(ValueError):
    pass


class AdministratorRequired(PermissionError):
    """A registry change attempted on a connection that is not the administrator's."""

    def __init__(self, what: str) -> None:
        super().__init__(f"changing a tenant's {what} needs the administrator's database connection "
                         f"(DATABASE_ADMIN_URL); the runtime role only reads the tenant registry")


def register_tenant(conn: psycopg.Connection, name: str, daily_cap: int | None) -> int:
    try:
        with conn.transaction():
            row = conn.execute("SELECT register_tenant(%s, %s) AS tenant_id", (name, daily_cap)).fetchone()
    except psycopg.errors.UniqueViolation:
        raise TenantExists(f"a tenant named {name!r} already exists") from None
    except psycopg.errors.CheckViolation:
        raise ValueError(f"tenant name must be 1 to 200 characters, got {len(name)}") from None
    return row["tenant_id"]


def directory(conn: psycopg.Connection) -> list[TenantInfo]:
    return [TenantInfo(**r) for r in conn.execute("SELECT * FROM tenant_directory()").fetchall()]


def _administer(conn: psycopg.Connection, query: str, tenant_id: int, value: object, what: str) -> None:
    try:
        with conn.transaction():
            changed = conn.cursor(row_factory=tuple_row).execute(query, (tenant_id, value)).fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        raise AdministratorRequired(what) from None
    if not changed:
        raise TenantNotFound(f"no tenant with id {tenant_id}")


def require_administrator(conn: psycopg.Connection) -> None:
    """Fail before a multi-step command starts when ``conn`` may not change the registry."""
    allowed = conn.cursor(row_factory=tuple_row).execute(
        """SELECT has_function_privilege('set_tenant_status(int, text)', 'EXECUTE')
                  AND has_function_privilege('set_tenant_export_unverified(int, boolean)', 'EXECUTE')""").fetchone()[0]
    if not allowed:
        raise AdministratorRequired("status or export policy")


def set_status(conn: psycopg.Connection, tenant_id: int, status: str) -> None:
    """On the administrator's connection (see ``administrator_transaction``)."""
    _administer(conn, "SELECT set_tenant_status(%s, %s)", tenant_id, status, "status")


def set_export_unverified(conn: psycopg.Connection, tenant_id: int, allowed: bool) -> None:
    """On the administrator's connection (see ``administrator_transaction``)."""
    _administer(conn, "SELECT set_tenant_export_unverified(%s, %s)", tenant_id, allowed, "export policy")


def scoped_tenant_id(conn: psycopg.Connection) -> int:
    """The tenant the connection's transaction serves; :class:`TenantNotSet` outside ``Database.tenant``."""
    tenant_id = conn.execute("SELECT current_tenant_id() AS tenant_id").fetchone()["tenant_id"]
    if tenant_id is None:
        raise TenantNotSet("this needs a tenant transaction (Database.tenant), not a shared one")
    return tenant_id


def get_tenant(conn: psycopg.Connection) -> TenantInfo:
    row = conn.execute("""SELECT t.tenant_id, t.name, t.status, t.daily_cap, t.created_at, t.export_unverified,
                                 coalesce(o.active, false) AS odoo_active
                          FROM tenants t LEFT JOIN odoo_connections o USING (tenant_id)
                          WHERE t.tenant_id = current_tenant_id()""").fetchone()
    if row is None:
        raise TenantNotFound(f"no tenant with id {scoped_tenant_id(conn)}")
    return TenantInfo(**row)


def upsert_odoo_connection(conn: psycopg.Connection, connection: OdooConnection) -> None:
    conn.execute("""INSERT INTO odoo_connections (url, db_name, username, password_env, active)
                    VALUES (%s, %s, %s, %s, %s)
                    ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, db_name = excluded.db_name,
                        username = excluded.username, password_env = excluded.password_env,
                        active = excluded.active, updated_at = now()""",
                 (connection.url, connection.db_name, connection.username, connection.password_env,
                  connection.active))


def get_odoo_connection(conn: psycopg.Connection) -> OdooConnection | None:
    row = conn.execute("""SELECT url, db_name, username, password_env, active FROM odoo_connections
                          WHERE tenant_id = current_tenant_id()""").fetchone()
    return OdooConnection(**row) if row else None


def set_icp(conn: psycopg.Connection, payload: dict) -> None:
    conn.execute("""INSERT INTO icp_rules (payload) VALUES (%s)
                    ON CONFLICT (tenant_id) DO UPDATE SET payload = excluded.payload, updated_at = now()""",
                 (Jsonb(payload),))


def get_icp(conn: psycopg.Connection) -> dict | None:
    row = conn.execute("SELECT payload FROM icp_rules WHERE tenant_id = current_tenant_id()").fetchone()
    return row["payload"] if row else None
