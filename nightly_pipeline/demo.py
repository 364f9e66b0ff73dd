"""``make demo``: the whole graph for today's partition of two demo tenants, on a fresh machine.

Starts the embedded PostgreSQL and the sandbox world, loads the synthetic ACRA sample, registers
the demo tenants (idempotently: a second demo reuses them) with Odoo connections on the sandbox
Odoo, materializes every asset for each tenant and prints what each tenant got.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from importlib import resources

import dagster as dg
from tabulate import tabulate

from nightly_pipeline.assets import all_assets
from nightly_pipeline.cli import today_in_singapore
from nightly_pipeline.db import Database, open_database
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import reports
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.domain.acra import parse_acra_text
from nightly_pipeline.domain.icp import parse_icp
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.partitions import TENANTS, partition_key
from nightly_pipeline.resources import default_resources
from nightly_pipeline.sandbox.runner import ODOO_PASSWORD_ENV, ODOO_USER, Sandbox, SandboxConfig
from nightly_pipeline.settings import SettingsError, load_settings

# The demo prints its own summary; the run's step-by-step events stay in the UI.
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
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


def materialize(instance: dg.DagsterInstance, tenant_id: int, run_date: dt.date) -> dg.ExecuteInProcessResult:
    return dg.materialize(all_assets, instance=instance, partition_key=partition_key(run_date, tenant_id),
                          resources=default_resources(),
                          run_config=QUIET_RUN, tags={"tenant": str(tenant_id)}, raise_on_error=False)


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


def root_cause(error) -> str:
    """The innermost message of a step failure (a retry wrapper says only that retries ran out)."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


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
            with dg.DagsterInstance.get() as instance:
                known = set(instance.get_dynamic_partitions(TENANTS))
                missing = [str(t) for t, _ in tenants if str(t) not in known]
                if missing:
                    instance.add_dynamic_partitions(TENANTS, missing)
                failures = []
                for tenant_id, name in tenants:
                    print(f"Materializing every asset for {partition_key(run_date, tenant_id)} ({name})…")
                    result = materialize(instance, tenant_id, run_date)
                    if not result.success:
                        failures.append((tenant_id, result))
            for tenant_id, name in tenants:
                print_tenant(db, tenant_id, name, run_date)
        summary = {s.name: s.stats()["requests"] for s in sandbox.servers}
        print(f"\nSandbox requests served: {json.dumps(summary)}")
        created = {db: sandbox.odoo.stats()["databases"][db]["creates"] for db in sandbox.odoo.databases()}
        print(f"Records created in the sandbox Odoo by this demo: {json.dumps(created)}")
    for tenant_id, result in failures:
        errors = [root_cause(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
        print(f"demo: the run for tenant {tenant_id} failed: {'; '.join(errors)}", file=sys.stderr)
    if not failures:
        print("\nOpen the UI with: DAGSTER_HOME=$PWD/.nightly_pipeline .venv/bin/dagster dev")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
