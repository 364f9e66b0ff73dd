"""AI extraction: structured output through the real ChatOpenAI client against the sandbox server,
token budgets reserved before and settled after each call, the per-tenant cache, and the
deterministic profile used whenever the model cannot be."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import dagster as dg
import psycopg
import pytest
from aiohttp import web
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from psycopg.rows import dict_row

from nightly_pipeline.crawl.signals import (
    PageMeta,
    PageSummary,
    SiteSignals,
    TechHit,
    merge_site_signals,
    page_signals,
)
from nightly_pipeline.db import Database
from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.acra import CompanyRow
from nightly_pipeline.db.budget import Scope
from nightly_pipeline.db.public_facts import get_extraction as get_cached
from nightly_pipeline.db.public_facts import put_extraction as put_cached
from nightly_pipeline_sandbox.base import FaultConfig, SandboxServer
from nightly_pipeline_sandbox.llm import OpenAIServer
from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.stages.extraction import (
    CompanyProfile,
    ExtractionResult,
    Extractor,
    corpus_hash,
    deterministic_profile,
)
from nightly_pipeline.stages.extraction_profile import (
    MAX_ABOUT_CHARS,
    MAX_PRODUCTS,
    revenue_bucket_for_employees,
)
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors.openai import ChatClient, NullOpenAIChat, OpenAIChat, OpenAIResource, bounded
from nightly_pipeline_tests.kit.night import new_night
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_tests.kit.tenants import register_tenant

MODEL = "gpt-4o-mini"
API_KEY = "sk-test-extraction-0001"

COMPANY = CompanyRow(
    company_id=1, uen="201912345K", name="Harbourline Logistics Pte. Ltd.",
    legal_name="HARBOURLINE LOGISTICS PTE. LTD.", entity_type=None, entity_status="Live Company", is_live=True,
    ssic_code="52291", ssic_description="FREIGHT TRANSPORT ARRANGEMENT", incorporation_date=None,
    incorporation_year=2019, postal_code="486162", street_name="CHANGI SOUTH LANE", website_domain=None,
    website_source=None, website_confidence=None)


def logistics_corpus(employees: int = 120, name: str = "Harbourline Logistics Pte. Ltd.") -> str:
    return (f"### home: Harbourline Logistics\nURL: https://harbourline.sg/\n"
            f"{name} is a logistics company with {employees} employees serving businesses across "
            "Southeast Asia. We move freight for manufacturers and distributors from our Changi hub.\n\n"
            "### products: Services\nURL: https://harbourline.sg/services\n"
            "Our services include freight forwarding, warehousing and customs clearance.\n"
            "Address: 10 Changi South Lane, Singapore 486162")


# --- fixtures and helpers --------------------------------------------------------------------

@pytest.fixture
def tenant(db: Database) -> int:
    return register_tenant(db)


def night_with_cap(db: Database, tenant: int, cap: int) -> TenantNight:
    """A fresh night of ``tenant`` whose OpenAI tokens are capped at ``cap`` a day."""
    with db.tenant(tenant) as conn:
        nights = conn.execute("SELECT count(*) AS n FROM enrichment_runs").fetchone()["n"]
    return new_night(db, tenant, run_date=dt.date(2026, 6, 1) + dt.timedelta(days=nights),
                     OPENAI_DAILY_TOKENS_CAP=str(cap))


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with serving(OpenAIServer()) as server:
        yield server


def chat_client(server: OpenAIServer) -> OpenAIChat:
    return OpenAIChat(API_KEY, base_url=server.url + "/v1", model=MODEL, max_retries=0, timeout_s=10)


def run_extractions(server: OpenAIServer, db: Database, tenant: int, cap: int,
                    jobs: list[tuple[Mapping[str, Any], str]], *, max_output_tokens: int = 600,
                    chat: ChatClient | None = None) -> list[ExtractionResult]:
    """Extract every (company, corpus) concurrently on one event loop, as the crawl asset does."""
    night = night_with_cap(db, tenant, cap)
    client = chat or chat_client(server)

    async def main() -> list[ExtractionResult]:
        async with client:
            extractor = Extractor(client, night, max_output_tokens=max_output_tokens)
            return await asyncio.gather(*(extractor.extract(company, corpus, None) for company, corpus in jobs))

    return asyncio.run(main())


def usage_rows(admin: psycopg.Connection) -> list[dict[str, Any]]:
    return admin.cursor(row_factory=dict_row).execute(
        "SELECT units_reserved, units_charged, status FROM vendor_usage WHERE vendor = 'openai' ORDER BY usage_id"
    ).fetchall()


def billed_tokens(server: OpenAIServer) -> int:
    stats = server.stats()
    return stats["prompt_tokens"] + stats["completion_tokens"]


# --- extraction through the sandbox ---------------------------------------------------------

@pytest.mark.database
def test_extraction_reflects_the_corpus_and_settles_the_tokens_openai_reports(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    [result] = run_extractions(openai_server, db, tenant, 50_000, [(COMPANY, logistics_corpus())])

    assert (result.source, result.degraded, result.degraded_reason) == ("llm", False, None)
    profile = result.profile
    assert profile.industry is not None and "logistics" in profile.industry.lower()
    assert profile.employees_estimate == 120
    assert profile.revenue_bucket == "10M-50M"
    assert profile.business_model == "B2B"
    assert profile.hq is not None and "486162" in profile.hq
    assert [item.lower() for item in profile.products_services] == [
        "freight forwarding", "warehousing", "customs clearance"]
    assert profile.about is not None and profile.about.startswith("Harbourline Logistics Pte. Ltd. is a logistics")
    assert profile.employees_estimate_confidence > 0.6

    [row] = usage_rows(admin)
    assert row["status"] == "ok"
    assert row["units_charged"] == result.tokens_used == billed_tokens(openai_server) > 0
    assert row["units_reserved"] >= row["units_charged"]
    with db.tenant(tenant) as conn:
        cached = get_cached(conn, result.corpus_hash, MODEL)
    assert cached == profile.model_dump(mode="json")
    assert json.loads(json.dumps(result.to_dict()))["profile"]["employees_estimate"] == 120


@pytest.mark.database
def test_a_rerun_answers_from_the_cache_without_calling_openai(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    [first] = run_extractions(openai_server, db, tenant, 50_000, [(COMPANY, logistics_corpus())])
    stats_after_first = openai_server.stats()

    # Whitespace differences are the same corpus; a new event loop gets a new client.
    [again] = run_extractions(openai_server, db, tenant, 50_000, [(COMPANY, "  " + logistics_corpus() + "\n\n")])

    assert (again.source, again.tokens_used, again.degraded) == ("cache", 0, False)
    assert again.profile == first.profile
    assert again.corpus_hash == first.corpus_hash
    assert openai_server.stats() == stats_after_first
    # The reuse is in the ledger: who reused a fact, at no cost.
    assert [(r["units_charged"], r["status"]) for r in usage_rows(admin)][1:] == [(0, "reused")]


@pytest.mark.database
def test_without_a_key_the_profile_is_deterministic_and_degraded(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    [result] = run_extractions(openai_server, db, tenant, 50_000, [(COMPANY, logistics_corpus())],
                               chat=NullOpenAIChat("no OPENAI_API_KEY", model=MODEL))

    assert (result.source, result.degraded, result.degraded_reason) == ("deterministic", True, "no OPENAI_API_KEY")
    assert result.tokens_used == 0
    assert result.profile.industry == "Freight transport arrangement"
    assert openai_server.stats()["requests"] == 0
    assert usage_rows(admin) == []


@pytest.mark.database
def test_an_exhausted_budget_degrades_before_any_request(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    earlier = night_with_cap(db, tenant, 1_000).budget
    earlier.settle(earlier.reserve("openai", "chat.completions", 400, cap=1_000, scope=Scope.DAY), charged=400,
                   status="ok")

    [result] = run_extractions(openai_server, db, tenant, 1_000, [(COMPANY, logistics_corpus())])

    assert result.source == "deterministic" and result.degraded
    assert result.degraded_reason == "OpenAI token budget exhausted (600 of 1000 left)"
    assert openai_server.stats()["requests"] == 0
    assert len(usage_rows(admin)) == 1


@pytest.mark.database
def test_concurrent_extractions_never_spend_past_the_cap(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    jobs = [(dataclasses.replace(COMPANY, company_id=n, uen=f"2019{n:05d}K"), logistics_corpus(employees=10 + n))
            for n in range(20)]
    probe = Extractor(NullOpenAIChat("no OPENAI_API_KEY", model=MODEL), night_with_cap(db, tenant, 0),
                      max_output_tokens=600)
    per_call = max(probe.reservation_tokens(company, corpus) for company, corpus in jobs)
    cap = per_call * 5 + per_call // 2

    results = run_extractions(openai_server, db, tenant, cap, jobs)

    succeeded = [r for r in results if r.source == "llm"]
    refused = [r for r in results if r.source == "deterministic"]
    assert len(succeeded) + len(refused) == 20
    assert len(succeeded) >= 5 and refused
    assert all(r.degraded_reason.startswith("OpenAI token budget exhausted") for r in refused)
    rows = usage_rows(admin)
    assert [row["status"] for row in rows] == ["ok"] * len(succeeded)
    assert all(row["units_charged"] <= row["units_reserved"] for row in rows)
    assert sum(row["units_charged"] for row in rows) == billed_tokens(openai_server) <= cap
    assert openai_server.stats()["calls"] == len(succeeded)


@pytest.mark.database
def test_a_server_error_degrades_and_settles_nothing(db: Database, tenant: int,
                                                     admin: psycopg.Connection) -> None:
    with serving(OpenAIServer(faults=FaultConfig(rate_5xx=1.0))) as failing:
        [result] = run_extractions(failing, db, tenant, 50_000, [(COMPANY, logistics_corpus())])
        assert failing.stats()["by_status"] == {"503": 1}

    assert (result.source, result.degraded) == ("deterministic", True)
    assert result.degraded_reason == "OpenAI call failed (OpenAIAPIError, HTTP 503)"
    assert API_KEY not in json.dumps(result.to_dict())
    [row] = usage_rows(admin)
    assert (row["units_charged"], row["status"]) == (0, "error")
    with db.tenant(tenant) as conn:
        assert get_cached(conn, result.corpus_hash, MODEL) is None


@pytest.mark.database
def test_a_reply_cut_at_max_tokens_is_charged_what_openai_reports(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    [result] = run_extractions(openai_server, db, tenant, 50_000, [(COMPANY, logistics_corpus())],
                               max_output_tokens=20)

    assert result.degraded_reason == "OpenAI call failed (LengthFinishReasonError)"
    assert 0 < openai_server.stats()["completion_tokens"] <= 20
    [row] = usage_rows(admin)
    assert (row["units_charged"], row["status"]) == (billed_tokens(openai_server), "error")


class MalformedReplyServer(SandboxServer):
    """Answers every chat completion with JSON that does not parse, billed like a real reply."""

    name = "openai-malformed"
    usage: ClassVar[dict[str, int]] = {"prompt_tokens": 1500, "completion_tokens": 7, "total_tokens": 1507}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._reply)

    async def _reply(self, request: web.Request) -> web.Response:
        body = await request.json()
        message = {"role": "assistant", "content": '{"industry": "logist', "refusal": None}
        return web.json_response({
            "id": "chatcmpl-malformed", "object": "chat.completion", "created": 1_780_000_000, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": message}],
            "usage": self.usage})


@pytest.mark.database
def test_an_unparseable_reply_degrades_and_is_charged_its_reported_usage(
        db: Database, tenant: int, admin: psycopg.Connection) -> None:
    with serving(MalformedReplyServer()) as malformed:
        [result] = run_extractions(malformed, db, tenant, 50_000, [(COMPANY, logistics_corpus())])

    assert (result.source, result.degraded_reason) == ("deterministic", "OpenAI call failed (ValidationError)")
    [row] = usage_rows(admin)
    assert (row["units_charged"], row["status"]) == (MalformedReplyServer.usage["total_tokens"], "error")


@pytest.mark.database
def test_an_empty_corpus_is_never_sent(db: Database, tenant: int, openai_server: OpenAIServer,
                                       admin: psycopg.Connection) -> None:
    [result] = run_extractions(openai_server, db, tenant, 50_000, [(COMPANY, " \n\t ")])

    assert (result.source, result.degraded_reason) == ("deterministic", "no corpus")
    assert result.profile.hq == "CHANGI SOUTH LANE, Singapore 486162"
    assert openai_server.stats()["requests"] == 0
    assert usage_rows(admin) == []


# --- the cache table -------------------------------------------------------------------------

@pytest.mark.database
def test_cache_upserts_and_is_shared_by_the_fleet(db: Database, tenant: int) -> None:
    # The model's reading of public pages is a public fact: another tenant reuses it, nothing names who paid.
    with db.shared() as conn:
        other_tenant = tenants_db.register_tenant(conn, "globex", None)
    with db.tenant(tenant) as conn:
        put_cached(conn, "h1", MODEL, {"industry": "logistics"}, tokens_used=900)
        put_cached(conn, "h1", MODEL, {"industry": "freight"}, tokens_used=950)
    with db.tenant(tenant) as conn:
        assert get_cached(conn, "h1", MODEL) == {"industry": "freight"}
        assert get_cached(conn, "h1", "gpt-4o") is None
    with db.tenant(other_tenant) as conn:
        assert get_cached(conn, "h1", MODEL) == {"industry": "freight"}


# --- the resource and the cache key ----------------------------------------------------------

def resource_client(resource: OpenAIResource) -> ChatClient:
    with dg.build_resources({"openai": resource}) as resources:
        return resources.openai.get_client()


def test_resource_without_a_key_gives_a_null_client_and_never_shows_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keyless = resource_client(OpenAIResource(settings=PipelineSettings()))
    assert isinstance(keyless, NullOpenAIChat)
    assert (keyless.reason, keyless.model_name) == ("no OPENAI_API_KEY", MODEL)
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    assert isinstance(resource_client(OpenAIResource(settings=PipelineSettings())), NullOpenAIChat)

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("LANGCHAIN_MODEL", "gpt-4o")
    resource = OpenAIResource(settings=PipelineSettings(), base_url="http://127.0.0.1:9/v1", max_retries=0)
    client = resource_client(resource)
    assert isinstance(client, OpenAIChat) and client.model_name == "gpt-4o"
    model = client.chat_model()
    assert (model.model_name, model.openai_api_base, model.max_retries) == ("gpt-4o", "http://127.0.0.1:9/v1", 0)
    assert model.use_responses_api is False
    assert API_KEY not in repr(resource) and API_KEY not in repr(client) and API_KEY not in repr(model)


def test_corpus_hash_ignores_whitespace_but_not_content_or_model() -> None:
    corpus = logistics_corpus()
    assert corpus_hash(corpus, MODEL) == corpus_hash("\n" + corpus.replace(" ", "  ") + " ", MODEL)
    assert corpus_hash(corpus, MODEL) != corpus_hash(corpus, "gpt-4o")
    assert corpus_hash(corpus, MODEL) != corpus_hash(logistics_corpus(employees=121), MODEL)


def test_a_model_whose_replies_cannot_be_bounded_is_refused() -> None:
    with pytest.raises(TypeError, match="max_tokens"):
        bounded(FakeListChatModel(responses=["{}"]), 1_000)


# --- the schema ------------------------------------------------------------------------------

def test_profile_clips_long_fields_instead_of_rejecting_them() -> None:
    profile = CompanyProfile.model_validate({
        "about": "word " * 200,
        "products_services": [f"Service {n}" for n in range(15)] + ["service 1"],
        "industry": "  ",
    })
    assert profile.about is not None and len(profile.about) <= MAX_ABOUT_CHARS
    assert profile.products_services == [f"Service {n}" for n in range(MAX_PRODUCTS)]
    assert profile.industry is None
    with pytest.raises(ValueError):
        CompanyProfile.model_validate({"employees_estimate": -1})


# --- deterministic profile -------------------------------------------------------------------

@pytest.mark.parametrize(("employees", "bucket"), [
    (None, "unknown"), (0, "<1M"), (4, "<1M"), (5, "1M-10M"), (49, "1M-10M"), (50, "10M-50M"),
    (249, "10M-50M"), (250, "50M-250M"), (1_249, "50M-250M"), (1_250, ">250M"),
])
def test_revenue_bucket_follows_headcount(employees: int | None, bucket: str) -> None:
    assert revenue_bucket_for_employees(employees) == bucket


JSONLD_HOME = """<html><head><title>Pearl Apps | Home</title>
<meta name="description" content="Pearl Apps builds booking software for clinics in Singapore.">
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Organization",
 "name": "Pearl Apps", "numberOfEmployees": {"@type": "QuantitativeValue", "value": 45},
 "address": {"@type": "PostalAddress", "streetAddress": "71 Ayer Rajah Crescent",
             "addressCountry": "Singapore", "postalCode": "139951"}}</script></head>
<body><main><p>Pearl Apps builds booking software for clinics. Our clients include 40 medical groups.</p></main></body>
</html>"""


def test_deterministic_profile_reads_json_ld_employees_and_address() -> None:
    signals = merge_site_signals([page_signals("https://pearlapps.sg/", JSONLD_HOME, {}, "pearlapps.sg")])
    company = {"name": "Pearl Apps Pte. Ltd.", "ssic_description": "DEVELOPMENT OF SOFTWARE AND APPLICATIONS "
                                                                   "(EXCEPT GAMES AND CYBERSECURITY)"}

    profile = deterministic_profile(signals, company)

    assert (profile.employees_estimate, profile.employees_estimate_confidence) == (45, 0.6)
    assert (profile.revenue_bucket, profile.revenue_bucket_confidence) == ("1M-10M", 0.3)
    assert profile.hq == "71 Ayer Rajah Crescent, 139951, Singapore"
    assert (profile.industry, profile.industry_confidence) == ("Development of software and applications", 0.6)
    assert profile.about == "Pearl Apps builds booking software for clinics in Singapore."
    assert profile.business_model == "B2B"


def test_deterministic_profile_without_signals_uses_only_the_registry() -> None:
    company = {"ssic_description": "IT CONSULTANCY N.E.C.", "street_name": "ROBINSON ROAD", "block": "10",
               "postal_code": "068897"}

    profile = deterministic_profile(None, company)

    assert profile == CompanyProfile(
        industry="IT consultancy", industry_confidence=0.5,
        hq="10 ROBINSON ROAD, Singapore 068897", hq_confidence=0.5,
    )
    assert profile.revenue_bucket == "unknown" and profile.revenue_bucket_confidence == 0.0


def site(corpus: str = "", *, pricing: bool = False, case_studies: bool = False, tech: tuple[TechHit, ...] = (),
         pages: tuple[PageSummary, ...] = (), description: str | None = None) -> SiteSignals:
    return SiteSignals(pages=pages, meta=PageMeta(None, description, "en"), tech=tech, has_pricing=pricing,
                       has_case_studies=case_studies, corpus=corpus)


SHOPIFY = TechHit("Shopify", "e-commerce", "script src: cdn.shopify.com")


@pytest.mark.parametrize(("signals", "model", "confidence"), [
    pytest.param(site("Plans for enterprise teams and growing businesses.", pricing=True, case_studies=True),
                 "B2B", 0.6, id="pricing-enterprise-case-studies"),
    pytest.param(site("We serve corporate clients across Asia."), "B2B", 0.4, id="client-wording"),
    pytest.param(site("Pricing for everyone.", pricing=True), "unknown", 0.0, id="pricing-alone"),
    pytest.param(site("Shop now and add to cart.", tech=(SHOPIFY,)), "B2C", 0.5, id="shop-on-shopify"),
    pytest.param(site("Our clients love our online shop.", case_studies=True, tech=(SHOPIFY,)), "unknown", 0.0,
                 id="evidence-both-ways"),
    pytest.param(site(""), "unknown", 0.0, id="nothing"),
])
def test_deterministic_business_model_follows_the_evidence(signals: SiteSignals, model: str,
                                                            confidence: float) -> None:
    profile = deterministic_profile(signals, {})
    assert (profile.business_model, profile.business_model_confidence) == (model, pytest.approx(confidence))


def test_deterministic_products_about_and_keyword_industry() -> None:
    pages = (PageSummary("https://acme.sg/", "home", "Acme", 900),
             PageSummary("https://acme.sg/services", "products", "Our Services | Acme", 400),
             PageSummary("https://acme.sg/services/fit-out", "products", "Office Fit-Out | Acme", 300),
             PageSummary("https://acme.sg/services/repairs", "products", "Building Repairs - Acme", 300))
    corpus = ("### home: Acme\nURL: https://acme.sg/\nWelcome! Acme is a renovation contractor for offices. "
              "We handle construction permits too. Call us today for a quote.")

    profile = deterministic_profile(site(corpus, pages=pages), {})

    assert profile.products_services == ["Office Fit-Out", "Building Repairs"]
    assert profile.products_services_confidence == 0.4
    assert profile.about == "Acme is a renovation contractor for offices. We handle construction permits too."
    assert (profile.industry, profile.industry_confidence) == ("construction", 0.35)
    assert profile.hq is None and profile.hq_confidence == 0.0
