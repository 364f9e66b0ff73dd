"""The site crawler against the simulated web: wall time versus the floor that politeness allows.

The simulated-web proxy runs in its own process (pinned to one core when the machine has two or more),
the crawler in this one, so they never share a core. The world is the shipped ACRA sample extended with
more rows of the same generator (``scripts/make_acra_sample.py``) until it has enough sites; the crawler
fetches robots.txt, the home page and up to 6 key pages per domain through the proxy, spacing requests
per registrable domain by 0.5 s (Crawl-delay can raise that).

The floor is the larger of
  (a) the slowest domain's serial time: the sum, over that domain's requests as the proxy logged them,
      of the latency the proxy drew for each, plus the gap politeness requires between consecutive
      requests (the interval, Crawl-delay, or Retry-After after a 429/503);
  (b) the serial time of all domains divided by the number of domains crawled at once.
The proxy's own handling is left out (the report gives its median, about a millisecond), and so is the
time a streamed body takes, which depends on how fast the client reads. Retry backoff the server did not
ask for is not counted either, so no polite crawler can beat the floor. The ``hang`` hard case is left
out of the crawl: its page never answers, so its serial time would be the crawler's own 15 s timeout and
(a) would measure that, not politeness. Every other hard case is crawled and accounted for.

    .venv/bin/python bench/crawl.py [--domains 1000] [--concurrency 500] [--latency-scale 1] [--seed 7]
    .venv/bin/python bench/crawl.py --quick          # 100 domains, a smoke run
    .venv/bin/python bench/crawl.py --gate memory    # per-domain turns in this process, not in PostgreSQL
    .venv/bin/python bench/crawl.py --profile /tmp/crawl.prof   # cProfile of the crawling process

By default every request takes its domain's turn in PostgreSQL, as the pipeline does (a throwaway
embedded server, started before the crawler is pinned to its core, deleted afterwards); ``--gate memory``
keeps the turns in the crawling process, so the two runs together give the cost of the database gate.
The proxy-side SSRF check resolves every host: a resolver that answers every name with one public
address stands in for DNS (the proxy, not that address, is what the crawler connects to).

The default of 500 domains in flight is past the point where (b) drops below (a) for 1,000 domains
(about 350), so the floor is set by politeness alone; more in flight cannot lower it, only add load.

It prints a short report and one JSON line with the figures. Only loopback is ever contacted: an audit
hook in both processes refuses any other connection or name lookup.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import dataclasses
import importlib.util
import json
import math
import multiprocessing
import pstats
import random
import resource
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bench_support import allow_only_loopback, pin_to_core

from nightly_pipeline.crawl.crawler import CrawlerConfig, SiteCrawl, SiteCrawler
from nightly_pipeline.crawl.politeness import DomainGate, politeness_key

if TYPE_CHECKING:
    from nightly_pipeline_sandbox.web import WebProxyServer
    from nightly_pipeline_sandbox.world import World

DEFAULT_DOMAINS = 1000
QUICK_DOMAINS = 100
DEFAULT_CONCURRENCY = 500
DEFAULT_TIMEOUT_S = 30 * 60.0
MIN_INTERVAL_S = 0.5
MAX_PAGES = 6
TARGET_RATIO = 1.3
TARGET_PEAK_RSS_MB = 300.0

EXCLUDED_HARD_CASES: dict[str, str] = {
    "hang": "its /about never answers, so its serial time is the crawler's own timeout, not politeness",
}
RETRY_AFTER_STATUSES = frozenset({429, 503})

GATES = ("postgres", "memory")
APP_ROLE = "nightly_app"
BENCH_DATABASE = "bench_crawl"
# Any globally routable address passes the SSRF check; the crawler connects to the proxy, never to it.
PUBLIC_ADDRESS = "93.184.216.34"

SERVER_CORE, CRAWLER_CORE = 0, 1
SERVER_START_TIMEOUT_S = 120.0
SERVER_REPORT_TIMEOUT_S = 60.0
ACRA_SAMPLE_ROWS = 300
# The generator draws company names without replacement from 2,700 combinations; this far below that
# it still finishes in milliseconds.
MAX_ACRA_ROWS = 2000
ACRA_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_acra_sample.py"

# Set by the proxy's latency draw, read by the timing middleware: both run in the request's task.
_drawn_latency: contextvars.ContextVar[float] = contextvars.ContextVar("drawn_latency", default=0.0)


# -- messages between the processes ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ServerSettings:
    domains: int
    seed: int
    latency_scale: float


@dataclasses.dataclass(frozen=True)
class WorldOffer:
    """What the proxy process tells the crawler once it listens."""

    port: int
    domains: list[str]
    excluded: dict[str, str]       # domain -> hard case left out
    kept_hard_cases: dict[str, str]  # domain -> hard case crawled
    acra_rows: int
    sites_in_world: int


@dataclasses.dataclass(frozen=True)
class ServedRequest:
    """One request as the proxy saw it; times are the proxy's monotonic clock."""

    host: str
    status: int | None         # None: the client hung up before the answer was complete
    arrived: float
    answered: float
    drawn_latency_s: float
    retry_after_s: float | None

    @property
    def held_s(self) -> float:
        return self.answered - self.arrived


@dataclasses.dataclass(frozen=True)
class ServerReport:
    requests: list[ServedRequest]
    cpu_s: float


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


# -- the proxy process --------------------------------------------------------------------------------------
def _acra_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_acra_sample", ACRA_SCRIPT)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the ACRA sample generator at {ACRA_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _world_with_sites(wanted: int, seed: int) -> tuple[World, int]:
    """The smallest world (in ACRA rows, growing from the shipped sample) with ``wanted`` sites."""
    from nightly_pipeline_sandbox.world import World

    generator = _acra_generator()
    rows = ACRA_SAMPLE_ROWS
    while True:
        # rows(n) extends rows(n - 1), so the shipped sample's companies are always in the world.
        world = World.from_rows(generator.rows(rows), seed=seed)
        if len(world.sites) >= wanted:
            return world, rows
        if rows >= MAX_ACRA_ROWS:
            raise SystemExit(f"{MAX_ACRA_ROWS} ACRA rows give {len(world.sites)} sites; fewer than {wanted}")
        rows = min(MAX_ACRA_ROWS, math.ceil(rows * wanted / len(world.sites) * 1.02))


def _pick_domains(world: World, count: int, seed: int) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """``count`` domains in a seeded order: every kept hard case, then ordinary sites in world order."""
    excluded = {domain: case for case, domain in world.hard_cases.items() if case in EXCLUDED_HARD_CASES}
    kept = {domain: case for case, domain in world.hard_cases.items() if domain not in excluded}
    ordinary = [domain for domain in world.sites if domain not in excluded and domain not in kept]
    chosen = (list(kept) + ordinary)[:count]
    random.Random(seed).shuffle(chosen)
    return chosen, excluded, {domain: case for domain, case in kept.items() if domain in chosen}


def _timed_proxy(world: World, settings: ServerSettings) -> tuple[WebProxyServer, list[ServedRequest]]:
    """The simulated-web proxy, also logging when each request arrived and was answered."""
    from aiohttp import web

    from nightly_pipeline_sandbox.base import LatencyModel
    from nightly_pipeline_sandbox.web import WebProxyServer

    served: list[ServedRequest] = []

    class TimedWebProxy(WebProxyServer):
        def draw_latency(self) -> float:
            delay = super().draw_latency()
            _drawn_latency.set(delay)
            return delay

        def build_app(self) -> web.Application:
            app = super().build_app()
            # Outermost, so the time covers the latency sleep and the handler.
            app.middlewares.insert(0, self._time_request)
            return app

        @web.middleware
        async def _time_request(self, request: web.Request, handler: Any) -> web.StreamResponse:
            arrived = time.monotonic()
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self._log(request, arrived, exc.status, exc.headers.get("Retry-After"))
                raise
            except ConnectionError:
                # A size-capped client stops reading a huge page: the proxy still held the request.
                self._log(request, arrived, None, None)
                raise
            self._log(request, arrived, response.status, response.headers.get("Retry-After"))
            return response

        def _log(self, request: web.Request, arrived: float, status: int | None, retry_after: str | None) -> None:
            asked_to_wait = status in RETRY_AFTER_STATUSES and retry_after and retry_after.isdigit()
            served.append(ServedRequest(
                host=self.request_host(request), status=status, arrived=arrived, answered=time.monotonic(),
                drawn_latency_s=_drawn_latency.get(), retry_after_s=float(retry_after) if asked_to_wait else None))

    proxy = TimedWebProxy(world, seed=settings.seed, latency=LatencyModel(scale=settings.latency_scale))
    return proxy, served


def _serve(settings: ServerSettings, channel: Connection, stop: Event) -> None:
    """Proxy process: build the world, offer its domains, serve until told to stop, send the log."""
    pin_to_core(SERVER_CORE)
    allow_only_loopback("bench/crawl.py")
    asyncio.run(_run_proxy(settings, channel, stop))


async def _run_proxy(settings: ServerSettings, channel: Connection, stop: Event) -> None:
    world, acra_rows = _world_with_sites(settings.domains + len(EXCLUDED_HARD_CASES), settings.seed)
    domains, excluded, kept = _pick_domains(world, settings.domains, settings.seed)
    proxy, served = _timed_proxy(world, settings)
    await proxy.start()
    try:
        cpu_before = _cpu_s()
        channel.send(WorldOffer(port=proxy.port or 0, domains=domains, excluded=excluded,
                                kept_hard_cases=kept, acra_rows=acra_rows, sites_in_world=len(world.sites)))
        await asyncio.to_thread(stop.wait)
        cpu_s = _cpu_s() - cpu_before
    finally:
        await proxy.stop()
    channel.send(ServerReport(requests=served, cpu_s=cpu_s))


# -- the crawl ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SiteSummary:
    domain: str
    outcome: str
    requests: int
    body_bytes: int
    crawl_delay_s: float | None
    started_at: float              # epoch seconds
    duration_s: float


@dataclasses.dataclass(frozen=True)
class CrawlRun:
    sites: list[SiteSummary]
    wall_s: float
    cpu_s: float
    timed_out: bool
    rss_before_mb: float
    peak_rss_mb: float


def _summarise(site: SiteCrawl) -> SiteSummary:
    # Only counts are kept: holding every page body would measure the benchmark, not the crawler.
    return SiteSummary(domain=site.domain, outcome=site.outcome, requests=site.requests_made,
                       body_bytes=site.bytes_downloaded,
                       crawl_delay_s=None if site.robots is None else site.robots.crawl_delay_s,
                       started_at=site.started_at.timestamp(),
                       duration_s=(site.finished_at - site.started_at).total_seconds())


class EveryNamePublic:
    """Stands in for DNS: every simulated site's name has one public address."""

    async def resolve(self, host: str) -> list[str]:
        return [PUBLIC_ADDRESS]


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """The runtime role's URL on a migrated embedded PostgreSQL in a temporary folder, deleted afterwards."""
    import psycopg
    from psycopg import sql

    from nightly_pipeline.db.embedded import EmbeddedPostgres
    from nightly_pipeline.db.migrate import migrate

    home = Path(tempfile.mkdtemp(prefix="bench-crawl-pg-"))
    # pgserver runs the server as its own user when we are root: that user must be able to enter the folder.
    home.chmod(0o755)
    server = EmbeddedPostgres(home, cleanup_mode="delete").start()
    try:
        with psycopg.connect(server.uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
        migrate(server.uri(database=BENCH_DATABASE), APP_ROLE)
        yield server.uri(user=APP_ROLE, database=BENCH_DATABASE)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@contextlib.asynccontextmanager
async def _gate(database_url: str | None) -> AsyncIterator[DomainGate | None]:
    if database_url is None:
        yield None
        return
    from nightly_pipeline.db.politeness import PostgresDomainGate

    async with PostgresDomainGate.open(database_url) as gate:
        yield gate


async def _crawl(domains: Sequence[str], config: CrawlerConfig, timeout_s: float,
                 database_url: str | None) -> tuple[list[SiteSummary], bool]:
    sites: list[SiteSummary] = []
    async with _gate(database_url) as gate, SiteCrawler(config, EveryNamePublic(), gate=gate) as crawler:
        try:
            async with asyncio.timeout(timeout_s):
                async for site in crawler.crawl_many(domains):
                    sites.append(_summarise(site))
        except TimeoutError:
            return sites, True
    return sites, False


def run_crawl(domains: Sequence[str], config: CrawlerConfig, timeout_s: float,
              profile_to: Path | None = None, database_url: str | None = None) -> CrawlRun:
    rss_before = _peak_rss_mb()
    profiler = cProfile.Profile() if profile_to else None
    cpu_before, started = _cpu_s(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    sites, timed_out = asyncio.run(_crawl(domains, config, timeout_s, database_url))
    if profiler is not None:
        profiler.disable()
    wall_s, cpu_s = time.perf_counter() - started, _cpu_s() - cpu_before
    if profiler is not None and profile_to is not None:
        profiler.dump_stats(profile_to)
    return CrawlRun(sites=sites, wall_s=wall_s, cpu_s=cpu_s, timed_out=timed_out,
                    rss_before_mb=rss_before, peak_rss_mb=_peak_rss_mb())


# -- the politeness floor -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PolitenessBound:
    slowest_domain: str
    slowest_requests: int
    slowest_s: float
    serial_total_s: float
    concurrency: int

    @property
    def per_slot_s(self) -> float:
        return self.serial_total_s / self.concurrency

    @property
    def bound_s(self) -> float:
        return max(self.slowest_s, self.per_slot_s)


def domain_intervals(sites: Iterable[SiteSummary], min_interval_s: float) -> dict[str, float]:
    """The spacing each politeness key needs: the floor, raised by the Crawl-delay the crawler honoured."""
    return {politeness_key(site.domain): max(min_interval_s, site.crawl_delay_s)
            for site in sites if site.crawl_delay_s is not None}


def serial_time(requests: Sequence[ServedRequest], interval_s: float) -> float:
    """One domain's requests back to back: their drawn latency plus the gaps politeness requires."""
    ordered = sorted(requests, key=lambda request: request.arrived)
    latency = sum(request.drawn_latency_s for request in ordered)
    gaps = sum(max(interval_s, previous.retry_after_s or 0.0) for previous in ordered[:-1])
    return latency + gaps


def politeness_bound(requests: Iterable[ServedRequest], intervals: Mapping[str, float],
                     min_interval_s: float, concurrency: int) -> PolitenessBound:
    by_key: defaultdict[str, list[ServedRequest]] = defaultdict(list)
    for request in requests:
        by_key[politeness_key(request.host)].append(request)
    if not by_key:
        return PolitenessBound("-", 0, 0.0, 0.0, max(1, concurrency))
    serial = {key: serial_time(group, intervals.get(key, min_interval_s)) for key, group in by_key.items()}
    slowest = max(serial, key=serial.__getitem__)
    return PolitenessBound(slowest_domain=slowest, slowest_requests=len(by_key[slowest]),
                           slowest_s=serial[slowest], serial_total_s=sum(serial.values()),
                           concurrency=max(1, concurrency))


def pacing(sites: Sequence[SiteSummary], bound: PolitenessBound, wall_s: float) -> dict[str, float | None]:
    """Where wall time beyond the floor went: slower domains, idle slots, or a slow domain started late."""
    site_total_s = sum(site.duration_s for site in sites)
    first_start = min((site.started_at for site in sites), default=0.0)
    slowest = max((site for site in sites if politeness_key(site.domain) == bound.slowest_domain),
                  key=lambda site: site.duration_s, default=None)
    return {
        "site_time_total_s": round(site_total_s, 1),
        "site_time_over_serial": round(site_total_s / bound.serial_total_s, 3) if bound.serial_total_s else None,
        "slot_busy_share": round(site_total_s / (bound.concurrency * wall_s), 3) if wall_s else None,
        "slowest_domain_started_s": None if slowest is None else round(slowest.started_at - first_start, 2),
        "slowest_domain_took_s": None if slowest is None else round(slowest.duration_s, 2),
    }


# -- report -------------------------------------------------------------------------------------------------
def _figures(args: argparse.Namespace, offer: WorldOffer, config: CrawlerConfig, run: CrawlRun,
             server: ServerReport) -> dict[str, Any]:
    concurrency = min(config.concurrency, len(offer.domains))
    bound = politeness_bound(server.requests, domain_intervals(run.sites, MIN_INTERVAL_S), MIN_INTERVAL_S,
                             concurrency)
    overheads = [request.held_s - request.drawn_latency_s for request in server.requests]
    return {
        "bench": "crawl",
        "domains": len(offer.domains),
        "domains_finished": len(run.sites),
        "partial": run.timed_out,
        "concurrency": concurrency,
        "latency_scale": args.latency_scale,
        "gate": args.gate,
        "seed": args.seed,
        "acra_rows": offer.acra_rows,
        "world_sites": offer.sites_in_world,
        "excluded": offer.excluded,
        "hard_cases_crawled": sorted(offer.kept_hard_cases.values()),
        "wall_s": round(run.wall_s, 2),
        "bound_s": round(bound.bound_s, 2),
        "slowest_domain": bound.slowest_domain,
        "slowest_domain_requests": bound.slowest_requests,
        "slowest_domain_s": round(bound.slowest_s, 2),
        "serial_total_s": round(bound.serial_total_s, 1),
        "serial_per_slot_s": round(bound.per_slot_s, 2),
        "ratio": round(run.wall_s / bound.bound_s, 3) if bound.bound_s else None,
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "rss_before_crawl_mb": round(run.rss_before_mb, 1),
        "requests": sum(site.requests for site in run.sites),
        "requests_served": len(server.requests),
        "body_bytes": sum(site.body_bytes for site in run.sites),
        "outcomes": dict(Counter(site.outcome for site in run.sites).most_common()),
        "crawler_cpu_s": round(run.cpu_s, 2),
        "proxy_cpu_s": round(server.cpu_s, 2),
        "proxy_overhead_ms_median": round(statistics.median(overheads) * 1000, 2) if overheads else 0.0,
        "latency_median_s": round(statistics.median(r.drawn_latency_s for r in server.requests), 3)
        if server.requests else 0.0,
        **pacing(run.sites, bound, run.wall_s),
    }


def _report_lines(f: dict[str, Any]) -> list[str]:
    ratio = "n/a" if f["ratio"] is None else f"{f['ratio']:.3f}"
    cpu_share = f["crawler_cpu_s"] / f["wall_s"] if f["wall_s"] else 0.0
    lines = [
        (f"crawl benchmark: {f['domains']:,} domains (of {f['world_sites']:,} sites from {f['acra_rows']:,} ACRA "
         f"rows), {f['concurrency']:,} in flight, latency scale {f['latency_scale']:g}, seed {f['seed']}, "
         f"domain turns in {f['gate']}"),
        f"  wall time            {f['wall_s']:>9.2f} s",
        (f"  politeness floor     {f['bound_s']:>9.2f} s = max(slowest domain {f['slowest_domain_s']:.2f} s "
         f"[{f['slowest_domain']}, {f['slowest_domain_requests']} requests], "
         f"serial {f['serial_total_s']:,.0f} s / {f['concurrency']:,} = {f['serial_per_slot_s']:.2f} s)"),
        f"  ratio wall / floor   {ratio:>9}     (aim <= {TARGET_RATIO})",
        (f"  peak RSS (crawler)   {f['peak_rss_mb']:>9.1f} MB  (before the crawl {f['rss_before_crawl_mb']:.1f} MB; "
         f"aim <= {TARGET_PEAK_RSS_MB:.0f} MB)"),
        (f"  requests             {f['requests']:>9,}     (proxy served {f['requests_served']:,}); "
         f"{f['body_bytes'] / 1e6:,.1f} MB of bodies"),
        "  outcomes             " + ", ".join(f"{kind} {count:,}" for kind, count in f["outcomes"].items()),
        (f"  CPU                  crawler {f['crawler_cpu_s']:.1f} s ({cpu_share:.0%} of wall), proxy "
         f"{f['proxy_cpu_s']:.1f} s; the proxy adds {f['proxy_overhead_ms_median']:.2f} ms (median) to the drawn "
         f"latency (median {f['latency_median_s']:.3f} s)"),
    ]
    if f["partial"]:
        lines.insert(1, f"  PARTIAL: the global timeout ended the crawl after {f['domains_finished']:,} domains")
    if f["site_time_over_serial"] is not None and f["slowest_domain_took_s"] is not None:
        lines.append(f"  pacing               sites took {f['site_time_total_s']:,.0f} s in all = "
                     f"{f['site_time_over_serial']:.2f} x their serial floor; slots busy {f['slot_busy_share']:.0%} "
                     f"of wall; slowest domain started at {f['slowest_domain_started_s']:.1f} s, "
                     f"took {f['slowest_domain_took_s']:.1f} s")
    lines.append("  hard cases crawled   " + (", ".join(f["hard_cases_crawled"]) or "none"))
    for domain, case in f["excluded"].items():
        lines.append(f"  left out             {case} ({domain}): {EXCLUDED_HARD_CASES[case]}")
    return lines


def _print_report(figures: dict[str, Any]) -> None:
    print("\n".join(_report_lines(figures)))
    print(json.dumps(figures, separators=(",", ":")))


def _print_profile(path: Path, lines: int = 25) -> None:
    print(f"cProfile of the crawling process written to {path}; top functions by own time:")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(lines)


# -- command line -------------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--domains", type=int, default=None, help=f"domains to crawl (default {DEFAULT_DOMAINS})")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="domains in flight")
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies the default latency model")
    parser.add_argument("--seed", type=int, default=7, help="seeds the world, the latency draws and the order")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_DOMAINS} domains")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds after which the crawl stops and reports what it has")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the crawl here")
    parser.add_argument("--gate", choices=GATES, default="postgres",
                        help="where each domain's turn is kept: PostgreSQL (as the pipeline) or this process")
    args = parser.parse_args(argv)
    if args.domains is None:
        args.domains = QUICK_DOMAINS if args.quick else DEFAULT_DOMAINS
    if args.domains < 1 or args.concurrency < 1:
        parser.error("--domains and --concurrency must be at least 1")
    return args


def _crawler_config(port: int, concurrency: int) -> CrawlerConfig:
    return CrawlerConfig(proxy=f"http://127.0.0.1:{port}", schemes=("http",), min_interval_s=MIN_INTERVAL_S,
                         max_pages=MAX_PAGES, concurrency=concurrency)


def _receive(channel: Connection, server: BaseProcess, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not channel.poll(0.5):
        if not server.is_alive():
            raise SystemExit(f"the proxy process ended (exit code {server.exitcode}) before sending the {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the proxy process sent no {what} within {timeout_s:g} s")
    return channel.recv()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    allow_only_loopback("bench/crawl.py")
    context = multiprocessing.get_context("spawn")
    channel, server_end = context.Pipe()
    stop = context.Event()
    settings = ServerSettings(domains=args.domains, seed=args.seed, latency_scale=args.latency_scale)
    server = context.Process(target=_serve, args=(settings, server_end, stop), name="sandbox-web", daemon=True)
    server.start()
    try:
        with contextlib.ExitStack() as stack:
            # Started before the crawler is pinned, so the database server is not confined to its core.
            database_url = stack.enter_context(throwaway_database()) if args.gate == "postgres" else None
            offer: WorldOffer = _receive(channel, server, SERVER_START_TIMEOUT_S, "world")
            pin_to_core(CRAWLER_CORE)
            config = _crawler_config(offer.port, args.concurrency)
            run = run_crawl(offer.domains, config, args.timeout, args.profile, database_url)
        stop.set()
        report: ServerReport = _receive(channel, server, SERVER_REPORT_TIMEOUT_S, "request log")
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()
    _print_report(_figures(args, offer, config, run, report))
    if args.profile is not None:
        _print_profile(args.profile)


if __name__ == "__main__":
    main()
