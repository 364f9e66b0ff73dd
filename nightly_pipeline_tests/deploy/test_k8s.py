"""deploy/k8s/: the K8sRunLauncher instance loads in dagster-k8s 0.29.27 (no cluster contacted:
the kube config is a file naming a loopback API server nobody listens on), and the Helm values
use the chart's keys and carry the same run queue limits as the instance and the pipeline's own
dagster.yaml."""
from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg import sql

from nightly_pipeline.instance import render_instance_yaml
from nightly_pipeline.settings import load_settings

dagster_k8s = pytest.importorskip("dagster_k8s", reason="the k8s extra is not installed (pip install '.[k8s]')")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: nowhere
    cluster: {server: "https://127.0.0.1:9"}
users:
  - name: nobody
    user: {token: "not-a-token"}
contexts:
  - name: nowhere
    context: {cluster: nowhere, user: nobody, namespace: nightly-pipeline}
current-context: nowhere
"""
# Keys of the dagster chart's values (helm/dagster/schema, DagsterHelmValues and its subschemas).
CHART_TOP_LEVEL = {"dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
                   "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
                   "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox",
                   "migrate", "telemetry", "serviceAccount", "global", "retention", "concurrency",
                   "additionalInstanceConfig"}
K8S_RUN_LAUNCHER = {"image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
                    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
                    "failPodOnRunFailure", "resources", "runK8sConfig", "securityContext", "schedulerName"}
POSTGRESQL = {"postgresqlScheme", "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
              "postgresqlDatabase", "postgresqlParams", "service"}
GLOBAL = {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName",
          "dagsterInstanceConfigMap"}
QUEUED_RUN_COORDINATOR = {"maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
                          "dequeueUseThreads"}
USER_DEPLOYMENT_REQUIRED = {"name", "image", "port"}


@pytest.fixture
def k8s_home(tmp_path: Path, pg_server_url: str, monkeypatch) -> Path:
    name = f"np_k8s_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(pg_server_url)
    host = info.get("host", "127.0.0.1")
    where = f"@/{name}?host={host}" if host.startswith("/") else f"@{host}:{info.get('port', 5432)}/{name}"
    monkeypatch.setenv("DAGSTER_PG_URL", f"postgresql+psycopg2://{info.get('user', 'postgres')}{where}")
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    # Outside a cluster: the kube config from a file instead of the pod's service account.
    config["run_launcher"]["config"].update(load_incluster_config=False,
                                            kubeconfig_file=str(tmp_path / "kubeconfig"))
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    try:
        yield tmp_path
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.database
def test_the_instance_loads_the_k8s_run_launcher_over_postgres_storage(k8s_home: Path):
    with dg.DagsterInstance.from_config(str(k8s_home)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, dagster_k8s.K8sRunLauncher)
        assert (launcher.job_namespace, launcher.instance_config_map) == (
            "nightly-pipeline", "nightly-pipeline-dagster-instance")
        assert launcher.env_secrets == ["nightly-pipeline-secrets"]
        assert launcher.resources["limits"] == {"cpu": "1", "memory": "2Gi"}
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        # The launcher is usable without a cluster until it launches: nothing was contacted.
        assert instance.get_runs() == []


def _tag_limits(limits: list[dict]) -> list[tuple]:
    return [(item["key"], repr(item.get("value")), item["limit"]) for item in limits]


def test_the_queue_limits_agree_across_values_instance_and_the_pipeline_default():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    pipeline = yaml.safe_load(render_instance_yaml(load_settings({})))
    chart_limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert (_tag_limits(chart_limits["tagConcurrencyLimits"])
            == _tag_limits(instance["run_coordinator"]["config"]["tag_concurrency_limits"])
            == _tag_limits(pipeline["concurrency"]["runs"]["tag_concurrency_limits"]))
    assert chart_limits["maxConcurrentRuns"] == pipeline["concurrency"]["runs"]["max_concurrent_runs"]


def test_the_helm_values_use_the_charts_keys():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert set(values) <= CHART_TOP_LEVEL
    assert set(values["global"]) <= GLOBAL and set(values["postgresql"]) <= POSTGRESQL
    assert values["postgresql"]["enabled"] is False and "postgresqlPassword" not in values["postgresql"]
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher" and set(launcher["config"]) == {"k8sRunLauncher"}
    assert set(launcher["config"]["k8sRunLauncher"]) <= K8S_RUN_LAUNCHER
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator" and coordinator["enabled"] is True
    assert set(coordinator["config"]["queuedRunCoordinator"]) <= QUEUED_RUN_COORDINATOR
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert USER_DEPLOYMENT_REQUIRED <= set(deployment)
        assert deployment["dagsterApiGrpcArgs"] == ["-m", "nightly_pipeline.definitions"]
    # Secrets by reference only: every envSecrets entry names a Secret, and no value looks like one.
    text = (DEPLOY / "values.yaml").read_text()
    assert "nightly-pipeline-secrets" in text and "API_KEY" not in text and "password:" not in text.lower()


def test_the_example_secret_names_every_variable_a_run_needs():
    documents = list(yaml.safe_load_all((DEPLOY / "secrets.example.yaml").read_text()))
    secret = next(d for d in documents if d["metadata"]["name"] == "nightly-pipeline-secrets")
    assert {"DATABASE_URL", "DAGSTER_PG_URL", "OPENAI_API_KEY", "TAVILY_API_KEY", "LUSHA_API_KEY",
            "ZEROBOUNCE_API_KEY"} <= set(secret["stringData"])
    assert secret["stringData"]["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
