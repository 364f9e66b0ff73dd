"""A crawling process of its own, for the fleet politeness tests (run with ``python -m``).

    python -m nightly_pipeline_tests.assets.fleet_worker crawl TENANT_ID DAY
        One tenant's crawl_corpus run, as the schedule or run_nightly.py starts one: its own Dagster
        instance, event loop, database pool and politeness gate. It prints ``ready`` once imported and
        starts when a line arrives on stdin, so that several runs crawl at the same time.

    python -m nightly_pipeline_tests.assets.fleet_worker hold DOMAIN REQUEST_S
        Takes DOMAIN's turn through the PostgreSQL gate, prints ``holding``, and waits inside the
        turn until it is killed.

Both read DATABASE_URL (and the sandbox's variables) from the environment.
"""
from __future__ import annotations

import asyncio
import os
import sys
import types


def _crawl(tenant_id: int, day: str) -> int:
    from nightly_pipeline.assets.crawl_corpus import crawl_corpus
    from nightly_pipeline_tests.kit.graph import materialize

    print("ready", flush=True)
    sys.stdin.readline()
    target = types.SimpleNamespace(app_url=os.environ["DATABASE_URL"])
    materialize(target, [crawl_corpus], tenant_id, day)
    return 0


async def _hold(domain: str, request_s: float) -> None:
    from nightly_pipeline.crawl.politeness import DomainScheduler
    from nightly_pipeline.db.politeness import PostgresDomainGate

    async with PostgresDomainGate.open(os.environ["DATABASE_URL"], max_size=1) as gate:
        scheduler = DomainScheduler(0.5, gate=gate, request_s=request_s)
        async with scheduler.slot(domain):
            print("holding", flush=True)
            await asyncio.sleep(3600)


def main(argv: list[str]) -> int:
    mode, *args = argv
    if mode == "crawl":
        return _crawl(int(args[0]), args[1])
    if mode == "hold":
        asyncio.run(_hold(args[0], float(args[1])))
        return 0
    raise SystemExit(f"unknown mode {mode!r}: crawl or hold")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
