"""dagster.yaml as `nightly-pipeline` writes it: SQLite by default, PostgreSQL with DAGSTER_PG_URL."""
import pytest
import yaml

from nightly_pipeline.instance import render_instance_yaml
from nightly_pipeline.jobs import nightly_executor
from nightly_pipeline.settings import SettingsError, load_settings

PG_URL = "postgresql+psycopg2://dagster:pg-secret-never-written@db.internal:5432/dagster"


def test_the_default_instance_keeps_sqlite_and_the_queue_limits():
    config = yaml.safe_load(render_instance_yaml(load_settings({"SCHED_TENANT_CONCURRENCY": "4"})))
    assert "storage" not in config
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert [(item["key"], item["limit"]) for item in limits] == [("dagster/partition/tenant", 4),
                                                                   ("dagster/partition/tenant", 1)]


def test_dagster_pg_url_puts_storage_in_postgres_by_reference_only():
    text = render_instance_yaml(load_settings({"DAGSTER_PG_URL": PG_URL, "SCHED_TENANT_CONCURRENCY": "2"}))
    config = yaml.safe_load(text)
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    assert config["concurrency"]["runs"]["tag_concurrency_limits"][0]["limit"] == 2
    assert "pg-secret-never-written" not in text


def test_a_bare_postgresql_url_is_refused_without_showing_it():
    with pytest.raises(SettingsError) as error:
        load_settings({"DAGSTER_PG_URL": "postgresql://dagster:pg-secret-never-written@db/dagster"})
    assert str(error.value).startswith("DAGSTER_PG_URL: expected a postgresql+psycopg2:// URL")
    assert "pg-secret-never-written" not in str(error.value)


def test_the_executor_is_in_process_unless_celery_is_chosen(monkeypatch):
    monkeypatch.delenv("DAGSTER_CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("DAGSTER_CELERY_BACKEND_URL", raising=False)
    assert nightly_executor(load_settings({})).name == "in_process"
    celery = nightly_executor(load_settings({"DAGSTER_EXECUTOR": "celery",
                                             "DAGSTER_CELERY_BROKER_URL": "redis://redis.internal:6379/3"}))
    assert celery.name == "celery"
    import os
    assert os.environ["DAGSTER_CELERY_BROKER_URL"] == "redis://redis.internal:6379/3"
    with pytest.raises(SettingsError, match="DAGSTER_EXECUTOR"):
        load_settings({"DAGSTER_EXECUTOR": "multiprocess"})
    with pytest.raises(SettingsError, match="DAGSTER_CELERY_BROKER_URL"):
        load_settings({"DAGSTER_CELERY_BROKER_URL": "amqp://guest@rabbit//"})
