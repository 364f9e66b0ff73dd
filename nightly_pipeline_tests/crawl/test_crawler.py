"""Site crawls: outcomes, scheme fallback, budgets, many sites at once, configuration."""
from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import pytest
from aiohttp import web

from nightly_pipeline.crawl.crawler import CrawlerConfig, SiteCrawl, SiteCrawler
from nightly_pipeline.crawl.fetcher import FetchResult
from nightly_pipeline.stages.crawl import crawler_config
from nightly_pipeline.settings import load_settings
from nightly_pipeline_tests.kit.net import (
    HangingPage,
    StaticResolver,
    VirtualHosts,
    html_page,
    running,
)

HOST = "acme.com.sg"
KEY_LINKS = (("/about", "About us"), ("/contact", "Contact us"), ("/team", "Our team"),
             ("/careers", "Careers"), ("/pricing", "Pricing"), ("/customers", "Customers"))
ALLOW_ALL = "User-agent: *\nAllow: /\n"


def _company(site: VirtualHosts, host: str, *, robots: str = ALLOW_ALL, robots_status: int = 200,
             page_size: int = 200) -> None:
    site.page(host, "/robots.txt", robots, status=robots_status, content_type="text/plain")
    site.page(host, "/", html_page(*KEY_LINKS, ("/brochure.pdf", "Brochure")))
    for path, text in KEY_LINKS:
        site.page(host, path, f"<html><body><h1>{text}</h1>{'z' * page_size}</body></html>")


def _config(site: VirtualHosts, **overrides: object) -> CrawlerConfig:
    settings: dict[str, object] = {"schemes": ("http",), "allow_nonstandard_ports": True,
                                   "allowed_endpoints": frozenset({site.endpoint}), "backoff_base_s": 0.01,
                                   "min_interval_s": 0.01}
    settings.update(overrides)
    return CrawlerConfig(**settings)  # type: ignore[arg-type]


def _crawl_one(config: CrawlerConfig, target: str, resolver: StaticResolver, **kwargs: object) -> SiteCrawl:
    async def scenario() -> SiteCrawl:
        async with SiteCrawler(config, resolver) as crawler:
            return await crawler.crawl_site(target, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(scenario())


def _crawl_many(config: CrawlerConfig, targets: list[str], resolver: StaticResolver,
                max_pages: int | None = None) -> dict[str, SiteCrawl]:
    async def scenario() -> dict[str, SiteCrawl]:
        async with SiteCrawler(config, resolver) as crawler:
            return {crawl.domain: crawl async for crawl in crawler.crawl_many(targets, max_pages=max_pages)}

    return asyncio.run(scenario())


def _resolver(*hosts: str) -> StaticResolver:
    return StaticResolver({host: ["127.0.0.1"] for host in hosts})


def test_a_site_crawl_fetches_robots_home_and_key_pages() -> None:
    site = VirtualHosts()
    _company(site, HOST)
    with running(site):
        crawl = _crawl_one(_config(site), site.port_url(HOST), _resolver(HOST), max_pages=3)
    assert crawl.outcome == "ok" and crawl.coverage == "full"
    assert crawl.base_url == site.port_url(HOST)
    assert [page.final_url for page in crawl.pages] == [
        site.port_url(HOST, path) for path in ("/", "/about", "/contact", "/team")]
    assert all(page.ok for page in crawl.pages)
    assert crawl.robots is not None and crawl.robots.outcome == "parsed"
    assert crawl.requests_made == len(site.hits) == 5
    assert crawl.bytes_downloaded == sum(len(page.body) for page in crawl.pages) + len(ALLOW_ALL)
    assert site.hits_for(HOST, "/brochure.pdf") == []
    summary = json.loads(json.dumps(crawl.to_dict()))
    assert summary["outcome"] == "ok" and len(summary["pages"]) == 4
    assert "body" not in summary["pages"][0] and summary["pages"][0]["body_bytes"] == len(crawl.pages[0].body)


def test_a_site_with_fewer_key_pages_than_the_budget_gets_only_those() -> None:
    site = VirtualHosts()
    products = [(f"/products/item-{n}", f"Widget {n}") for n in range(1, 21)]
    site.page(HOST, "/robots.txt", ALLOW_ALL, content_type="text/plain")
    site.page(HOST, "/", html_page(("/about", "About us"), ("/contact", "Contact us"), ("/blog", "Blog"),
                                   ("/shop", "Shop"), *products))
    for path in ("/about", "/contact", "/blog", "/shop", *(path for path, _ in products)):
        site.page(HOST, path, f"<html><body>{path}</body></html>")
    with running(site):
        crawl = _crawl_one(_config(site), site.port_url(HOST), _resolver(HOST), max_pages=6)
    assert crawl.outcome == "ok" and crawl.coverage == "full" and crawl.skipped_pages == []
    assert [hit.path for hit in site.hits] == ["/robots.txt", "/", "/about", "/contact"]
    assert crawl.requests_made == 4


def test_bare_domains_fall_back_to_the_next_scheme_through_the_proxy() -> None:
    proxy = VirtualHosts()
    _company(proxy, HOST)
    with running(proxy):
        config = CrawlerConfig(schemes=("https", "http"), proxy=proxy.url, min_interval_s=0.01, max_pages=1)
        # Through the proxy the crawler still resolves every host for the SSRF check.
        crawl = _crawl_one(config, HOST, StaticResolver({HOST: ["93.184.216.34"]}))
    assert crawl.outcome == "ok"
    assert crawl.base_url == f"http://{HOST}/"
    assert [(hit.host, hit.path) for hit in proxy.hits] == [(HOST, "/robots.txt"), (HOST, "/"), (HOST, "/about")]


@pytest.mark.parametrize(("robots", "status", "outcome", "paths_requested"), [
    ("User-agent: *\nDisallow: /\n", 200, "blocked_robots", ["/robots.txt"]),
    ("User-agent: NightlyPipelineBot\nDisallow: /\n", 200, "blocked_robots", ["/robots.txt"]),
    ("overloaded", 503, "unreachable", ["/robots.txt"] * 3),
    ("User-agent: *\nDisallow: /team\n", 200, "ok", ["/robots.txt", "/", "/about", "/contact"]),
])
def test_robots_shapes_the_outcome(robots: str, status: int, outcome: str, paths_requested: list[str]) -> None:
    site = VirtualHosts()
    _company(site, HOST, robots=robots, robots_status=status)
    with running(site):
        crawl = _crawl_one(_config(site), site.port_url(HOST), _resolver(HOST), max_pages=3)
    assert crawl.outcome == outcome
    assert [hit.path for hit in site.hits] == paths_requested
    if outcome == "ok":
        assert [page.error_kind for page in crawl.pages] == [None, None, None, "robots"]


def test_unresolvable_and_private_domains() -> None:
    site = VirtualHosts()
    with running(site):
        config = _config(site)
        resolver = StaticResolver({"internal.com.sg": ["10.0.0.5"]})
        missing = _crawl_one(config, "missing.com.sg", resolver)
        private = _crawl_one(config, "internal.com.sg", resolver)
        literal = _crawl_one(config, "http://169.254.169.254/", resolver)
    assert missing.outcome == "unreachable" and "cannot resolve" in missing.reason
    assert private.outcome == "error" and "10.0.0.5" in private.reason and private.requests_made == 0
    assert literal.outcome == "error" and "169.254.169.254" in literal.reason
    assert site.hits == []


def test_a_pdf_home_page_is_not_html() -> None:
    site = VirtualHosts()
    _company(site, HOST)
    site.page(HOST, "/", b"%PDF-1.7", content_type="application/pdf")
    with running(site):
        crawl = _crawl_one(_config(site), site.port_url(HOST), _resolver(HOST))
    assert crawl.outcome == "not_html"
    assert [page.error_kind for page in crawl.pages] == ["not_html"]


def test_a_home_page_redirected_to_another_company_is_followed_with_its_robots_and_dropped() -> None:
    site = VirtualHosts()
    _company(site, HOST)
    _company(site, "bigger.com.sg")
    with running(site):
        site.redirect(HOST, "/", site.port_url("bigger.com.sg"), status=301)
        crawl = _crawl_one(_config(site), site.port_url(HOST), _resolver(HOST, "bigger.com.sg"), max_pages=1)
    assert crawl.outcome == "redirected_offsite" and "bigger.com.sg" in crawl.reason
    assert crawl.pages == []
    assert crawl.dropped_pages == [{
        "url": site.port_url(HOST), "final_url": site.port_url("bigger.com.sg"),
        "reason": "redirected to bigger.com.sg, another registrable domain than acme.com.sg: "
                  "not this company's content"}]
    assert len(site.hits_for("bigger.com.sg", "/robots.txt")) == 1
    # Nothing further of the other company's site is fetched.
    assert [hit.path for hit in site.hits_for("bigger.com.sg")] == ["/robots.txt", "/"]


def test_a_key_page_redirected_to_another_company_is_dropped_and_the_rest_kept() -> None:
    site = VirtualHosts()
    _company(site, HOST)
    _company(site, "bigger.com.sg")
    with running(site):
        site.redirect(HOST, "/contact", site.port_url("bigger.com.sg", "/contact"), status=301)
        site.redirect(HOST, "/team", site.port_url(f"www.{HOST}", "/team"), status=301)
        site.page(f"www.{HOST}", "/team", "<html><body>team</body></html>")
        crawl = _crawl_one(_config(site), site.port_url(HOST), _resolver(HOST, f"www.{HOST}", "bigger.com.sg"),
                           max_pages=3)
    assert crawl.outcome == "ok"
    # A redirect within the site (to www.) is the company's own page.
    assert [page.final_url for page in crawl.pages] == [
        site.port_url(HOST), site.port_url(HOST, "/about"), site.port_url(f"www.{HOST}", "/team")]
    assert [(d["url"], d["final_url"]) for d in crawl.dropped_pages] == [
        (site.port_url(HOST, "/contact"), site.port_url("bigger.com.sg", "/contact"))]
    assert "bigger.com.sg" in crawl.dropped_pages[0]["reason"]
    assert crawl.to_dict()["dropped_pages"] == crawl.dropped_pages


def test_the_byte_budget_makes_coverage_partial() -> None:
    site = VirtualHosts()
    _company(site, HOST, page_size=2000)
    with running(site):
        crawl = _crawl_one(_config(site, domain_byte_budget=5000), site.port_url(HOST), _resolver(HOST))
    assert crawl.outcome == "ok" and crawl.coverage == "partial"
    assert crawl.bytes_downloaded <= 5000
    assert crawl.skipped_pages
    assert len(crawl.pages) + len(crawl.skipped_pages) == 1 + len(KEY_LINKS)
    assert any(page.truncated for page in crawl.pages)


def test_the_time_budget_makes_coverage_partial() -> None:
    site = VirtualHosts()
    _company(site, HOST)
    with running(site):
        config = _config(site, min_interval_s=0.5, domain_time_budget_s=1.2)
        crawl = _crawl_one(config, site.port_url(HOST), _resolver(HOST))
    assert crawl.outcome == "ok" and crawl.coverage == "partial"
    assert crawl.skipped_pages
    assert len(site.hits) < 2 + len(KEY_LINKS)


def test_a_hanging_site_times_out_while_other_sites_proceed() -> None:
    site = VirtualHosts()
    hosts = ["slow.com.sg", "fast1.com.sg", "fast2.com.sg", "fast3.com.sg"]
    for host in hosts:
        _company(site, host)
    hanging = HangingPage(site)
    site.route("slow.com.sg", "/", hanging)
    with running(site):
        config = _config(site, timeout_s=2.0, min_interval_s=0.5)
        crawls = _crawl_many(config, [site.port_url(host) for host in hosts], _resolver(*hosts), max_pages=1)
        assert hanging.closed.wait(5)
    slow = crawls[site.port_url("slow.com.sg")]
    assert slow.outcome == "unreachable" and "2 s" in slow.reason
    for host in hosts[1:]:
        assert crawls[site.port_url(host)].outcome == "ok"
        assert len(site.hits_for(host)) == 3
        assert all(hit.at < hanging.closed_at[0] for hit in site.hits_for(host))


def test_crawl_many_bounds_the_sites_in_flight() -> None:
    site = VirtualHosts()
    hosts = [f"site{n}.com.sg" for n in range(6)]
    in_flight = 0
    most_in_flight = 0

    async def slow_page(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.Response(text=html_page(("/about", "About")), content_type="text/html")

    for host in hosts:
        site.page(host, "/robots.txt", "", status=404)
        site.route(host, "/", slow_page)
        site.route(host, "/about", slow_page)
    with running(site):
        crawls = _crawl_many(_config(site, concurrency=2), [site.port_url(host) for host in hosts],
                             _resolver(*hosts), max_pages=1)
    assert len(crawls) == 6 and all(crawl.outcome == "ok" for crawl in crawls.values())
    assert most_in_flight == 2


def test_stopping_early_cancels_the_remaining_work() -> None:
    site = VirtualHosts()
    hosts = [f"site{n}.com.sg" for n in range(5)]
    for host in hosts:
        _company(site, host)

    async def scenario() -> tuple[SiteCrawl, set[asyncio.Task[object]]]:
        async with SiteCrawler(_config(site, concurrency=1), _resolver(*hosts)) as crawler:
            targets = [site.port_url(host) for host in hosts]
            async with aclosing(crawler.crawl_many(targets, max_pages=1)) as crawls:
                first = await anext(crawls)
        return first, {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}

    with running(site):
        first, leftover = asyncio.run(scenario())
    assert first.outcome == "ok"
    assert leftover == set()
    assert len({hit.host for hit in site.hits}) <= 2


def test_fetch_home_page_for_website_discovery() -> None:
    site = VirtualHosts()
    _company(site, HOST)
    _company(site, "private.com.sg", robots="User-agent: *\nDisallow: /\n")

    async def scenario() -> list[FetchResult | None]:
        async with SiteCrawler(_config(site), _resolver(HOST, "private.com.sg")) as crawler:
            return [await crawler.fetch_home_page(target) for target in
                    (site.port_url(HOST), site.port_url("private.com.sg"), "nowhere.com.sg")]

    with running(site):
        found, blocked, missing = asyncio.run(scenario())
    assert found is not None and found.ok and found.body.startswith(b"<!doctype html>")
    assert blocked is not None and blocked.error_kind == "robots"
    assert missing is None
    assert site.hits_for(HOST, "/about") == []


def test_config_from_the_pipeline_settings() -> None:
    settings = load_settings({
        "CRAWLER_USER_AGENT": "AcmeBot/2.0", "CRAWLER_TIMEOUT_S": "7.5", "CRAWLER_DOMAIN_MIN_INTERVAL_S": "1",
        "CRAWL_MAX_PAGES": "4", "CRAWLER_PROXY": "http://127.0.0.1:3128", "CRAWLER_SCHEMES": "http",
        "CRAWLER_ALLOW_PRIVATE_NETWORKS": "true"})
    config = crawler_config(settings)
    assert (config.user_agent, config.timeout_s) == ("AcmeBot/2.0", 7.5)
    assert (config.min_interval_s, config.max_pages) == (1.0, 4)
    assert (config.proxy, config.schemes, config.allow_private_networks) == ("http://127.0.0.1:3128", ("http",), True)


def test_pools_are_sharded_by_host_and_a_host_keeps_its_pool() -> None:
    from nightly_pipeline.crawl.ssrf import AddressPolicy
    from nightly_pipeline.crawl.transport import DOMAINS_PER_POOL, build_sharded_crawl_client

    client = build_sharded_crawl_client(concurrency=100, policy=AddressPolicy(), user_agent="t", timeout_s=1)
    try:
        assert len(client._clients) == -(-100 // DOMAINS_PER_POOL)
        pools = {client._for(client.build_request("GET", f"http://site{i}.sg/").url) for i in range(200)}
        assert len(pools) == len(client._clients)
        first = client.build_request("GET", "http://acme.com.sg/about").url
        assert client._for(first) is client._for(client.build_request("GET", "http://acme.com.sg/team").url)
    finally:
        asyncio.run(client.aclose())
