"""``make demo``: the whole graph for today's partition of two demo tenants, on a fresh machine.

Starts the embedded PostgreSQL and the sandbox world, loads the synthetic ACRA sample, registers
the demo tenants (idempotently: a second demo reuses them) with Odoo connections on the sandbox
Odoo, materializes every asset for each tenant (each run in its own process, recorded in the Dagster
instance like a scheduled one) and prints each tenant's shortlist.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from importlib import resources

from tabulate import tabulate

from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.db import Database, open_database, reports
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.domain.acra import parse_acra_text
from nightly_pipeline.domain.icp import parse_icp
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.nightly import PlannedRun, run_all
from nightly_pipeline.report import render_shortlist_page
from nightly_pipeline.sandbox.runner import (
    ODOO_PASSWORD_ENV,
    ODOO_USER,
    Sandbox,
    SandboxConfig,
)
from nightly_pipeline.settings import SettingsError, load_settings

DEMO_TENANTS = (
    ("Lion City SaaS Sales", "software_icp.json", "demo_software"),
    ("Straits Freight Partners", "logistics_icp.json", "demo_logistics"),
)


def _data(name: str) -> str:
    return (resources.files("nightly_pipeline") / "data" / name).read_text(encoding="utf-8")


def load_sample(db: Database) -> str:
    result = parse_acra_text(_data("acra_sample.csv"))
    with db.shared() as conn:
        counts = acra_db.upsert_staging(conn, result.rows)
    return (f"ACRA sample: {len(result.rows)} rows ({counts.inserted} new, {counts.updated} updated, "
            f"{counts.unchanged} unchanged)")


def ensure_demo_tenants(db: Database, odoo_url: str) -> list[tuple[int, str]]:
    with db.shared() as conn:
        existing = {t.name: t.tenant_id for t in tenants_db.directory(conn)}
    tenants = []
    for name, icp_file, odoo_db in DEMO_TENANTS:
        tenant_id = existing.get(name)
        if tenant_id is None:
            with db.shared() as conn:
                tenant_id = tenants_db.register_tenant(conn, name, None)
        icp = parse_icp(_data(f"demo/{icp_file}")).model_dump(mode="json", exclude_defaults=True)
        with db.tenant(tenant_id) as conn:
            tenants_db.upsert_odoo_connection(conn, tenant_id, tenants_db.OdooConnection(
                odoo_url, odoo_db, ODOO_USER, ODOO_PASSWORD_ENV, True))
            tenants_db.set_icp(conn, tenant_id, icp)
        tenants.append((tenant_id, name))
    return tenants


def print_tenant(db: Database, tenant_id: int, name: str, run_date: dt.date) -> None:
    with db.tenant(tenant_id) as conn:
        shortlist = reports.shortlist(conn, tenant_id, run_date)
        targets = {r["company"]: r for r in reports.daily_targets(conn, tenant_id, run_date) or []}
    print(f"\n== {name} (tenant {tenant_id}) — shortlist for {run_date} ==")
    if not shortlist:
        print("no scores yet")
        return
    print(tabulate(
        [[r["rank"], r["company"], r["score"], r["bucket"], targets.get(r["company"], {}).get("crawl_outcome", "-"),
          f"{r['primary_contact'] or '-'}" + (f" ({r['contact_title']})" if r["contact_title"] else ""),
          r["verification"] or "-", r["odoo_partner_id"] or "-", r["odoo_lead_id"] or "-"] for r in shortlist],
        headers=["#", "company", "score", "bucket", "crawl", "primary contact", "email", "odoo partner",
                 "odoo lead"]))
    print("Rationales:")
    for r in shortlist:
        print(f"  {r['rank']:>2}. {r['company']}: {r['rationale']}")


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    home = ensure_dagster_home(settings)
    run_date = today_in_singapore()
    print(f"DAGSTER_HOME={home}\nStarting the sandbox world (simulated web, vendors, Odoo) on loopback…")
    with Sandbox(SandboxConfig(odoo_state_file=home / "sandbox_odoo.json")) as sandbox:
        os.environ.update(sandbox.env)
        settings = load_settings()
        with open_database(settings) as db:
            print(f"Database: {db.target.describe()}")
            print(load_sample(db))
            tenants = ensure_demo_tenants(db, sandbox.odoo_url)
            runs = [PlannedRun(tenant_id, name, run_date) for tenant_id, name in tenants]
            print(f"Materializing every asset for {', '.join(r.key for r in runs)}, "
                  f"{settings.sched_tenant_concurrency} tenants at a time…")
            outcomes = run_all(settings, runs, limit=None)
            failures = [o for o in outcomes if o.returncode != 0]
            for outcome in outcomes:
                print(f"  {outcome.run.key} ({outcome.run.name}): "
                      f"{'ok' if outcome.returncode == 0 else 'FAILED'} in {outcome.seconds:.1f} s")
            for tenant_id, name in tenants:
                print_tenant(db, tenant_id, name, run_date)
                page = home / f"shortlist-{tenant_id}-{run_date.isoformat()}.html"
                page.write_text(render_shortlist_page(db, tenant_id, run_date,
                                                      unit_prices=settings.vendor_unit_prices_usd), encoding="utf-8")
                print(f"The shortlist page for SDRs: {page}")
        summary = {s.name: s.stats()["requests"] for s in sandbox.servers}
        print(f"\nSandbox requests served: {json.dumps(summary)}")
        created = {db: sandbox.odoo.stats()["databases"][db]["creates"] for db in sandbox.odoo.databases()}
        print(f"Records created in the sandbox Odoo by this demo: {json.dumps(created)}")
    for outcome in failures:
        print(f"demo: the run {outcome.run.key} failed:\n{outcome.tail}", file=sys.stderr)
    if not failures:
        print("\nOpen the UI with: DAGSTER_HOME=$PWD/.nightly_pipeline .venv/bin/dagster dev")
    return 1 if failures else 0


def run() -> int:
    try:
        return main()
    except KeyboardInterrupt:
        # The tenant runs were killed, the sandbox and the embedded PostgreSQL stopped on the way out.
        print("\ndemo: interrupted; the sandbox and the embedded PostgreSQL are stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
