"""``make demo``: the whole graph for today's partition of two demo tenants, on a fresh machine.

Starts the embedded PostgreSQL and the sandbox world, loads the synthetic ACRA sample, registers
the demo tenants (idempotently: a second demo reuses them) with Odoo connections on the sandbox
Odoo, materializes every asset for each tenant (each run in its own process, recorded in the Dagster
instance like a scheduled one) and prints each tenant's shortlist.

The demo's world outlives the demo: its DAGSTER_HOME keeps the sandbox's ports (``sandbox.json``)
next to the sandbox Odoo's records (``sandbox_odoo.json``), and ``make dev``
(:mod:`nightly_pipeline_sandbox.dev`) brings the same sandbox back on the same ports, so the demo
tenants' Odoo URLs answer again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

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
from nightly_pipeline.settings import Settings, SettingsError, load_settings
from nightly_pipeline_sandbox.runner import (
    ODOO_PASSWORD_ENV,
    ODOO_USER,
    PortUnavailable,
    Sandbox,
    SandboxConfig,
)

DEMO_TENANTS = (
    ("Lion City SaaS Sales", "software_icp.json", "demo_software"),
    ("Straits Freight Partners", "logistics_icp.json", "demo_logistics"),
)
RECORD_FILE = "sandbox.json"
ODOO_STATE_FILE = "sandbox_odoo.json"
# The demo's world always lives in its own embedded database under DAGSTER_HOME: a DATABASE_URL
# left in the caller's environment may be production, whose shared tables must never receive the
# synthetic sample or the demo tenants. Settings read variable names case-insensitively.
SERVER_DATABASE_VARIABLES = ("database_url", "database_admin_url")


class DemoError(RuntimeError):
    """Something about the demo's DAGSTER_HOME the operator must fix; the message says what."""


@dataclasses.dataclass(frozen=True)
class SandboxRecord:
    """What ``sandbox.json`` keeps: enough to start the same sandbox on the same ports."""

    seed: int
    ports: dict[str, int]


def demo_settings(program: str) -> Settings:
    """The settings of the demo's world, read after removing every database server variable from
    this process's environment, and so from the environment of every process it starts."""
    dropped = sorted(name for name in os.environ if name.lower() in SERVER_DATABASE_VARIABLES)
    for name in dropped:
        del os.environ[name]
    if dropped:
        print(f"{program}: ignoring {' and '.join(dropped)}: the demo's world always uses its own embedded "
              f"database under DAGSTER_HOME", file=sys.stderr)
    return load_settings()


def read_record(home: Path) -> SandboxRecord | None:
    """The sandbox recorded in ``home`` by an earlier demo, or None when there is none."""
    path = home / RECORD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DemoError(f"{path} is unreadable ({exc}); delete it and run `make demo` again") from None
    try:
        seed = data["seed"]
        ports = data["ports"]
        if not isinstance(seed, int) or not isinstance(ports, dict) or not all(
                isinstance(port, int) and 0 < port < 65536 for port in ports.values()):
            raise TypeError
    except (KeyError, TypeError):
        raise DemoError(f'{path} should hold {{"seed": <int>, "ports": {{"<server>": <port>, ...}}}}; '
                        f"delete it and run `make demo` again") from None
    return SandboxRecord(seed, dict(ports))


def write_record(home: Path, sandbox: Sandbox) -> None:
    record = {"seed": sandbox.config.seed, "ports": sandbox.ports}
    (home / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def sandbox_config(home: Path, *, seed: int | None = None, ports: dict[str, int] | None = None) -> SandboxConfig:
    config = SandboxConfig(odoo_state_file=home / ODOO_STATE_FILE, ports=ports or {})
    return config if seed is None else dataclasses.replace(config, seed=seed)


@contextlib.contextmanager
def demo_sandbox(home: Path, *, program: str, require_recorded_ports: bool) -> Iterator[Sandbox]:
    """The demo's sandbox, on the ports recorded in ``home`` when there are any (and recorded there).

    Without ``require_recorded_ports`` a taken port only means new ports (the demo points its
    tenants at whatever sandbox it runs); with it, :class:`PortUnavailable` is raised.
    """
    record = read_record(home)
    seed = record.seed if record else None
    try:
        sandbox = Sandbox(sandbox_config(home, seed=seed, ports=record.ports if record else None)).start()
    except PortUnavailable as exc:
        if require_recorded_ports:
            raise
        print(f"{program}: {exc}; starting the sandbox on new ports", file=sys.stderr)
        sandbox = Sandbox(sandbox_config(home, seed=seed)).start()
    try:
        write_record(home, sandbox)
        yield sandbox
    finally:
        sandbox.stop()


def _data(package: str, name: str) -> str:
    return (resources.files(package) / "data" / name).read_text(encoding="utf-8")


def load_sample(db: Database) -> str:
    result = parse_acra_text(_data("nightly_pipeline", "acra_sample.csv"))
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
        icp = parse_icp(_data("nightly_pipeline_sandbox", icp_file)).model_dump(mode="json", exclude_defaults=True)
        with db.tenant(tenant_id) as conn:
            tenants_db.upsert_odoo_connection(conn, tenants_db.OdooConnection(
                odoo_url, odoo_db, ODOO_USER, ODOO_PASSWORD_ENV, True))
            tenants_db.set_icp(conn, icp)
        tenants.append((tenant_id, name))
    return tenants


def find_demo_tenants(db: Database) -> dict[str, tuple[int, tenants_db.OdooConnection | None]]:
    """The demo tenants already registered, by name, with their Odoo connections."""
    with db.shared() as conn:
        ids = {t.name: t.tenant_id for t in tenants_db.directory(conn)}
    found = {}
    for name, _, _ in DEMO_TENANTS:
        if name in ids:
            with db.tenant(ids[name]) as conn:
                found[name] = (ids[name], tenants_db.get_odoo_connection(conn))
    return found


def set_up_world(db: Database, sandbox: Sandbox) -> list[tuple[int, str]]:
    """The ACRA sample and the demo tenants, their Odoo connections on ``sandbox``'s Odoo."""
    print(load_sample(db))
    return ensure_demo_tenants(db, sandbox.odoo_url)


def print_tenant(db: Database, tenant_id: int, name: str, run_date: dt.date) -> None:
    with db.tenant(tenant_id) as conn:
        shortlist = reports.shortlist(conn, run_date)
        targets = {r["company"]: r for r in reports.daily_targets(conn, run_date) or []}
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
        settings = demo_settings("demo")
    except SettingsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    home = ensure_dagster_home(settings)
    run_date = today_in_singapore()
    print(f"DAGSTER_HOME={home}\nStarting the sandbox world (simulated web, vendors, Odoo) on loopback…")
    with demo_sandbox(home, program="demo", require_recorded_ports=False) as sandbox:
        os.environ.update(sandbox.env)
        settings = load_settings()
        with open_database(settings) as db:
            print(f"Database: {db.target.describe()}")
            tenants = set_up_world(db, sandbox)
            runs = [PlannedRun(tenant_id, name, run_date) for tenant_id, name in tenants]
            print(f"Materializing every asset for {', '.join(r.key for r in runs)}, "
                  f"{settings.sched_tenant_concurrency} tenants at a time…")
            outcomes = run_all(settings, runs)
            failures = [o for o in outcomes if not o.succeeded]
            for outcome in outcomes:
                print(f"  {outcome.run.key} ({outcome.run.name}): "
                      f"{'ok' if outcome.succeeded else outcome.status} in {outcome.seconds:.1f} s")
            for tenant_id, name in tenants:
                print_tenant(db, tenant_id, name, run_date)
                page = home / f"shortlist-{tenant_id}-{run_date.isoformat()}.html"
                page.write_text(render_shortlist_page(db, tenant_id, run_date,
                                                      unit_prices=settings.vendor_unit_costs), encoding="utf-8")
                print(f"The shortlist page for SDRs: {page}")
        summary = {s.name: s.stats()["requests"] for s in sandbox.servers}
        print(f"\nSandbox requests served: {json.dumps(summary)}")
        created = {db: sandbox.odoo.stats()["databases"][db]["creates"] for db in sandbox.odoo.databases()}
        print(f"Records created in the sandbox Odoo by this demo: {json.dumps(created)}")
    for outcome in failures:
        print(f"demo: the run {outcome.run.key} ended {outcome.status} (Dagster run {outcome.run_id}); "
              "`nightly-pipeline runs` and `make dev` show its stages and errors", file=sys.stderr)
    if not failures:
        print("\nNext: `make dev` opens the Dagster UI on http://127.0.0.1:3000 with this sandbox back on the "
              f"same ports (recorded in {home / RECORD_FILE}), ready for backfills of the demo tenants.")
    return 1 if failures else 0


def run() -> int:
    try:
        return main()
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # The tenant runs were killed, the sandbox and the embedded PostgreSQL stopped on the way out.
        print("\ndemo: interrupted; the sandbox and the embedded PostgreSQL are stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
