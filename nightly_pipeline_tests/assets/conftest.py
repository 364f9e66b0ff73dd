"""Fixtures for materializing pipeline stages against the real database and the sandbox."""
from collections.abc import Iterator
from importlib import resources

import pytest

from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.domain.acra import parse_acra_text
from nightly_pipeline_sandbox.runner import Sandbox, SandboxConfig


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(web_latency_scale=0.1, vendor_latency_scale=0)) as running:
        yield running


@pytest.fixture
def sandbox_env(sandbox: Sandbox, monkeypatch) -> dict[str, str]:
    sandbox.run(_reset(sandbox))
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    return sandbox.env


async def _reset(sandbox: Sandbox) -> None:
    for server in sandbox.servers:
        server.reset()


@pytest.fixture
def loaded_db(db):
    text = (resources.files("nightly_pipeline") / "data" / "acra_sample.csv").read_text(encoding="utf-8")
    with db.shared() as conn:
        acra_db.upsert_staging(conn, parse_acra_text(text).rows)
    return db
