"""The ``nightly-pipeline`` command line (contract §2)."""
from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import importlib.metadata
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tabulate import tabulate

from nightly_pipeline.api.cli import ApiCliError, add_api_parser
from nightly_pipeline.db import DatabaseError, open_database
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import reports
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.database import administrator_transaction, database_target
from nightly_pipeline.db.migrate import MigrationError, migrate
from nightly_pipeline.domain.acra import AcraFileError, parse_acra_csv
from nightly_pipeline.domain.icp import IcpError, parse_icp
from nightly_pipeline.domain.odoo_connection import OdooConnectionRejected, check_odoo_url, check_password_env
from nightly_pipeline.domain.spreadsheet import neutralise_row
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.clock import today_in_singapore
from nightly_pipeline.partitions import InvalidTenantKey, tenant_key
from nightly_pipeline.settings import Settings, SettingsError, load_settings
from nightly_pipeline.stack import add_stack_parser

# Other installed distributions add subcommands here (nightly_pipeline_sandbox adds `sandbox`): each
# entry point is a callable that takes the top-level subparsers and adds its own parser, whose
# ``func(settings, args)`` runs the command.
CLI_COMMANDS_GROUP = "nightly_pipeline.cli_commands"


class CliError(Exception):
    """An operator mistake: printed as one line, exit status 2."""


def _tenant_id(value: str) -> int:
    try:
        return int(tenant_key(value))
    except InvalidTenantKey as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def _read_icp(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read ICP file {path}: {exc.strerror}") from None
    try:
        return parse_icp(text).model_dump(mode="json", exclude_defaults=True)
    except IcpError as exc:
        raise CliError(f"{path}: {exc}") from None


@contextlib.contextmanager
def _dagster_instance(settings: Settings) -> Iterator:
    ensure_dagster_home(settings)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        yield instance


# -- commands ----------------------------------------------------------------------------------

def cmd_db_migrate(settings: Settings, args: argparse.Namespace) -> None:
    with database_target(settings) as target:
        applied = migrate(target.admin_url, target.app_role)
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print("schema is up to date")


def cmd_acra_load(settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        # Bytes that are not UTF-8 reach the parser as surrogates, which rejects only their rows.
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            result = parse_acra_csv(fh)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except AcraFileError as exc:
        raise CliError(f"{path}: {exc}") from None
    for error in result.errors:
        print(f"{path}: {error}", file=sys.stderr)
    with open_database(settings) as db, db.shared() as conn:
        counts = acra_db.upsert_staging(conn, result.rows)
    print(f"{path}: {len(result.rows)} good rows ({counts.inserted} new, {counts.updated} updated, "
          f"{counts.unchanged} unchanged), {len(result.errors)} rejected")
    return 1 if result.errors and not result.rows else 0


def _odoo_connection(args: argparse.Namespace) -> tenants_db.OdooConnection:
    for flag, check, value in (("--odoo-password-env", check_password_env, args.odoo_password_env),
                               ("--odoo-url", check_odoo_url, args.odoo_url)):
        try:
            check(value)
        except OdooConnectionRejected as exc:
            raise CliError(f"{flag} {exc}") from None
    return tenants_db.OdooConnection(args.odoo_url.strip(), args.odoo_db, args.odoo_user, args.odoo_password_env,
                                     True)


def cmd_tenant_add(settings: Settings, args: argparse.Namespace) -> None:
    connection = _odoo_connection(args)
    icp = _read_icp(args.icp_file) if args.icp_file else None
    with open_database(settings) as db:
        if args.export_unverified:
            with administrator_transaction(db.target) as admin:
                tenants_db.require_administrator(admin)  # before anything is created
        with db.shared() as conn:
            tenant_id = tenants_db.register_tenant(conn, args.name, args.daily_cap)
        with db.tenant(tenant_id) as conn:
            tenants_db.upsert_odoo_connection(conn, connection)
            if icp is not None:
                tenants_db.set_icp(conn, icp)
        if args.export_unverified:
            with administrator_transaction(db.target) as admin:
                tenants_db.set_export_unverified(admin, tenant_id, True)
    with _dagster_instance(settings) as instance:
        instance.add_dynamic_partitions("tenants", [tenant_key(tenant_id)])
    if args.odoo_password_env not in os.environ:
        print(f"warning: {args.odoo_password_env} is not set here; the Odoo sync reads it when it runs",
              file=sys.stderr)
    print(f"tenant {args.name!r} added with its Odoo connection and Dagster partition")
    print(tenant_id)


def cmd_tenant_icp(settings: Settings, args: argparse.Namespace) -> None:
    icp = _read_icp(args.file)
    with open_database(settings) as db, db.tenant(args.tenant_id) as conn:
        tenants_db.get_tenant(conn)
        tenants_db.set_icp(conn, icp)
    print(f"tenant {args.tenant_id}: ICP replaced ({', '.join(sorted(icp)) or 'empty: every live company'})")


def cmd_tenant_list(settings: Settings, args: argparse.Namespace) -> None:
    with open_database(settings) as db, db.shared() as conn:
        rows = tenants_db.directory(conn)
    table = [(t.tenant_id, t.name, t.status, t.daily_cap or f"{settings.daily_cap} (default)",
              "active" if t.odoo_active else "none/inactive", "yes" if t.schedulable else "no") for t in rows]
    print(tabulate(table, headers=["tenant_id", "name", "status", "daily cap", "odoo", "scheduled"]))


def cmd_tenant_export_unverified(settings: Settings, args: argparse.Namespace) -> None:
    allowed = args.allowed == "on"
    with open_database(settings) as db, administrator_transaction(db.target) as admin:
        tenants_db.set_export_unverified(admin, args.tenant_id, allowed)
    print(f"tenant {args.tenant_id}: the Odoo export {'includes' if allowed else 'leaves out'} addresses "
          f"not verified deliverable")


def cmd_tenant_disable(settings: Settings, args: argparse.Namespace) -> None:
    with open_database(settings) as db, administrator_transaction(db.target) as admin:
        tenants_db.set_status(admin, args.tenant_id, "disabled")
    with _dagster_instance(settings) as instance:
        key = tenant_key(args.tenant_id)
        if instance.has_dynamic_partition("tenants", key):
            instance.delete_dynamic_partition("tenants", key)
    print(f"tenant {args.tenant_id} disabled; it gets no more nightly runs")


def cmd_tenant_enable(settings: Settings, args: argparse.Namespace) -> None:
    with open_database(settings) as db, administrator_transaction(db.target) as admin:
        tenants_db.set_status(admin, args.tenant_id, "active")
    with _dagster_instance(settings) as instance:
        key = tenant_key(args.tenant_id)
        if not instance.has_dynamic_partition("tenants", key):
            instance.add_dynamic_partitions("tenants", [key])
    print(f"tenant {args.tenant_id} enabled; it gets nightly runs again")


def _emit(rows: list[dict], columns: Sequence[str], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(neutralise_row(row) for row in rows)
        print(buffer.getvalue(), end="")
    else:
        print(tabulate([[r.get(c) for c in columns] for r in rows], headers=list(columns)))


def _tenant_or_default(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = args.tenant_id or settings.default_tenant_id
    if tenant_id is None:
        raise CliError("name a TENANT_ID or set DEFAULT_TENANT_ID")
    return tenant_id


def cmd_targets(settings: Settings, args: argparse.Namespace) -> None:
    args.tenant_id = _tenant_or_default(settings, args)
    run_date = args.date or today_in_singapore()
    with open_database(settings) as db, db.tenant(args.tenant_id) as conn:
        rows = reports.daily_targets(conn, run_date)
    if rows is None:
        raise CliError(f"tenant {args.tenant_id} has no targets for {run_date} yet: materialize daily_targets "
                       f"for partition '{run_date}|{args.tenant_id}'")
    _emit(rows, ["company", "uen", "ssic_code", "domain", "match_score", "why"], args.format)


def cmd_shortlist(settings: Settings, args: argparse.Namespace) -> None:
    args.tenant_id = _tenant_or_default(settings, args)
    run_date = args.date or today_in_singapore()
    with open_database(settings) as db, db.tenant(args.tenant_id) as conn:
        rows = reports.shortlist(conn, run_date)
    if not rows:
        print(f"tenant {args.tenant_id}: no scores yet for {run_date}")
        return
    _emit(rows, ["rank", "company", "uen", "score", "bucket", "rationale", "primary_contact", "contact_title",
                 "verification", "odoo_partner_id", "odoo_lead_id"], args.format)


def cmd_runs(settings: Settings, args: argparse.Namespace) -> None:
    from nightly_pipeline.run_report import format_nights, night_reports

    run_date = args.date or today_in_singapore()
    with open_database(settings) as db, _dagster_instance(settings) as instance:
        nights = night_reports(db, instance, settings, run_date, [args.tenant] if args.tenant else None)
    if args.format == "json":
        print(json.dumps(nights, indent=2, default=str))
        return
    print(format_nights(nights) if nights else f"no tenant nights for {run_date}")


def cmd_report(settings: Settings, args: argparse.Namespace) -> None:
    from nightly_pipeline.report import build_shortlist_page
    from nightly_pipeline.report.render import render_page

    args.tenant_id = _tenant_or_default(settings, args)
    run_date = args.date or today_in_singapore()
    with open_database(settings) as db:
        page = build_shortlist_page(db, args.tenant_id, run_date, unit_prices=settings.vendor_unit_costs)
    document = render_page(page)
    if args.out == Path("-"):
        sys.stdout.write(document)
        return
    out = args.out or Path(f"shortlist-{args.tenant_id}-{run_date.isoformat()}.html")
    try:
        out.write_text(document, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None
    print(f"{out}: {len(page.actionable)} leads ready today, {len(page.not_actionable)} not actionable "
          f"({page.status_words.lower()})")


# -- wiring -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nightly-pipeline",
        description="Operate nightly_pipeline: database, ACRA data, tenants and shortlists.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = top.add_parser("db", help="app database").add_subparsers(dest="action", required=True)
    db.add_parser("migrate", help="create or upgrade the app schema (idempotent)").set_defaults(func=cmd_db_migrate)

    acra = top.add_parser("acra", help="ACRA registry data").add_subparsers(dest="action", required=True)
    load = acra.add_parser("load", help="upsert a data.gov.sg ACRA CSV into staging_acra_companies")
    load.add_argument("file", type=Path)
    load.set_defaults(func=cmd_acra_load)

    tenant = top.add_parser("tenant", help="tenants").add_subparsers(dest="action", required=True)
    add = tenant.add_parser("add", help="create a tenant with its Odoo connection; prints the tenant id last")
    add.add_argument("--name", required=True)
    add.add_argument("--odoo-url", required=True, help="https://host[:port] (http only on loopback)")
    add.add_argument("--odoo-db", required=True)
    add.add_argument("--odoo-user", required=True)
    add.add_argument("--odoo-password-env", required=True,
                     help="name of the variable that holds the password, with ODOO_PASSWORD as a word of it "
                          "(ODOO_PASSWORD_ACME)")
    add.add_argument("--icp-file", type=Path)
    add.add_argument("--daily-cap", type=_positive)
    add.add_argument("--export-unverified", action="store_true",
                     help="let the Odoo export include addresses not verified deliverable (never suppressed ones)")
    add.set_defaults(func=cmd_tenant_add)
    icp = tenant.add_parser("icp", help="replace a tenant's ICP")
    icp.add_argument("tenant_id", type=_tenant_id)
    icp.add_argument("--file", type=Path, required=True)
    icp.set_defaults(func=cmd_tenant_icp)
    tenant.add_parser("list", help="list tenants").set_defaults(func=cmd_tenant_list)
    export = tenant.add_parser("export-unverified",
                               help="allow or forbid exporting addresses not verified deliverable to Odoo")
    export.add_argument("tenant_id", type=_tenant_id)
    export.add_argument("allowed", choices=("on", "off"))
    export.set_defaults(func=cmd_tenant_export_unverified)
    disable = tenant.add_parser("disable", help="stop scheduling a tenant")
    disable.add_argument("tenant_id", type=_tenant_id)
    disable.set_defaults(func=cmd_tenant_disable)
    enable = tenant.add_parser("enable", help="schedule a disabled tenant again")
    enable.add_argument("tenant_id", type=_tenant_id)
    enable.set_defaults(func=cmd_tenant_enable)

    for name, func, help_text in (("shortlist", cmd_shortlist, "print a tenant's shortlist"),
                                  ("targets", cmd_targets, "print a tenant's daily targets")):
        sub = top.add_parser(name, help=help_text)
        sub.add_argument("tenant_id", type=_tenant_id, nargs="?", help="default: DEFAULT_TENANT_ID")
        sub.add_argument("--date", type=_date, help="YYYY-MM-DD (default: today in Singapore)")
        sub.add_argument("--format", choices=("table", "json", "csv"), default="table")
        sub.set_defaults(func=func)

    report = top.add_parser("report", help="write a tenant's shortlist as one self-contained HTML page")
    report.add_argument("tenant_id", type=_tenant_id, nargs="?", help="default: DEFAULT_TENANT_ID")
    report.add_argument("--date", type=_date, help="YYYY-MM-DD (default: today in Singapore)")
    report.add_argument("--out", type=Path, help="FILE.html, or - for standard output "
                                                 "(default: shortlist-TENANT-DATE.html here)")
    report.set_defaults(func=cmd_report)


    runs = top.add_parser("runs", help="each tenant-night's status, stage durations, counts and spend")
    runs.add_argument("--date", type=_date, help="YYYY-MM-DD (default: today in Singapore)")
    runs.add_argument("--tenant", type=_tenant_id, metavar="ID", help="only this tenant")
    runs.add_argument("--format", choices=("table", "json"), default="table")
    runs.set_defaults(func=cmd_runs)

    add_api_parser(top, _tenant_id)
    add_stack_parser(top)
    _add_installed_commands(top)
    return parser


def _add_installed_commands(top: argparse._SubParsersAction) -> None:
    """The subcommands installed distributions register under :data:`CLI_COMMANDS_GROUP`."""
    for entry_point in sorted(importlib.metadata.entry_points(group=CLI_COMMANDS_GROUP), key=lambda e: e.name):
        try:
            entry_point.load()(top)
        except Exception as exc:  # a broken add-on must not take the pipeline's own commands down
            print(f"nightly-pipeline: skipping the {entry_point.name!r} commands of {entry_point.value}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        result = args.func(settings, args)
    except (SettingsError, CliError, ApiCliError, IcpError, InvalidTenantKey, tenants_db.TenantExists,
            tenants_db.AdministratorRequired) as exc:
        print(f"nightly-pipeline: {exc}", file=sys.stderr)
        return 2
    except (DatabaseError, MigrationError, tenants_db.TenantNotFound) as exc:
        print(f"nightly-pipeline: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


def run() -> None:
    """Console-script entry point."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `nightly-pipeline shortlist 1 | head` ends quietly
    sys.exit(main())


if __name__ == "__main__":
    run()
