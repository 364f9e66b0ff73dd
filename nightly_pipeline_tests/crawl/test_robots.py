"""robots.txt: RFC 9309 decisions, one fetch per origin, Crawl-delay honoured and clamped."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from itertools import pairwise

import pytest

from nightly_pipeline.crawl.fetcher import Fetcher, FetchResult, RetryPolicy
from nightly_pipeline.crawl.politeness import DomainScheduler
from nightly_pipeline.crawl.robots import (
    ROBOTS_MAX_BYTES,
    RobotsCache,
    RobotsInfo,
    interpret_robots,
    robots_token,
    robots_url_for,
)
from nightly_pipeline.crawl.ssrf import AddressPolicy
from nightly_pipeline.crawl.transport import build_crawl_client
from nightly_pipeline_tests.kit.net import (
    StaticResolver,
    VirtualHosts,
    closed_port,
    running,
)

AGENT = "NightlyPipelineBot/1.0 (+https://example.com/bot)"
HOST = "acme.com.sg"
CLOCK_EPSILON_S = 0.001


def _fetched(status: int | None, body: bytes = b"", error_kind: str | None = None) -> FetchResult:
    error = None if error_kind is None and (status is None or status < 400) else f"failed ({error_kind or status})"
    return FetchResult(url="https://acme.com.sg/robots.txt", final_url="https://acme.com.sg/robots.txt",
                       status=status, headers={}, body=body, content_type="text/plain", truncated=False,
                       error=error, elapsed_s=0.0, attempts=1, redirects=[], error_kind=error_kind)


@pytest.mark.parametrize(("status", "error_kind", "outcome", "allowed"), [
    (404, "http_status", "unavailable", True),
    (410, "http_status", "unavailable", True),
    (401, "http_status", "unavailable", True),
    (429, "http_status", "unreachable", False),
    (500, "http_status", "unreachable", False),
    (503, "http_status", "unreachable", False),
    (None, "connect", "unreachable", False),
    (None, "timeout", "unreachable", False),
    (None, "ssrf", "unreachable", False),
    (301, "too_many_redirects", "unavailable", True),
])
def test_rfc9309_status_table(status: int | None, error_kind: str, outcome: str, allowed: bool) -> None:
    info = interpret_robots(_fetched(status, error_kind=error_kind), agent="NightlyPipelineBot", max_crawl_delay_s=10)
    assert info.outcome == outcome
    assert info.can_fetch("https://acme.com.sg/about") is allowed


@pytest.mark.parametrize(("robots", "path", "allowed"), [
    ("User-agent: *\nAllow: /\n", "/about", True),
    ("User-agent: *\nDisallow: /\n", "/about", False),
    ("User-agent: *\nDisallow: /team\n", "/team", False),
    ("User-agent: *\nDisallow: /team\n", "/about", True),
    ("User-agent: *\nDisallow: /\n\nUser-agent: NightlyPipelineBot\nAllow: /\n", "/about", True),
    ("User-agent: *\nAllow: /\n\nUser-agent: NightlyPipelineBot\nDisallow: /private\n", "/private/x", False),
    ("User-agent: bot\nDisallow: /\n", "/about", True),
    ("User-agent: *\nDisallow: /shop\nAllow: /shop/about\n", "/shop/about", True),
])
def test_parsed_rules_for_our_agent(robots: str, path: str, allowed: bool) -> None:
    info = interpret_robots(_fetched(200, robots.encode()), agent=robots_token(AGENT), max_crawl_delay_s=10)
    assert info.outcome == "parsed"
    assert info.can_fetch(f"https://acme.com.sg{path}") is allowed


def test_crawl_delay_is_read_and_clamped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    honoured = interpret_robots(_fetched(200, b"User-agent: *\nCrawl-delay: 2\n"), agent="Bot", max_crawl_delay_s=10)
    assert (honoured.crawl_delay_s, honoured.declared_crawl_delay_s) == (2.0, 2.0)
    with caplog.at_level(logging.WARNING, logger="nightly_pipeline.crawl.robots"):
        clamped = interpret_robots(_fetched(200, b"User-agent: *\nCrawl-delay: 60\n"), agent="Bot",
                                   max_crawl_delay_s=10)
    assert (clamped.crawl_delay_s, clamped.declared_crawl_delay_s) == (10.0, 60.0)
    assert any("Crawl-delay 60.0" in record.getMessage() for record in caplog.records)


def test_rules_beyond_the_parse_limit_are_ignored() -> None:
    padding = ("# " + "x" * 98 + "\n") * (ROBOTS_MAX_BYTES // 100 + 10)
    body = f"User-agent: *\nDisallow: /early\n{padding}Disallow: /late\n".encode()
    info = interpret_robots(_fetched(200, body), agent="Bot", max_crawl_delay_s=10)
    assert not info.can_fetch("https://acme.com.sg/early")
    assert info.can_fetch("https://acme.com.sg/late")


def test_agent_token_and_robots_url() -> None:
    assert robots_token(AGENT) == "NightlyPipelineBot"
    assert robots_url_for("https://www.acme.com.sg:8443/about/us?x=1#top") == "https://www.acme.com.sg:8443/robots.txt"


@dataclass
class Crawled:
    results: list[FetchResult]
    robots: RobotsInfo
    robots_cached: int


def _crawl(urls: list[str], *, min_interval_s: float = 0.0, max_crawl_delay_s: float = 10.0,
           concurrent: bool = False) -> Crawled:
    policy = AddressPolicy(allow_private_networks=True, allow_nonstandard_ports=True)

    async def scenario() -> Crawled:
        client = build_crawl_client(policy=policy, user_agent=AGENT, timeout_s=5, max_connections=8,
                                    resolver=StaticResolver({HOST: ["127.0.0.1"]}))
        async with client:
            fetcher = Fetcher(client, policy=policy, user_agent=AGENT, max_crawl_delay_s=max_crawl_delay_s,
                              scheduler=DomainScheduler(min_interval_s, max_interval_s=max_crawl_delay_s),
                              retry=RetryPolicy(backoff_base_s=0.01))
            if concurrent:
                results = list(await asyncio.gather(*(fetcher.fetch(url) for url in urls)))
            else:
                results = [await fetcher.fetch(url) for url in urls]
            return Crawled(results, await fetcher.robots.get(urls[0]), len(fetcher.robots))

    return asyncio.run(scenario())


def _site_with_robots(robots: str | None, status: int = 200) -> VirtualHosts:
    site = VirtualHosts()
    if robots is not None:
        site.page(HOST, "/robots.txt", robots, status=status, content_type="text/plain")
    for path in ("/", "/about", "/team"):
        site.page(HOST, path, f"<html><body>{path}</body></html>")
    return site


@pytest.mark.parametrize(("robots", "status", "fetched_paths"), [
    ("User-agent: *\nAllow: /\n", 200, ["/", "/about", "/team"]),
    ("User-agent: *\nDisallow: /\n", 200, []),
    ("User-agent: *\nDisallow: /team\n", 200, ["/", "/about"]),
    ("not found", 404, ["/", "/about", "/team"]),
    ("boom", 500, []),
])
def test_robots_decides_what_reaches_the_server(robots: str, status: int, fetched_paths: list[str]) -> None:
    site = _site_with_robots(robots, status)
    with running(site):
        results = _crawl([site.port_url(HOST, path) for path in ("/", "/about", "/team")]).results
    page_hits = [hit.path for hit in site.hits if hit.path != "/robots.txt"]
    assert page_hits == fetched_paths
    refused = [r for r in results if r.error_kind == "robots"]
    assert len(refused) == 3 - len(fetched_paths)
    expected_robots_requests = 3 if status >= 500 else 1
    assert len(site.hits_for(HOST, "/robots.txt")) == expected_robots_requests


def test_unreachable_robots_disallows_everything() -> None:
    port = closed_port()

    async def scenario() -> FetchResult:
        policy = AddressPolicy(allow_private_networks=True, allow_nonstandard_ports=True)
        client = build_crawl_client(policy=policy, user_agent=AGENT, timeout_s=2, max_connections=2,
                                    resolver=StaticResolver({HOST: ["127.0.0.1"]}))
        async with client:
            fetcher = Fetcher(client, policy=policy, user_agent=AGENT, scheduler=DomainScheduler(0.0),
                              retry=RetryPolicy(backoff_base_s=0.01))
            result = await fetcher.fetch(f"http://{HOST}:{port}/about")
            robots = await fetcher.robots.get(f"http://{HOST}:{port}/")
            assert robots.network_failure and robots.outcome == "unreachable"
            return result

    result = asyncio.run(scenario())
    assert result.error_kind == "robots"
    assert result.attempts == 0


def test_robots_is_fetched_once_per_origin_even_under_concurrency() -> None:
    site = _site_with_robots("User-agent: *\nAllow: /\n")
    with running(site):
        crawled = _crawl([site.port_url(HOST, p) for p in ("/", "/about", "/team", "/", "/about")],
                         concurrent=True)
    assert all(result.ok for result in crawled.results)
    assert len(site.hits_for(HOST, "/robots.txt")) == 1
    assert crawled.robots_cached == 1


def test_robots_redirects_are_followed_up_to_five() -> None:
    site = _site_with_robots(None)
    site.redirect(HOST, "/robots.txt", "/r1")
    for index in range(1, 5):
        site.redirect(HOST, f"/r{index}", f"/r{index + 1}")
    site.page(HOST, "/r5", "User-agent: *\nDisallow: /team\n", content_type="text/plain")
    other = _site_with_robots(None)
    other.redirect(HOST, "/robots.txt", "/loop")
    other.redirect(HOST, "/loop", "/robots.txt")
    with running(site, other):
        five = _crawl([site.port_url(HOST, "/about"), site.port_url(HOST, "/team")])
        looping = _crawl([other.port_url(HOST, "/team")])
    assert five.results[0].ok and five.results[1].error_kind == "robots"
    assert looping.results[0].ok and looping.robots.outcome == "unavailable"
    assert len([hit for hit in other.hits if hit.path in ("/robots.txt", "/loop")]) == 6


def _gaps(site: VirtualHosts) -> list[float]:
    return [later.at - earlier.at for earlier, later in pairwise(site.hits_for(HOST))]


def test_crawl_delay_spaces_requests_at_the_server() -> None:
    site = _site_with_robots("User-agent: *\nCrawl-delay: 1\n")
    with running(site):
        crawled = _crawl([site.port_url(HOST, "/"), site.port_url(HOST, "/about")], min_interval_s=0.1)
    assert all(result.ok for result in crawled.results)
    assert crawled.robots.crawl_delay_s == 1.0
    gaps = _gaps(site)
    assert len(gaps) == 2
    assert min(gaps) >= 1.0 - CLOCK_EPSILON_S


def test_crawl_delay_beyond_the_cap_is_clamped(caplog: pytest.LogCaptureFixture) -> None:
    site = _site_with_robots("User-agent: *\nCrawl-delay: 30\n")
    with running(site), caplog.at_level(logging.WARNING, logger="nightly_pipeline.crawl.robots"):
        crawled = _crawl([site.port_url(HOST, "/"), site.port_url(HOST, "/about")],
                         min_interval_s=0.1, max_crawl_delay_s=0.6)
    assert all(result.ok for result in crawled.results)
    assert (crawled.robots.crawl_delay_s, crawled.robots.declared_crawl_delay_s) == (0.6, 30.0)
    assert min(_gaps(site)) >= 0.6 - CLOCK_EPSILON_S
    assert any("Crawl-delay 30.0" in record.getMessage() for record in caplog.records)


def test_a_robots_fetch_that_raised_is_asked_again() -> None:
    calls: list[str] = []

    async def fetch(robots_url: str) -> FetchResult:
        calls.append(robots_url)
        if len(calls) == 1:
            raise ConnectionError("the politeness gate's database is unreachable")
        return _fetched(200, b"User-agent: *\nDisallow: /private\n")

    async def scenario() -> RobotsInfo:
        cache = RobotsCache(fetch, user_agent="TestBot/1.0")
        with pytest.raises(ConnectionError):
            await cache.get("https://acme.com.sg/about")
        return await cache.get("https://acme.com.sg/about")

    robots = asyncio.run(scenario())
    assert robots.outcome == "parsed" and not robots.can_fetch("https://acme.com.sg/private")
    assert calls == ["https://acme.com.sg/robots.txt"] * 2
