"""`make demo` as a user runs it, twice: the README's first command, from its own process to its output.

The first run prints both tenants' shortlists and pages; the second finds the night done and spends
nothing: no request to the web or a paid vendor, nothing created in Odoo.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nightly_pipeline_sandbox.runner import DEMO_ODOO_DATABASES

PAID_OR_POLITE = ("web", "tavily", "lusha", "zerobounce", "openai")
DEMO_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def demo_home() -> Iterator[Path]:
    """Not under pytest's basetemp: the embedded server runs as another user when we are root, and
    pytest keeps its own folder at mode 0700."""
    folder = Path(tempfile.mkdtemp(prefix="nightly-pipeline-demo-"))
    folder.chmod(0o755)
    yield folder / "dagster_home"
    shutil.rmtree(folder, ignore_errors=True)


def _run_demo(home: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items()
           if name.lower() not in ("database_url", "database_admin_url")}
    env["DAGSTER_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "nightly_pipeline_sandbox.demo"], env=env, capture_output=True,
                          text=True, timeout=DEMO_TIMEOUT_S, check=False)


def _json_after(label: str, output: str) -> dict[str, Any]:
    match = re.search(rf"^{re.escape(label)}: (\{{.*\}})$", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return json.loads(match.group(1))


def test_the_demo_prints_both_shortlists_and_its_rerun_spends_nothing(demo_home: Path):
    first = _run_demo(demo_home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(re.findall(r"^  .+: ok in [\d.]+ s$", first.stdout, re.MULTILINE)) == 2, first.stdout
    assert first.stdout.count("Rationales:") == 2
    pages = sorted(demo_home.glob("shortlist-*.html"))
    assert len(pages) == 2 and all("<h1>Shortlist for " in page.read_text(encoding="utf-8") for page in pages)
    first_served = _json_after("Sandbox requests served", first.stdout)
    assert all(first_served[name] > 0 for name in ("web", "openai", "odoo")), first_served
    created = _json_after("Records created in the sandbox Odoo by this demo", first.stdout)
    assert sorted(created) == sorted(DEMO_ODOO_DATABASES)
    assert all(created[db].get("res.partner", 0) > 0 and created[db].get("crm.lead", 0) > 0 for db in created), created

    second = _run_demo(demo_home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("Rationales:") == 2
    second_served = _json_after("Sandbox requests served", second.stdout)
    assert {name: second_served[name] for name in PAID_OR_POLITE} == dict.fromkeys(PAID_OR_POLITE, 0)
    created = _json_after("Records created in the sandbox Odoo by this demo", second.stdout)
    assert all(sum(created[db].values()) == 0 for db in DEMO_ODOO_DATABASES), created
