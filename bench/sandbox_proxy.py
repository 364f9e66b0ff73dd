"""Throughput of the simulated-web proxy at zero latency with 300 concurrent keep-alive connections.

The server runs in its own process (pinned to one core when the machine has two or more), the client in
this one, so they never share a core. The client sends absolute-form GETs for ordinary pages of many
simulated sites for a fixed number of seconds and prints requests/s and the ratio to the 1,000 req/s floor.

    .venv/bin/python bench/sandbox_proxy.py [--seconds 8] [--connections 300]
    .venv/bin/python bench/sandbox_proxy.py --quick   # 3 s of load
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import aiohttp
from bench_support import pin_to_core

FLOOR_RPS = 1000
WARMUP_S = 1.0


def _serve(ready: Connection, stop: Event) -> None:
    """Server process: build the world, start the proxy, report its port, run until told to stop."""
    pin_to_core(0)
    from nightly_pipeline_sandbox.web import WebProxyServer
    from nightly_pipeline_sandbox.world import World

    async def main() -> None:
        server = WebProxyServer(World.from_acra_csv())
        await server.start()
        ready.send(server.port)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        ready.send(server.stats()["requests"])
        await server.stop()

    asyncio.run(main())


def _page_urls() -> list[str]:
    from nightly_pipeline_sandbox.world import World

    world = World.from_acra_csv()
    return [f"http://{site.domain}{path}" for site in world.sites.values() if site.hard_case is None
            for path in ("/", "/about", "/contact", "/products", "/products/item-3")]


async def _load(proxy: str, urls: list[str], connections: int, seconds: float) -> tuple[int, int, float, list[float]]:
    """(successful, failed, measured seconds, per-request latencies) after a warm-up."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0, force_close=False)
    next_url = itertools.cycle(urls).__next__
    ok = failed = 0
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from, deadline = start + WARMUP_S, start + WARMUP_S + seconds

        async def worker() -> None:
            nonlocal ok, failed
            while (sent := time.perf_counter()) < deadline:
                try:
                    async with session.get(next_url(), proxy=proxy) as response:
                        await response.read()
                        success = response.status == 200
                except aiohttp.ClientError:
                    success = False
                done = time.perf_counter()
                # Count only what completes inside the measured window.
                if measure_from <= done <= deadline:
                    latencies.append(done - sent)
                    ok, failed = ok + success, failed + (not success)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return ok, failed, seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="3 seconds of load (what `make bench` runs)")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 3.0

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    stop = context.Event()
    server = context.Process(target=_serve, args=(child_end, stop), daemon=True)
    server.start()
    try:
        port = parent_end.recv()
        pin_to_core(1)
        urls = _page_urls()
        ok, failed, seconds, latencies = asyncio.run(
            _load(f"http://127.0.0.1:{port}", urls, args.connections, args.seconds))
        stop.set()
        served = parent_end.recv()
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()

    rps = ok / seconds
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"simulated-web proxy, zero latency, {args.connections} concurrent connections, "
          f"{len(urls)} distinct pages, {seconds:.0f} s measured after {WARMUP_S:.0f} s warm-up")
    print(f"  requests ok        {ok:>10,}   failed {failed:,}   (server counted {served:,} incl. warm-up)")
    print(f"  throughput         {rps:>10,.0f} req/s")
    print(f"  ratio to floor     {rps / FLOOR_RPS:>10.2f} x   (floor {FLOOR_RPS:,} req/s)")
    print(f"  client latency     p50 {quantiles[49] * 1000:.1f} ms   p99 {quantiles[98] * 1000:.1f} ms")
    print("  note: the client runs on one core too; if it saturates first, the server figure is a lower bound")


if __name__ == "__main__":
    main()
