"""The shortlist page: one self-contained HTML file per tenant-night for the SDRs who work it.

``render_shortlist_page(db, tenant_id, run_date)`` reads the night inside the tenant's own
row-level-security scope (``db.shortlist_page``), builds plain values (``report.view``) and renders
them with autoescaping (``report.render``). Callers that serve it (the CLI, an admin API) only
need to make sure the caller may see ``tenant_id``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from nightly_pipeline.db import shortlist_page as shortlist_db
from nightly_pipeline.db.database import Database
from nightly_pipeline.db.tenants import TenantNotFound
from nightly_pipeline.report.render import render_page
from nightly_pipeline.report.view import Page, page_view

__all__ = ["Page", "build_shortlist_page", "render_shortlist_page"]


def build_shortlist_page(db: Database, tenant_id: int, run_date: dt.date, *,
                         unit_prices: Mapping[str, float] | None = None, now: dt.datetime | None = None) -> Page:
    """The page's content for ``tenant_id`` on ``run_date``; raises TenantNotFound for an unknown tenant."""
    if unit_prices is None:
        from nightly_pipeline.settings import get_settings

        unit_prices = get_settings().vendor_unit_costs
    with db.tenant(tenant_id) as conn:
        night = shortlist_db.night(conn, run_date)
        if night is None:
            raise TenantNotFound(f"tenant {tenant_id} does not exist")
        spend = shortlist_db.vendor_spend(conn, night["run_id"]) if night["run_id"] else []
        rows = shortlist_db.leads(conn, run_date)
    return page_view(night, spend, rows, unit_prices, run_date, now or dt.datetime.now(dt.timezone.utc))


def render_shortlist_page(db: Database, tenant_id: int, run_date: dt.date, *,
                          unit_prices: Mapping[str, float] | None = None, now: dt.datetime | None = None) -> str:
    """The night's shortlist as one self-contained HTML document (no scripts, fonts or fetches)."""
    return render_page(build_shortlist_page(db, tenant_id, run_date, unit_prices=unit_prices, now=now))
