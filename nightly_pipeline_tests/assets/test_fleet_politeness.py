"""Politeness across processes: tenant runs in separate processes share each domain's turn through
the database, and each site's crawl as a public fact, measured where it matters, at the sandbox web
server."""
import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest

from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.crawl.politeness import LEASE_MARGIN_S, politeness_key
from nightly_pipeline.db import acra as acra_db
from nightly_pipeline.db import targets as targets_db
from nightly_pipeline.db.politeness import PostgresDomainGate
from nightly_pipeline_tests.kit.graph import materialize
from nightly_pipeline_tests.kit.tenants import add_tenant

pytestmark = pytest.mark.database
ROOT = Path(__file__).resolve().parents[2]
WORKER = "nightly_pipeline_tests.assets.fleet_worker"
SOFTWARE = {"ssic_codes": ["62011", "62021", "62090", "63110"]}
DAY = "2026-06-01"
TARGETS = "6"
INTERVAL_S = 0.5
# The sandbox logs a request when its handler has answered, before the client has read all of it; a
# gap counted from the client's end is at least as large. The epsilon is the clocks' granularity.
CLOCK_EPSILON_S = 0.005
PROCESS_TIMEOUT_S = 600


def _worker(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", WORKER, *args], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _env(db_target, tmp_path: Path, name: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_target.app_url, "DATABASE_ADMIN_URL": db_target.admin_url,
            "DAGSTER_HOME": str(tmp_path / name)}


def _wait_for_line(process: subprocess.Popen, expected: str) -> None:
    seen = []
    for line in process.stdout:
        if line.strip() == expected:
            return
        seen.append(line)
    raise AssertionError(f"worker exited with {process.wait()} before printing {expected!r}:\n{''.join(seen)}")


def _selected_by_any(db, tenants: list[int]) -> set[int]:
    selected: set[int] = set()
    for tenant in tenants:
        with db.tenant(tenant) as conn:
            selected |= set(targets_db.get_manifest(conn, dt.date.fromisoformat(DAY)).selected_company_ids)
    return selected


def _targeted_by_all(db, tenants: list[int]) -> set[str]:
    """The registrable domains of the companies every tenant's manifest selected."""
    selections = []
    for tenant in tenants:
        with db.tenant(tenant) as conn:
            manifest = targets_db.get_manifest(conn, dt.date.fromisoformat(DAY))
            rows = acra_db.companies_by_id(conn, manifest.selected_company_ids)
        selections.append({politeness_key(row.website_domain) for row in rows.values() if row.website_domain})
    return set.intersection(*selections)


def test_three_tenant_runs_in_three_processes_space_every_domain_at_the_server(
        loaded_db, db_target, sandbox, sandbox_env, tmp_path):
    tenants = [add_tenant(loaded_db, f"tenant{n}", SOFTWARE) for n in range(3)]
    for tenant in tenants:
        materialize(db_target, [companies, icp_candidates, daily_targets], tenant, DAY, SHORTLIST_DAILY_CAP=TARGETS)
    sandbox.web.reset()

    runs = [_worker("crawl", str(tenant), DAY, env=_env(db_target, tmp_path, f"home{tenant}")) for tenant in tenants]
    try:
        for run in runs:
            _wait_for_line(run, "ready")
        for run in runs:
            run.stdin.write("go\n")
            run.stdin.flush()
        outputs = [run.communicate(timeout=PROCESS_TIMEOUT_S)[0] for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    assert [run.returncode for run in runs] == [0, 0, 0], "\n".join(outputs)

    log = list(sandbox.web.request_log)
    # The three runs targeted the same companies at the same moment; a site's crawl is a public fact,
    # so the fleet fetched each page of it once: one run crawled, the others waited for its result.
    # (Discovery reads a guessed domain's robots.txt and home page too, so the count is of the
    # crawl's other pages.)
    pages = Counter((politeness_key(entry.host), entry.path) for entry in log
                    if entry.status == 200 and entry.path not in ("/", "/robots.txt"))
    shared = {domain for domain, _ in pages} & _targeted_by_all(loaded_db, tenants)
    assert len(shared) >= 3, pages
    assert {count for (domain, _), count in pages.items() if domain in shared} == {1}
    # Each company's profile was paid for once by the fleet, not once per tenant.
    assert sandbox.openai.stats()["requests"] <= len(_selected_by_any(loaded_db, tenants))
    arrivals: dict[str, list[float]] = defaultdict(list)
    for entry in log:
        arrivals[politeness_key(entry.host)].append(entry.at)
    gaps = {domain: min(later - earlier for earlier, later in pairwise(sorted(times)))
            for domain, times in arrivals.items() if len(times) > 1}
    assert set(shared) <= set(gaps)
    too_close = {domain: round(gap, 4) for domain, gap in gaps.items() if gap < INTERVAL_S - CLOCK_EPSILON_S}
    assert not too_close


def test_a_holder_killed_mid_turn_blocks_its_domain_only_until_the_lease_expires(db, db_target, tmp_path):
    domain, request_s, interval_s = "acme.com.sg", 1.0, INTERVAL_S
    holder = _worker("hold", domain, str(request_s), env=_env(db_target, tmp_path, "holder"))
    try:
        _wait_for_line(holder, "holding")
        with psycopg.connect(db_target.admin_url, autocommit=True) as admin:
            held_by, expires = admin.execute(
                "SELECT holder, extract(epoch FROM lease_expires_at)::float8 FROM domain_politeness WHERE domain = %s",
                (domain,)).fetchone()
            assert held_by is not None
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)

            async def take_over() -> tuple[int, float]:
                async with PostgresDomainGate.open(db_target.app_url, max_size=1) as heir:
                    refusals = 0
                    while True:
                        asked_at = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
                        granted, seconds = await heir.take_turn(domain, interval_s=interval_s,
                                                                lease_s=request_s + LEASE_MARGIN_S)
                        if granted:
                            return refusals, asked_at
                        # Refused only while the dead holder's lease runs, never after it.
                        assert asked_at < expires
                        refusals += 1
                        await asyncio.sleep(min(seconds, interval_s))

            refusals, granted_asked_at = asyncio.run(take_over())
            start = admin.execute(
                """SELECT extract(epoch FROM lease_expires_at)::float8 - %s FROM domain_politeness
                   WHERE domain = %s""", (request_s + LEASE_MARGIN_S, domain)).fetchone()[0]
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode == -signal.SIGKILL
    assert refusals >= 1
    # The heir's request starts one interval after the expiry (the dead holder may have sent just
    # before it), and at that very instant unless the heir only asked after it.
    assert start >= expires + interval_s - 1e-6
    assert start == pytest.approx(expires + interval_s, abs=1e-3) or granted_asked_at > expires + interval_s - 1e-3
