"""Per-domain spacing measured at the server, parallelism across domains, bounded state."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from itertools import pairwise

import pytest

from nightly_pipeline.crawl.crawler import CrawlerConfig, SiteCrawl, SiteCrawler
from nightly_pipeline.crawl.politeness import DomainScheduler, politeness_key
from nightly_pipeline_tests.kit.net import (
    StaticResolver,
    VirtualHosts,
    html_page,
    running,
)

# Server and client share the machine's monotonic clock; the epsilon covers its granularity only.
CLOCK_EPSILON_S = 0.001


@pytest.mark.parametrize(("host", "key"), [
    ("www.acme.com.sg", "acme.com.sg"),
    ("shop.acme.com.sg", "acme.com.sg"),
    ("acme.com.sg", "acme.com.sg"),
    ("WWW.Example.COM", "example.com"),
    ("127.0.0.1", "127.0.0.1"),
    ("2606:4700::1111", "2606:4700::1111"),
])
def test_politeness_key_is_the_registrable_domain(host: str, key: str) -> None:
    assert politeness_key(host) == key


def test_interval_is_raised_by_crawl_delay_up_to_the_cap() -> None:
    scheduler = DomainScheduler(0.5, max_interval_s=10)
    assert scheduler.interval_for(None) == 0.5
    assert scheduler.interval_for(0.1) == 0.5
    assert scheduler.interval_for(3) == 3
    assert scheduler.interval_for(60) == 10


def test_one_request_at_a_time_per_domain_and_spacing_from_the_end() -> None:
    async def scenario() -> list[tuple[str, float]]:
        scheduler = DomainScheduler(0.1)
        loop = asyncio.get_running_loop()
        events: list[tuple[str, float]] = []

        async def request() -> None:
            async with scheduler.slot("acme.com.sg"):
                events.append(("start", loop.time()))
                await asyncio.sleep(0.02)
                events.append(("end", loop.time()))

        await asyncio.gather(*(request() for _ in range(3)))
        return events

    events = asyncio.run(scenario())
    assert [kind for kind, _ in events] == ["start", "end"] * 3
    ends = [at for kind, at in events if kind == "end"]
    starts = [at for kind, at in events if kind == "start"]
    assert all(started - ended >= 0.1 for ended, started in zip(ends, starts[1:]))


def test_different_domains_run_concurrently_within_the_global_bound() -> None:
    async def scenario() -> int:
        scheduler = DomainScheduler(0.0, max_in_flight=3)
        inside = 0
        most_inside = 0
        all_entered = asyncio.Event()

        async def request(domain: str) -> None:
            nonlocal inside, most_inside
            async with scheduler.slot(domain):
                inside += 1
                most_inside = max(most_inside, inside)
                if most_inside == 3:
                    all_entered.set()
                await asyncio.wait_for(all_entered.wait(), 5)
                inside -= 1

        await asyncio.gather(*(request(f"site{n}.com.sg") for n in range(9)))
        return most_inside

    assert asyncio.run(scenario()) == 3


def test_crawl_delay_of_the_waiting_request_counts_from_the_previous_end() -> None:
    async def scenario() -> float:
        scheduler = DomainScheduler(0.05, max_interval_s=1)
        loop = asyncio.get_running_loop()
        async with scheduler.slot("acme.com.sg"):
            pass
        ended = loop.time()
        async with scheduler.slot("acme.com.sg", crawl_delay_s=0.3):
            return loop.time() - ended

    assert asyncio.run(scenario()) >= 0.3


def test_idle_domains_are_forgotten_after_their_longest_interval() -> None:
    async def scenario() -> tuple[int, int]:
        scheduler = DomainScheduler(0.01, max_interval_s=0.05)
        for n in range(50):
            async with scheduler.slot(f"site{n}.com.sg"):
                pass
        tracked_right_after = scheduler.tracked_domains
        await asyncio.sleep(0.2)
        return tracked_right_after, scheduler.tracked_domains

    right_after, later = asyncio.run(scenario())
    assert right_after == 50
    assert later == 0


def test_forgetting_a_domain_never_shortens_its_interval() -> None:
    async def scenario() -> float:
        scheduler = DomainScheduler(0.01, max_interval_s=0.2)
        loop = asyncio.get_running_loop()
        async with scheduler.slot("acme.com.sg"):
            # Read inside the slot: the scheduler stamps the end on leaving it, a moment later, so
            # the gap measured from here can only be longer than the one the scheduler keeps.
            ended = loop.time()
        await asyncio.sleep(0.05)
        async with scheduler.slot("acme.com.sg", crawl_delay_s=0.2):
            return loop.time() - ended

    assert asyncio.run(scenario()) >= 0.2


SITES = 20


def _world(site: VirtualHosts) -> list[str]:
    domains = [f"site{n:02d}.com.sg" for n in range(SITES)]
    for domain in domains:
        site.page(domain, "/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
        site.page(domain, "/", html_page(("/about", "About us"), ("/contact", "Contact us")))
        site.page(domain, "/about", "<html><body>About</body></html>")
        site.page(domain, "/contact", "<html><body>Contact</body></html>")
    return domains


def test_many_domains_in_parallel_each_spaced_at_the_server() -> None:
    site = VirtualHosts()
    domains = _world(site)
    with running(site):
        config = CrawlerConfig(schemes=("http",), allow_nonstandard_ports=True, concurrency=SITES,
                               allowed_endpoints=frozenset({site.endpoint}))
        resolver = StaticResolver({domain: ["127.0.0.1"] for domain in domains})

        async def scenario() -> list[SiteCrawl]:
            async with SiteCrawler(config, resolver) as crawler:
                return [crawl async for crawl in crawler.crawl_many(
                    [site.port_url(domain) for domain in domains], max_pages=2)]

        crawls = asyncio.run(scenario())

    assert sorted(len(crawl.pages) for crawl in crawls) == [3] * SITES
    assert all(crawl.outcome == "ok" and crawl.requests_made == 4 for crawl in crawls)
    arrivals: dict[str, list[float]] = defaultdict(list)
    for hit in site.hits:
        arrivals[hit.host].append(hit.at)
    assert set(arrivals) == set(domains)
    for domain, times in arrivals.items():
        assert len(times) == 4
        assert min(later - earlier for earlier, later in pairwise(times)) >= 0.5 - CLOCK_EPSILON_S, domain
    # Structural parallelism: while one domain waits out its spacing, the others are served.
    for domain, times in arrivals.items():
        first, last = times[0], times[-1]
        others_meanwhile = {other for other, other_times in arrivals.items()
                            if other != domain and any(first < t < last for t in other_times)}
        assert len(others_meanwhile) >= SITES // 2, domain
