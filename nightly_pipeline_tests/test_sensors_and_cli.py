"""The sensor against the real registry, and the CLI round trip (contract §2)."""
import json
from importlib import resources

import dagster as dg
import pytest

from nightly_pipeline.cli import main
from nightly_pipeline.db.database import administrator_transaction
from nightly_pipeline.db.resource import DatabaseResource
from nightly_pipeline.sensors import tenant_registry_sensor

pytestmark = pytest.mark.database


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round_trip(db_env, db, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_ODOO_PASSWORD", "not-printed")
    assert cli(capsys, "db", "migrate")[1].strip() == "schema is up to date"
    sample = resources.files("nightly_pipeline") / "data" / "acra_sample.csv"
    code, out, err = cli(capsys, "acra", "load", str(sample))
    assert code == 0 and "rejected" in out and err == ""

    bad = tmp_path / "bad.csv"
    bad.write_text("uen,entity_name,entity_type_description,entity_status_description,registration_incorporation_date,"
                   "primary_ssic_code,primary_ssic_description,postal_code,street_name\n"
                   "201912345K,GOOD PTE LTD,Local Company,Live,2019-01-01,62011,x,1,y\n"
                   "201912346K,BAD PTE LTD,Local Company,Live,2019-13-01,62011,x,1,y\n")
    code, out, err = cli(capsys, "acra", "load", str(bad))
    assert code == 0
    assert "1 good rows (1 new, 0 updated, 0 unchanged), 1 rejected" in out
    assert "line 3 (uen 201912346K): unparseable registration_incorporation_date" in err

    icp = tmp_path / "icp.json"
    icp.write_text(json.dumps({"ssic_codes": ["62011"], "keywords": ["saas"]}))
    code, out, err = cli(capsys, "tenant", "add", "--name", "Acme", "--odoo-url", "http://127.0.0.1:8069",
                         "--odoo-db", "acme", "--odoo-user", "admin", "--odoo-password-env", "DEMO_ODOO_PASSWORD",
                         "--icp-file", str(icp), "--daily-cap", "3")
    assert code == 0, err
    tenant_id = out.strip().splitlines()[-1]
    assert tenant_id == "1"
    assert "not-printed" not in out + err

    code, out, _ = cli(capsys, "tenant", "list")
    assert "Acme" in out and "yes" in out
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("tenants") == ["1"]

    icp.write_text(json.dumps({"ssic_codes": ["62011"], "colour": "blue"}))
    code, _, err = cli(capsys, "tenant", "icp", "1", "--file", str(icp))
    assert code == 2 and "unknown key 'colour' in ICP" in err

    code, out, _ = cli(capsys, "shortlist", "1", "--date", "2026-06-01")
    assert "no scores yet" in out
    code, _, err = cli(capsys, "shortlist", "--date", "2026-06-01")
    assert code == 2 and "name a TENANT_ID or set DEFAULT_TENANT_ID" in err
    monkeypatch.setenv("DEFAULT_TENANT_ID", tenant_id)
    code, out, _ = cli(capsys, "shortlist", "--date", "2026-06-01", "--format", "json")
    assert code == 0 and "tenant 1: no scores yet" in out
    monkeypatch.delenv("DEFAULT_TENANT_ID")
    code, _, err = cli(capsys, "targets", "1", "--date", "2026-06-01")
    assert code == 2 and "no targets for 2026-06-01" in err

    code, out, _ = cli(capsys, "tenant", "export-unverified", "1", "on")
    assert code == 0 and "includes addresses not verified deliverable" in out
    from nightly_pipeline.db import tenants as tenants_db
    with db.tenant(1) as conn:
        assert tenants_db.get_tenant(conn).export_unverified is True

    code, out, _ = cli(capsys, "tenant", "disable", "1")
    assert code == 0
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("tenants") == []
    assert "disabled" in cli(capsys, "tenant", "list")[1]

    code, out, _ = cli(capsys, "tenant", "enable", "1")
    assert code == 0 and "enabled" in out
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("tenants") == ["1"]
    with db.tenant(1) as conn:
        assert tenants_db.get_tenant(conn).status == "active"
    assert "disabled" not in cli(capsys, "tenant", "list")[1]


def test_cli_errors_are_one_line(db_env, capsys, monkeypatch):
    monkeypatch.setenv("SCHED_START_CRON", "every night")
    code, out, err = cli(capsys, "tenant", "list")
    assert code == 2
    assert err.strip() == ("nightly-pipeline: SCHED_START_CRON: expected a five-field cron expression such as "
                           "'0 1 * * *', got 'every night'")
    monkeypatch.delenv("SCHED_START_CRON")
    code, _, err = cli(capsys, "tenant", "add", "--name", "x", "--odoo-url", "u", "--odoo-db", "d",
                       "--odoo-user", "u", "--odoo-password-env", "not a var")
    assert code == 2 and "--odoo-password-env must name an environment variable" in err
    with pytest.raises(SystemExit):
        main(["tenant", "icp", "1|2", "--file", "x.json"])
    assert "tenant id must be a positive integer, got '1|2'" in capsys.readouterr().err


def test_sensor_registers_active_tenants_and_drops_the_rest(db, db_target):
    from nightly_pipeline.db import tenants as tenants_db

    with db.shared() as conn:
        active = tenants_db.register_tenant(conn, "active", None)
        no_odoo = tenants_db.register_tenant(conn, "no odoo", None)
        disabled = tenants_db.register_tenant(conn, "disabled", None)
    for tenant in (active, disabled):
        with db.tenant(tenant) as conn:
            tenants_db.upsert_odoo_connection(conn, tenants_db.OdooConnection("https://odoo.example", "d", "a", "ODOO_PASSWORD", True))
    with administrator_transaction(db_target) as conn:
        tenants_db.set_status(conn, disabled, "disabled")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [str(disabled), "99"])
        with dg.build_sensor_context(instance=instance, resources={
                "database": DatabaseResource(database_url=db_target.app_url)}) as context:
            result = tenant_registry_sensor(context)
    added, removed = result.dynamic_partitions_requests
    assert added.partition_keys == [str(active)]
    assert sorted(removed.partition_keys) == sorted([str(disabled), "99"])
    assert str(no_odoo) not in added.partition_keys
