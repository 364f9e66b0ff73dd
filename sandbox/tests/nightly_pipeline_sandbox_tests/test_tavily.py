"""The Tavily sandbox server, driven by the real tavily-python client over loopback."""
from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from tavily import TavilyClient
from tavily.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidAPIKeyError,
    UsageLimitExceededError,
)

from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.tavily import TavilyServer
from nightly_pipeline_sandbox.world import Site, World

SEARCH_KEYS = {"query", "answer", "images", "follow_up_questions", "results", "response_time"}
RESULT_KEYS = {"title", "url", "content", "score", "raw_content"}


@pytest.fixture(scope="module")
def world() -> World:
    return World.from_acra_csv()


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[TavilyServer]:
    with serving(TavilyServer(world)) as tavily:
        yield tavily


@pytest.fixture
def tavily(server: TavilyServer) -> Iterator[TavilyClient]:
    server.reset()
    with TavilyClient(api_key="tvly-test", api_base_url=server.url) as client:
        yield client


def plain_site(world: World) -> Site:
    return next(site for site in world.sites.values() if site.hard_case is None and site.uen in world.companies
                and site.domain not in world.lookalikes)


# -- search ------------------------------------------------------------------------------------------------
def test_search_finds_a_company_by_name_with_the_documented_shape(world: World, tavily: TavilyClient) -> None:
    site = plain_site(world)
    response = tavily.search(site.display_name, include_usage=True)
    assert SEARCH_KEYS <= set(response) and response["usage"] == {"credits": 1}
    assert response["query"] == site.display_name and response["answer"] is None
    assert all(RESULT_KEYS <= set(result) for result in response["results"])
    top = response["results"][0]
    assert top["url"] == f"https://{site.domain}/" and top["score"] == 1.0
    assert [r["score"] for r in response["results"]] == sorted((r["score"] for r in response["results"]), reverse=True)


def test_a_lookalike_ranks_below_the_real_company(world: World, tavily: TavilyClient) -> None:
    domain, uen = next((d, u) for d, u in world.lookalikes.items() if world.site_for_uen(u) is not None)
    real = world.site_for_uen(uen)
    assert real is not None
    urls = [result["url"] for result in tavily.search(real.display_name, max_results=10)["results"]]
    assert urls.index(f"https://{real.domain}/") < urls.index(f"https://{domain}/")


def test_search_options_raw_content_domains_answer_and_advanced_depth(world: World, server: TavilyServer,
                                                                      tavily: TavilyClient) -> None:
    site = plain_site(world)
    response = tavily.search(site.display_name, include_raw_content="markdown", include_answer=True,
                             include_domains=[site.domain], search_depth="advanced", include_usage=True)
    assert [r["url"] for r in response["results"]] == [f"https://{site.domain}/"]
    assert site.uen in response["results"][0]["raw_content"]
    assert site.display_name in response["answer"]
    assert response["usage"] == {"credits": 2}
    excluded = tavily.search(site.display_name, exclude_domains=[site.domain], max_results=20)
    assert f"https://{site.domain}/" not in [r["url"] for r in excluded["results"]]
    assert server.credits_used("tvly-test") == 3


# -- extract -----------------------------------------------------------------------------------------------
def test_extract_returns_content_and_reports_unreadable_urls_as_failed(world: World, tavily: TavilyClient) -> None:
    js_site = world.sites[world.hard_cases["js_only"]]
    urls = [f"https://{js_site.domain}/about", "https://no-such-company.com.sg/",
            f"http://{world.hard_cases['hang']}/about", f"https://{world.hard_cases['redirect_loop']}/about"]
    response = tavily.extract(urls, include_usage=True)
    assert set(response) >= {"results", "failed_results", "response_time"}
    assert [r["url"] for r in response["results"]] == urls[:1]
    assert js_site.uen in response["results"][0]["raw_content"]   # Tavily renders what the proxy cannot
    assert response["results"][0]["images"] == []
    assert [f["url"] for f in response["failed_results"]] == urls[1:]
    assert all(f["error"] for f in response["failed_results"])
    assert response["usage"] == {"credits": 1}


def test_extract_shows_the_javascript_only_sites_contact_details(world: World, tavily: TavilyClient) -> None:
    site = world.sites[world.hard_cases["js_only"]]
    content = tavily.extract([f"https://{site.domain}/contact"], format="text")["results"][0]["raw_content"]
    readable = {m.email for m in site.mentions_on("/contact") if m.form in ("plain", "mailto", "entity")}
    assert all(email in content for email in readable)
    assert site.address in content


@pytest.mark.parametrize(("count", "depth", "credits"), [(7, "basic", 2), (7, "advanced", 4), (5, "basic", 1),
                                                         (11, "advanced", 6)])
def test_extract_bills_per_five_successful_urls_rounded_up(world: World, tavily: TavilyClient, count: int,
                                                           depth: str, credits: int) -> None:
    site = plain_site(world)
    urls = [f"https://{site.domain}/products/item-{n}" for n in range(1, count + 1)] + ["https://nowhere.sg/"]
    response = tavily.extract(urls, extract_depth=depth, include_usage=True)
    assert len(response["results"]) == count and len(response["failed_results"]) == 1
    assert response["usage"] == {"credits": credits}


def test_extract_refuses_more_than_20_urls(world: World, tavily: TavilyClient) -> None:
    site = plain_site(world)
    with pytest.raises(BadRequestError):
        tavily.extract([f"https://{site.domain}/products/item-{n}" for n in range(1, 22)])


def test_extract_with_a_query_keeps_the_relevant_chunks(world: World, tavily: TavilyClient) -> None:
    site = plain_site(world)
    response = tavily.extract([f"https://{site.domain}/about"], query="UEN registered", chunks_per_source=1)
    content = response["results"][0]["raw_content"]
    assert site.uen in content and len(content) < len(
        tavily.extract([f"https://{site.domain}/about"])["results"][0]["raw_content"])


# -- crawl and map -----------------------------------------------------------------------------------------
def test_crawl_returns_the_sites_pages_and_bills_map_plus_extract(world: World, tavily: TavilyClient) -> None:
    site = plain_site(world)
    response = tavily.crawl(f"https://{site.domain}", max_depth=1, limit=6, extract_depth="basic",
                            format="markdown", include_usage=True, timeout=60)
    assert response["base_url"] == site.domain and "response_time" in response
    urls = [result["url"] for result in response["results"]]
    assert len(urls) == 6 and urls[0] == f"https://{site.domain}/"
    assert all(url.startswith(f"https://{site.domain}/") for url in urls)
    assert all(set(result) >= {"url", "raw_content", "images"} for result in response["results"])
    assert response["usage"] == {"credits": math.ceil(6 / 10) + math.ceil(6 / 5)}


def test_crawl_follows_depth_and_path_filters(world: World, tavily: TavilyClient) -> None:
    site = plain_site(world)
    deep = tavily.crawl(f"https://{site.domain}/", max_depth=2, max_breadth=100, limit=200,
                        select_paths=["^/products"])
    urls = [result["url"] for result in deep["results"]]
    assert urls and all("/products" in url for url in urls)
    assert len(urls) == site.product_count + 1    # the listing and every item, reached at depth 2
    narrow = tavily.crawl(f"https://{site.domain}/", max_depth=2, max_breadth=20, limit=200,
                          select_paths=["^/products"])
    assert len(narrow["results"]) < len(urls)     # at most 20 new links followed per page
    endless = tavily.crawl(f"https://{site.domain}/calendar?month=2025-01", max_depth=5, limit=200,
                           select_paths=["^/calendar"])
    # The start month plus one earlier and one later month per level: depth bounds the endless calendar.
    assert len(endless["results"]) == 1 + 2 * 5


def test_crawl_with_instructions_costs_twice_for_the_map_part(world: World, tavily: TavilyClient) -> None:
    site = plain_site(world)
    response = tavily.crawl(f"https://{site.domain}", limit=10, instructions="contact email and phone",
                            chunks_per_source=2, include_usage=True)
    assert response["usage"] == {"credits": 2 * math.ceil(10 / 10) + math.ceil(10 / 5)}
    assert all(result["raw_content"].count(" [...] ") <= 1 for result in response["results"])


def test_map_lists_urls_and_bills_per_ten_pages(world: World, tavily: TavilyClient) -> None:
    site = plain_site(world)
    response = tavily.map(f"https://{site.domain}", max_depth=2, limit=25, include_usage=True)
    assert response["base_url"] == site.domain
    assert len(response["results"]) == 25 and all(isinstance(url, str) for url in response["results"])
    assert response["usage"] == {"credits": 3}


def test_crawl_of_an_unknown_site_is_empty_and_free(tavily: TavilyClient) -> None:
    response = tavily.crawl("https://no-such-company.com.sg", include_usage=True)
    assert response["results"] == [] and response["usage"] == {"credits": 0}


# -- auth, limits, credits ---------------------------------------------------------------------------------
def test_unknown_or_missing_keys_get_401(world: World) -> None:
    with serving(TavilyServer(world, api_keys={"tvly-known"})) as tavily_server:
        with TavilyClient(api_key="tvly-unknown", api_base_url=tavily_server.url) as client:
            with pytest.raises(InvalidAPIKeyError):
                client.search("acme")
        anonymous = httpx.post(f"{tavily_server.url}/search", json={"query": "acme"})
        assert anonymous.status_code == 401 and anonymous.json()["detail"]["error"]
        in_body = httpx.post(f"{tavily_server.url}/search", json={"query": "acme", "api_key": "tvly-known"})
        assert in_body.status_code == 200 and in_body.json()["results"] is not None
        assert tavily_server.stats()["rejections"] == {"401": 2}


def test_the_per_minute_limit_answers_429_and_crawl_has_its_own(world: World) -> None:
    site = plain_site(world)
    with serving(TavilyServer(world, per_minute=3, crawl_per_minute=1)) as tavily_server:
        with TavilyClient(api_key="tvly-busy", api_base_url=tavily_server.url) as client:
            for _ in range(3):
                client.search("software")
            with pytest.raises(UsageLimitExceededError):
                client.search("software")
            client.crawl(f"https://{site.domain}", limit=1)
            with pytest.raises(UsageLimitExceededError):
                client.crawl(f"https://{site.domain}", limit=1)
        with TavilyClient(api_key="tvly-other", api_base_url=tavily_server.url) as other:
            assert other.search("software")["results"]
        raw = httpx.post(f"{tavily_server.url}/search", json={"query": "x"},
                         headers={"Authorization": "Bearer tvly-busy"})
        assert raw.status_code == 429 and raw.json()["detail"]["error"]


def test_an_exhausted_credit_allowance_answers_432(world: World) -> None:
    with serving(TavilyServer(world, credit_limit=3)) as tavily_server:
        with TavilyClient(api_key="tvly-small", api_base_url=tavily_server.url) as client:
            client.search("software", search_depth="advanced")
            with pytest.raises(ForbiddenError):
                client.search("software", search_depth="advanced")
            client.search("software")
            with pytest.raises(ForbiddenError):
                client.search("software")
        assert tavily_server.credits_used("tvly-small") == 3
        assert tavily_server.stats()["rejections"] == {"432": 2}


def test_stats_report_calls_per_endpoint_and_credits_per_key(world: World, server: TavilyServer) -> None:
    server.reset()
    site = plain_site(world)
    with TavilyClient(api_key="tvly-a", api_base_url=server.url) as first, \
            TavilyClient(api_key="tvly-b", api_base_url=server.url) as second:
        first.search("software", search_depth="advanced")
        first.extract([site.url])
        second.map(site.url, limit=5)
    stats = httpx.get(f"{server.url}/_sandbox/stats").json()
    assert stats["calls"] == {"search": 1, "extract": 1, "map": 1}
    assert stats["credits"] == {"tvly-a": 3, "tvly-b": 1}
