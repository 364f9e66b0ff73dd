"""A key page that redirects to another company's site, against the sandbox web.

The sandbox's ``key_page_offsite`` site answers ``/contact`` with a 301 to another company's contact
page. That company's addresses must not become this company's signals, and the redirected request is
spaced by the other company's domain, which is being crawled at the same time.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise

import pytest

from nightly_pipeline.crawl.crawler import CrawlerConfig, SiteCrawl, SiteCrawler
from nightly_pipeline.crawl.pages import registrable_domain
from nightly_pipeline.crawl.politeness import politeness_key
from nightly_pipeline.crawl.signals import decode_html, merge_site_signals, page_signals
from nightly_pipeline_sandbox.runner import Sandbox, SandboxConfig

INTERVAL_S = 0.5
# The sandbox logs a request when its handler has answered, which is before the client has read the
# whole response; spacing counted from the client's end is at least as large. The epsilon is the clock's.
CLOCK_EPSILON_S = 0.005


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(web_latency_scale=0.1, vendor_latency_scale=0)) as running:
        yield running


def _crawl(sandbox: Sandbox, domains: list[str]) -> dict[str, SiteCrawl]:
    config = CrawlerConfig(proxy=sandbox.web.url, schemes=("http",), allow_private_networks=True,
                           min_interval_s=INTERVAL_S, max_pages=6)

    async def scenario() -> dict[str, SiteCrawl]:
        async with SiteCrawler(config) as crawler:
            return {crawl.domain: crawl async for crawl in crawler.crawl_many(domains)}

    return asyncio.run(scenario())


def test_a_key_page_redirected_to_another_company_gives_none_of_its_addresses(sandbox: Sandbox) -> None:
    world = sandbox.world
    domain = world.hard_cases["key_page_offsite"]
    site = world.sites[domain]
    other = world.sites[site.redirect_target]
    assert other.uen != site.uen and other.mentions_on("/contact")
    sandbox.web.reset()

    crawls = _crawl(sandbox, [domain, other.domain])

    crawl = crawls[domain]
    assert crawl.outcome == "ok"
    assert [(dropped["url"], dropped["final_url"]) for dropped in crawl.dropped_pages] == [
        (f"http://{domain}/contact", f"http://{other.domain}/contact")]
    assert other.domain in crawl.dropped_pages[0]["reason"]
    assert {registrable_domain(page.final_url) for page in crawl.pages} == {domain}
    signals = merge_site_signals([page_signals(page.final_url, decode_html(page.body, page.content_type),
                                               page.headers, domain) for page in crawl.pages if page.ok])
    found = {hit.email for hit in signals.emails}
    assert found, "the company's own pages still give its addresses"
    assert not found & other.truth.emails
    # The other company's own crawl is not affected.
    assert crawls[other.domain].dropped_pages == [] and crawls[other.domain].outcome == "ok"

    # The redirected request went to the other domain in that domain's turn.
    arrivals: dict[str, list[float]] = defaultdict(list)
    for entry in sandbox.web.request_log:
        arrivals[politeness_key(entry.host)].append(entry.at)
    contact_hits = [entry for entry in sandbox.web.request_log
                    if entry.host == other.domain and entry.path == "/contact"]
    assert len(contact_hits) == 2    # its own crawl, and the redirect
    for key in (domain, other.domain):
        times = sorted(arrivals[key])
        assert min(later - earlier for earlier, later in pairwise(times)) >= INTERVAL_S - CLOCK_EPSILON_S, key
