"""Tenants for tests: registered through the registry function, as the CLI registers them."""
from __future__ import annotations

from nightly_pipeline.db import Database
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline_sandbox.runner import ODOO_PASSWORD_ENV, ODOO_USER


def register_tenant(db: Database, name: str = "acme", daily_cap: int | None = None) -> int:
    """A tenant without an Odoo connection or ICP."""
    with db.shared() as conn:
        return tenants_db.register_tenant(conn, name, daily_cap)


def add_tenant(db: Database, name: str, icp: dict | None = None, *, daily_cap: int | None = None,
               odoo_url: str = "http://127.0.0.1:9", odoo_db: str = "demo_software", odoo_user: str = ODOO_USER,
               password_env: str = ODOO_PASSWORD_ENV, odoo_active: bool = True) -> int:
    """A schedulable tenant: an Odoo connection (the sandbox's credentials by default) and an ICP."""
    tenant_id = register_tenant(db, name, daily_cap)
    with db.tenant(tenant_id) as conn:
        tenants_db.upsert_odoo_connection(conn, tenants_db.OdooConnection(
            odoo_url, odoo_db, odoo_user, password_env, odoo_active))
        if icp is not None:
            tenants_db.set_icp(conn, icp)
    return tenant_id
