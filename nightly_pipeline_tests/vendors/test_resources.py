"""The vendor resources: one client per run built from typed fields and the run's settings, a null
client without a key, no key in any repr, and clients that serve one event loop after another."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from langchain_core.messages import HumanMessage
from tavily import TavilyClient

from nightly_pipeline_sandbox.llm import OpenAIServer
from nightly_pipeline_sandbox.lusha import LushaServer
from nightly_pipeline_sandbox.zerobounce import ZeroBounceServer
from nightly_pipeline.settings import SettingsError
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.lusha import LushaClient, LushaResource, NullLushaClient, SearchResult
from nightly_pipeline.vendors.openai import NullOpenAIChat, OpenAIChat, OpenAIResource
from nightly_pipeline.vendors.paid_call import NullClient
from nightly_pipeline.vendors.tavily import NullTavilyClient, TavilyResource
from nightly_pipeline.vendors.zerobounce import NullZeroBounceClient, ZeroBounceClient, ZeroBounceResource
from nightly_pipeline_sandbox.harness import serving

KEYS = {"OPENAI_API_KEY": "sk-resource-secret", "TAVILY_API_KEY": "tvly-resource-secret",
        "LUSHA_API_KEY": "lusha-resource-secret", "ZEROBOUNCE_API_KEY": "zb-resource-secret"}
VENDOR_VARIABLES = (*KEYS, "OPENAI_BASE_URL", "LANGCHAIN_MODEL", "TAVILY_BASE_URL", "LUSHA_BASE_URL",
                    "ZEROBOUNCE_BASE_URL", "ZEROBOUNCE_BULK_BASE_URL", "ENABLE_LUSHA_FALLBACK")


@pytest.fixture(autouse=True)
def no_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VENDOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def vendor_resources(settings: PipelineSettings | None = None, **fields: dict[str, Any]) -> dict[str, Any]:
    settings = settings or PipelineSettings()
    return {"openai": OpenAIResource(settings=settings, **fields.get("openai", {})),
            "tavily": TavilyResource(settings=settings, **fields.get("tavily", {})),
            "lusha": LushaResource(settings=settings, **fields.get("lusha", {})),
            "zerobounce": ZeroBounceResource(settings=settings, **fields.get("zerobounce", {}))}


def clients(resources: dict[str, Any]) -> dict[str, Any]:
    with dg.build_resources(resources) as built:
        return {name: getattr(built, name).get_client() for name in resources}


def test_without_keys_every_vendor_resource_hands_out_a_null_client_naming_the_variable() -> None:
    built = clients(vendor_resources())
    assert isinstance(built["openai"], NullOpenAIChat) and isinstance(built["tavily"], NullTavilyClient)
    assert isinstance(built["lusha"], NullLushaClient) and isinstance(built["zerobounce"], NullZeroBounceClient)
    assert {name: client.reason for name, client in built.items()} == {
        "openai": "no OPENAI_API_KEY", "tavily": "no TAVILY_API_KEY", "lusha": "no LUSHA_API_KEY",
        "zerobounce": "no ZEROBOUNCE_API_KEY"}


def test_a_switched_off_lusha_fallback_is_a_null_client_even_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUSHA_API_KEY", KEYS["LUSHA_API_KEY"])
    switched_off = PipelineSettings(overrides={"ENABLE_LUSHA_FALLBACK": "false"})
    lusha = clients({"lusha": LushaResource(settings=switched_off)})
    assert isinstance(lusha["lusha"], NullLushaClient)
    assert lusha["lusha"].reason == "Lusha fallback disabled (ENABLE_LUSHA_FALLBACK)"


def test_with_keys_the_clients_take_their_fields_else_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    settings = PipelineSettings(overrides={
        "LANGCHAIN_MODEL": "gpt-4o", "OPENAI_BASE_URL": "http://127.0.0.1:7/v1",
        "TAVILY_BASE_URL": "http://127.0.0.1:8", "LUSHA_BASE_URL": "http://127.0.0.1:9",
        "ZEROBOUNCE_BASE_URL": "http://127.0.0.1:10/v2"})
    from_settings = clients(vendor_resources(settings))
    assert isinstance(from_settings["openai"], OpenAIChat)
    assert (from_settings["openai"].model_name, from_settings["openai"].base_url) == (
        "gpt-4o", "http://127.0.0.1:7/v1")
    assert isinstance(from_settings["tavily"], TavilyClient)
    assert from_settings["tavily"].base_url == "http://127.0.0.1:8"
    assert isinstance(from_settings["lusha"], LushaClient) and isinstance(from_settings["zerobounce"], ZeroBounceClient)
    assert "http://127.0.0.1:9" in repr(from_settings["lusha"])
    assert "'http://127.0.0.1:10/v2'" in repr(from_settings["zerobounce"])
    assert "bulkapi.zerobounce.net" in repr(from_settings["zerobounce"])

    own = clients(vendor_resources(settings, openai={"model": "gpt-4.1-mini"},
                                   lusha={"base_url": "http://127.0.0.1:11"},
                                   zerobounce={"bulk_base_url": "http://127.0.0.1:12/v2"}))
    assert own["openai"].model_name == "gpt-4.1-mini"
    assert "http://127.0.0.1:11" in repr(own["lusha"]) and "http://127.0.0.1:12/v2" in repr(own["zerobounce"])


def test_no_key_shows_in_a_resource_its_client_or_the_run_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    resources = vendor_resources()
    built = clients(resources)
    shown = " ".join([repr(resources), *(repr(client) for client in built.values()),
                      repr([resource.model_dump() for resource in resources.values()])])
    assert not [key for key in KEYS.values() if key in shown]
    assert not {"api_key", "key"} & {field for resource in resources.values() for field in type(resource).model_fields}


def test_settings_overrides_refuse_secrets() -> None:
    with pytest.raises(Exception, match="must not carry secrets.*OPENAI_API_KEY"):
        PipelineSettings(overrides={"OPENAI_API_KEY": "sk-in-the-run-config"})
    PipelineSettings(overrides={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})


def test_a_malformed_variable_stops_the_run_at_start_with_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_DAILY_TOKENS_CAP", "lots")
    with pytest.raises(Exception) as raised, dg.build_resources(vendor_resources()):
        pass
    error = raised.value
    while not isinstance(error, SettingsError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, SettingsError)
    assert str(error) == "OPENAI_DAILY_TOKENS_CAP: expected an integer, got 'lots'"


def test_a_resource_used_outside_a_run_says_so() -> None:
    with pytest.raises(RuntimeError, match="outside a run"):
        LushaResource(settings=PipelineSettings()).get_client()
    with pytest.raises(RuntimeError, match="outside a run"):
        _ = PipelineSettings().settings


# -- one client, one event loop after another --------------------------------------------------------------
@pytest.fixture
def lusha_server() -> Iterator[LushaServer]:
    with serving(LushaServer(api_keys={KEYS["LUSHA_API_KEY"]}, unknown_domain_rate=0.0)) as server:
        yield server


def test_the_lusha_client_serves_one_event_loop_after_another(lusha_server: LushaServer) -> None:
    client = LushaClient(KEYS["LUSHA_API_KEY"], base_url=lusha_server.url)

    async def one_step() -> str:
        async with client:
            return (await client.search_contacts("acme.com.sg", ["Acme"])).request_id

    assert asyncio.run(one_step()) != asyncio.run(one_step())
    assert lusha_server.stats()["requests"] == 2

    async def outside() -> None:
        await client.search_contacts("acme.com.sg")

    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(outside())


def test_the_zerobounce_client_serves_one_event_loop_after_another() -> None:
    with serving(ZeroBounceServer(api_keys={KEYS["ZEROBOUNCE_API_KEY"]})) as server:
        client = ZeroBounceClient(KEYS["ZEROBOUNCE_API_KEY"], base_url=f"{server.url}/v2",
                                  bulk_base_url=f"{server.url}/v2")

        async def one_step() -> int:
            async with client:
                return await client.credits()

        assert asyncio.run(one_step()) == asyncio.run(one_step()) > 0


def test_the_openai_client_serves_one_event_loop_after_another() -> None:
    with serving(OpenAIServer(api_keys={KEYS["OPENAI_API_KEY"]})) as server:
        chat = OpenAIChat(KEYS["OPENAI_API_KEY"], base_url=f"{server.url}/v1", max_retries=0, timeout_s=10)

        async def one_step() -> str:
            async with chat:
                answer = await chat.complete([HumanMessage("Say hello.")], max_output_tokens=20)
            assert answer.billed.units > 0
            return answer.billed.status

        assert [asyncio.run(one_step()) for _ in range(3)] == ["ok"] * 3
        assert server.stats()["calls"] == 3


def test_null_clients_open_on_any_event_loop_and_never_call_out() -> None:
    async def one_step(client: NullClient) -> NullClient:
        async with client as opened:
            return opened

    for client in (NullOpenAIChat("no OPENAI_API_KEY"), NullTavilyClient("no TAVILY_API_KEY"),
                   NullLushaClient("no LUSHA_API_KEY"), NullZeroBounceClient("no ZEROBOUNCE_API_KEY")):
        assert asyncio.run(one_step(client)) is client and asyncio.run(one_step(client)) is client
        assert not hasattr(client, "complete") and not hasattr(client, "search_contacts")
        assert not hasattr(client, "validate_batch") and not hasattr(client, "search")


def test_a_run_reads_its_settings_once_and_every_resource_shares_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from nightly_pipeline.definitions import default_resources

    monkeypatch.setenv("LUSHA_API_KEY", KEYS["LUSHA_API_KEY"])
    seen: dict[str, int] = {}

    @dg.asset
    def probe(pipeline_settings: PipelineSettings, openai: OpenAIResource, tavily: TavilyResource,
              lusha: LushaResource, zerobounce: ZeroBounceResource) -> None:
        for name, resource in (("openai", openai), ("tavily", tavily), ("lusha", lusha), ("zerobounce", zerobounce)):
            seen[name] = id(resource.settings.settings)
        seen["pipeline_settings"] = id(pipeline_settings.settings)
        assert pipeline_settings.settings.lusha_base_url == "http://127.0.0.1:9"

    settings = PipelineSettings.configure_at_launch(overrides={"LUSHA_BASE_URL": "http://127.0.0.1:9"})
    resources = default_resources(settings)
    assert dg.materialize([probe], resources={k: v for k, v in resources.items() if k != "database"}).success
    assert len(set(seen.values())) == 1 and len(seen) == 5


def test_a_lusha_search_by_many_domains_is_read_page_by_page(lusha_server: LushaServer) -> None:
    domains = [f"firm{i}.com.sg" for i in range(12)]

    async def every_page() -> list[SearchResult]:
        async with LushaClient(KEYS["LUSHA_API_KEY"], base_url=lusha_server.url) as client:
            first = await client.search_contacts(domains, page_size=10)
            rest = [await client.search_contacts(domains, page=page, page_size=10) for page in range(1, first.pages)]
            return [first, *rest]

    results = asyncio.run(every_page())
    hits = [hit for result in results for hit in result.hits]
    assert len(results) == results[0].pages > 1 and len(hits) == results[0].total
    assert {hit.fqdn for hit in hits} == set(domains)
    assert len({result.request_id for result in results}) == len(results), "each page is its own search request"
