"""`nightly-pipeline api token …` and `api audit`, tokens at rest, roles, settings and migrations."""
import hashlib
import json

import psycopg
import pytest
from psycopg import sql

from nightly_pipeline.api.tokens import Principal, digest, new_token
from nightly_pipeline.cli import main
from nightly_pipeline.db import migrate as migrate_module
from nightly_pipeline.settings import SettingsError, load_settings
from nightly_pipeline_tests.api.conftest import add_tenant


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_roles_nest_and_a_bound_token_sees_one_tenant():
    viewer, operator, admin = (Principal(1, "t", role, None) for role in ("viewer", "operator", "admin"))
    assert [viewer.may("viewer"), viewer.may("operator"), operator.may("operator"), operator.may("admin"),
            admin.may("admin")] == [True, False, True, False, True]
    bound = Principal(2, "b", "operator", 7)
    assert bound.sees(7) and not bound.sees(8) and operator.sees(8)


def test_tokens_are_long_random_and_only_their_digest_is_kept():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(t.startswith("npa_") and len(t) >= 40 for t in tokens)
    token = tokens.pop()
    assert digest(token) == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.database
def test_token_commands_round_trip(db_env, db, admin, capsys):
    tenant = add_tenant(db, "acme")
    code, out, err = cli(capsys, "api", "token", "create", "--name", "runbook", "--role", "operator",
                         "--tenant", str(tenant))
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert token.startswith("npa_") and "shown once" in err and token not in err
    stored = admin.execute("SELECT row_to_json(t)::text FROM api_tokens t").fetchall()
    assert len(stored) == 1 and token not in stored[0][0]
    assert hashlib.sha256(token.encode()).hexdigest() in stored[0][0]

    assert cli(capsys, "api", "token", "create", "--name", "runbook", "--role", "viewer")[0] == 2
    code, _, err = cli(capsys, "api", "token", "create", "--name", "boss", "--role", "admin", "--tenant", str(tenant))
    assert code == 2 and "cannot be bound to a tenant" in err
    code, _, err = cli(capsys, "api", "token", "create", "--name", "Bad Name", "--role", "viewer")
    assert code == 2 and "token name must be" in err
    code, _, err = cli(capsys, "api", "token", "create", "--name", "ghost", "--role", "viewer", "--tenant", "999")
    assert code == 2 and "no tenant with id 999" in err
    assert cli(capsys, "api", "token", "create", "--name", "boss", "--role", "admin")[0] == 0

    code, out, _ = cli(capsys, "api", "token", "list")
    assert code == 0 and "runbook" in out and "operator" in out and "boss" in out and "npa_" not in out
    code, out, _ = cli(capsys, "api", "token", "revoke", "runbook")
    assert code == 0 and "revoked" in out
    code, _, err = cli(capsys, "api", "token", "revoke", "runbook")
    assert code == 2 and "no active token named 'runbook'" in err
    assert "runbook" not in cli(capsys, "api", "token", "list")[1]
    assert "revoked" in cli(capsys, "api", "token", "list", "--all")[1]
    # The name is free again once revoked: rotating a runbook's token keeps its name.
    assert cli(capsys, "api", "token", "create", "--name", "runbook", "--role", "operator")[0] == 0

    code, out, _ = cli(capsys, "api", "audit", "--format", "json")
    trail = json.loads(out)
    assert [(r["action"], r["token_name"], r["outcome"], r["client"]) for r in reversed(trail)] == [
        ("tokens.create", "runbook", "created", "cli"), ("tokens.create", "boss", "created", "cli"),
        ("tokens.revoke", "runbook", "revoked", "cli"), ("tokens.create", "runbook", "created", "cli")]
    code, out, _ = cli(capsys, "api", "audit", "--action", "tokens.revoke")
    assert code == 0 and out.count("tokens.revoke") == 1


def test_api_settings_have_defaults_and_clear_errors():
    settings = load_settings({})
    assert settings.api_submissions_per_minute == 6 and settings.vendor_unit_costs == {}
    assert load_settings({"VENDOR_UNIT_COSTS": "tavily=0.008, Lusha=0.1"}).vendor_unit_costs == \
        {"tavily": 0.008, "lusha": 0.1}
    for env, expected in (({"API_SUBMISSIONS_PER_MINUTE": "0"}, "API_SUBMISSIONS_PER_MINUTE: expected a number >= 1"),
                          ({"VENDOR_UNIT_COSTS": "tavily"}, "VENDOR_UNIT_COSTS: expected comma-separated vendor=price"),
                          ({"VENDOR_UNIT_COSTS": "tavily=-1"}, "VENDOR_UNIT_COSTS: expected comma-separated")):
        with pytest.raises(SettingsError, match=expected):
            load_settings(env)


@pytest.mark.database
def test_a_migration_numbered_below_the_newest_applied_one_is_still_applied(pg_server_url, db_target, monkeypatch):
    """Branches number migrations ahead of each other: 0011 may land before 0009 and 0010."""
    name = "np_test_late_migration"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(db_target.admin_url)
    url = psycopg.conninfo.make_conninfo(**{**params, "dbname": name})
    shipped = migrate_module.available_migrations()
    ahead = migrate_module.Migration(shipped[-1].version + 5, "from_a_branch_ahead", "CREATE TABLE ahead (x int);")
    try:
        # Another branch's migration, numbered above ours, reaches this database first...
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: (*shipped[:-1], ahead))
        applied = migrate_module.migrate(url, db_target.app_role)
        assert [m.version for m in applied] == [m.version for m in (*shipped[:-1], ahead)]
        # ...and ours, numbered below it, is still applied once it arrives.
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: (*shipped, ahead))
        with psycopg.connect(url) as conn:
            assert [m.name for m in migrate_module.pending_migrations(conn)] == [shipped[-1].name]
        assert [m.name for m in migrate_module.migrate(url, db_target.app_role)] == [shipped[-1].name]
        assert migrate_module.migrate(url, db_target.app_role) == []
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
