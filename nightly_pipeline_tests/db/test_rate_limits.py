"""The fleet's vendor rate limits: exact under concurrency across processes, by the database clock."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import textwrap

import pytest

from nightly_pipeline.db import Database, DatabaseTarget
from nightly_pipeline.db import rate_limits
from nightly_pipeline.db.rate_limits import FleetRateLimiter
from nightly_pipeline.vendors.rate_limits import KeyBlocked, Window, key_fingerprint

pytestmark = pytest.mark.database

KEY = key_fingerprint("zerobounce", "test-key-not-secret")
BUCKET = "zerobounce.batch"

ACQUIRERS = textwrap.dedent("""
    import asyncio, json, sys
    from nightly_pipeline.db import Database, DatabaseTarget
    from nightly_pipeline.db.rate_limits import FleetRateLimiter
    from nightly_pipeline.vendors.rate_limits import Window, key_fingerprint

    app_url, app_role, count, limit, period = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    db = Database(DatabaseTarget(admin_url=app_url, app_url=app_url, app_role=app_role, embedded=False), max_size=count)
    limiter = FleetRateLimiter(db, key_fingerprint("zerobounce", "test-key-not-secret"),
                               {"zerobounce.batch": (Window(limit, period),)})

    async def main():
        return await asyncio.gather(*(limiter.acquire("zerobounce.batch") for _ in range(count)))

    print(json.dumps([t.isoformat() for t in asyncio.run(main())]))
    db.close()
""")


def _most_in_any_window(times: list[dt.datetime], period_s: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if (t - start).total_seconds() < period_s)
               for i, start in enumerate(times))


def test_twenty_acquirers_in_two_processes_never_put_one_call_too_many_in_a_window(
        db: Database, db_target: DatabaseTarget) -> None:
    limit, period = 5, 1.0
    processes = [subprocess.Popen([sys.executable, "-c", ACQUIRERS, db_target.app_url, db_target.app_role, "10",
                                   str(limit), str(period)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    times: list[dt.datetime] = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        times += [dt.datetime.fromisoformat(t) for t in json.loads(out)]
    assert len(times) == 20
    assert _most_in_any_window(times, period) == limit


def test_a_full_window_is_admitted_at_once_and_the_next_call_is_told_when(db: Database) -> None:
    windows = (Window(3, 60.0),)
    with db.shared() as conn:
        admitted = [rate_limits.try_acquire(conn, KEY, BUCKET, windows) for _ in range(3)]
        refused = rate_limits.try_acquire(conn, KEY, BUCKET, windows)
        assert rate_limits.busiest_window(conn, KEY, BUCKET, 60.0) == 3
    assert all(a.admitted for a in admitted)
    assert not refused.admitted
    assert 0 < refused.wait_s <= 60.0


def test_every_window_of_a_bucket_holds_and_weights_count(db: Database) -> None:
    windows = (Window(100, 60.0), Window(150, 3600.0))
    with db.shared() as conn:
        assert rate_limits.try_acquire(conn, KEY, "openai.tokens", windows, weight=90).admitted
        assert not rate_limits.try_acquire(conn, KEY, "openai.tokens", windows, weight=20).admitted
        assert rate_limits.try_acquire(conn, KEY, "openai.tokens", windows, weight=10).admitted


def test_the_key_is_stored_only_as_its_hash(db: Database, admin) -> None:
    with db.shared() as conn:
        rate_limits.try_acquire(conn, KEY, BUCKET, (Window(5, 60.0),))
        rate_limits.record_block(conn, KEY, "zerobounce", 3600, "blocked")
    dump = " ".join(str(row) for table in ("vendor_rate_calls", "vendor_key_blocks")
                    for row in admin.execute(f"SELECT * FROM {table}").fetchall())
    assert "test-key-not-secret" not in dump
    assert admin.execute("SELECT count(*) FROM vendor_rate_calls WHERE key_sha256 = %s", (KEY,)).fetchone()[0] == 1


def test_a_recorded_block_stops_every_bucket_of_the_key_until_it_lifts(db: Database) -> None:
    limiter = FleetRateLimiter(db, KEY, {BUCKET: (Window(5, 60.0),)})
    asyncio.run(limiter.block("zerobounce", 3600, "ZeroBounce blocked the key"))
    for bucket in (BUCKET, "zerobounce.single"):
        with pytest.raises(KeyBlocked) as blocked:
            asyncio.run(limiter.acquire(bucket))
        assert blocked.value.until > dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=59)
    other_key = FleetRateLimiter(db, key_fingerprint("zerobounce", "another-key"), {BUCKET: (Window(5, 60.0),)})
    asyncio.run(other_key.acquire(BUCKET))
