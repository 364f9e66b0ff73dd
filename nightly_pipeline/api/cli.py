"""``nightly-pipeline api …``: serve the admin API, manage its tokens, read its audit trail."""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys

from tabulate import tabulate

from nightly_pipeline.api import tokens
from nightly_pipeline.db import open_database
from nightly_pipeline.db import admin_api as admin_db
from nightly_pipeline.settings import Settings


class ApiCliError(Exception):
    """An operator mistake: printed as one line, exit status 2."""


def _cli_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _utc(moment: dt.datetime, *, seconds: bool = False) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port from 1 to 65535, got {value!r}")
    return int(value)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from nightly_pipeline.api.server import serve

    serve(settings, args.host, args.port)


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> None:
    try:
        tokens.check_request(args.name, args.role, args.tenant)
    except tokens.TokenRequestError as exc:
        raise ApiCliError(str(exc)) from None
    with open_database(settings) as db:
        try:
            record, token = tokens.issue_token(db, args.name, args.role, args.tenant, _cli_user())
        except (admin_db.TokenNameTaken, admin_db.UnknownTenant) as exc:
            raise ApiCliError(str(exc)) from None
        with db.shared() as conn:
            admin_db.record_audit(conn, admin_db.AuditEntry(
                action="tokens.create", outcome="created", token_id=record.token_id, token_name=record.name,
                role=record.role, tenant=record.tenant_id, detail=f"by {_cli_user()}", client="cli"))
    scope = f"tenant {record.tenant_id} only" if record.tenant_id else "every tenant"
    print(f"token {record.name!r} created: role {record.role}, {scope}. It is shown once; store it now "
          f"(only its SHA-256 digest is kept).", file=sys.stderr)
    print(token)


def cmd_token_list(settings: Settings, args: argparse.Namespace) -> None:
    with open_database(settings) as db, db.shared() as conn:
        records = admin_db.list_tokens(conn, include_revoked=args.all)
    rows = [(r.name, r.role, r.tenant_id or "all", _utc(r.created_at), r.created_by,
             _utc(r.last_used_at) if r.last_used_at else "never",
             "active" if r.active else f"revoked {_utc(r.revoked_at)}") for r in records]
    print(tabulate(rows, headers=["name", "role", "tenant", "created (UTC)", "by", "last used", "status"]))


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> None:
    with open_database(settings) as db, db.shared() as conn:
        try:
            record = admin_db.revoke_token(conn, args.name)
        except admin_db.TokenNotFound as exc:
            raise ApiCliError(str(exc)) from None
        admin_db.record_audit(conn, admin_db.AuditEntry(
            action="tokens.revoke", outcome="revoked", token_id=record.token_id, token_name=record.name,
            role=record.role, tenant=record.tenant_id, detail=f"by {_cli_user()}", client="cli"))
    print(f"token {record.name!r} revoked; requests with it now get 401")


def cmd_audit(settings: Settings, args: argparse.Namespace) -> None:
    with open_database(settings) as db, db.shared() as conn:
        rows = admin_db.audit_trail(conn, limit=args.limit, action=args.action, token_name=args.token)
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    print(tabulate([(_utc(r["at"], seconds=True), r["token_name"] or "-", r["role"] or "-", r["action"],
                     r["tenant"] or "-", r["outcome"], r["http_status"] or "-", r["client"] or "-", r["detail"])
                    for r in rows],
                   headers=["at (UTC)", "token", "role", "action", "tenant", "outcome", "status", "client", "detail"]))


def add_api_parser(top: argparse._SubParsersAction, tenant_id_type) -> None:
    api = top.add_parser("api", help="the admin HTTP API: serve it, manage its tokens, read its audit trail")
    actions = api.add_subparsers(dest="action", required=True)

    serve = actions.add_parser("serve", help="serve the admin API (FastAPI under uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port (default: 8080)")
    serve.set_defaults(func=cmd_serve)

    token = actions.add_parser("token", help="bearer tokens").add_subparsers(dest="token_action", required=True)
    create = token.add_parser("create", help="issue a token; prints it once, alone on the last line")
    create.add_argument("--name", required=True, help="lowercase letters, digits, '.', '_', '-'")
    create.add_argument("--role", required=True, choices=tokens.ROLES)
    create.add_argument("--tenant", type=tenant_id_type, metavar="ID", help="bind the token to this tenant")
    create.set_defaults(func=cmd_token_create)
    listing = token.add_parser("list", help="list tokens (names, roles, tenants, use; never the tokens)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="revoke the active token of that name")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_token_revoke)

    audit = actions.add_parser("audit", help="what the API changed and refused, newest first")
    audit.add_argument("--limit", type=_positive, default=50)
    audit.add_argument("--action", help="only this action, e.g. runs.submit")
    audit.add_argument("--token", help="only requests made with this token name")
    audit.add_argument("--format", choices=("table", "json"), default="table")
    audit.set_defaults(func=cmd_audit)
