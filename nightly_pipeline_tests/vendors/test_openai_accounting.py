"""OpenAI usage accounting, shared by extraction and rationales: one token estimate for reservations,
one rule for what a failed call cost."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import math
import re
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from nightly_pipeline.db import Database, rate_limits
from nightly_pipeline.db.acra import CompanyRow
from nightly_pipeline_sandbox.base import FaultConfig, SandboxServer
from nightly_pipeline_sandbox.llm import OpenAIServer
from nightly_pipeline_sandbox.llm_tokens import count_tokens
from nightly_pipeline.scoring.rationale import RationaleWriter
from nightly_pipeline.scoring.rationale import build_messages as rationale_messages
from nightly_pipeline.scoring.score import build_features, score
from nightly_pipeline.stages.extraction import SCHEMA_JSON, Extractor, build_messages
from nightly_pipeline.stages.extraction_profile import CompanyProfile
from nightly_pipeline.vendors import openai as openai_vendor
from nightly_pipeline.vendors.openai import (
    OpenAIChat,
    estimate_prompt_tokens,
    estimate_tokens,
    tokens_billed_for,
)
from nightly_pipeline_tests.kit.night import new_night
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_tests.kit.scoring import INFO, SOFTWARE_ICP, company_row, crawl_row
from nightly_pipeline_tests.kit.tenants import register_tenant

API_KEY = "sk-accounting-0001"
COMPANY = CompanyRow(
    company_id=1, uen="201912345K", name="Harbourline Logistics Pte. Ltd.",
    legal_name="HARBOURLINE LOGISTICS PTE. LTD.", entity_type=None, entity_status="Live Company", is_live=True,
    ssic_code="52291", ssic_description="FREIGHT TRANSPORT ARRANGEMENT", incorporation_date=None,
    incorporation_year=2019, postal_code="486162", street_name="CHANGI SOUTH LANE", website_domain=None,
    website_source=None, website_confidence=None)
CORPUS = ("### home: Harbourline Logistics\nURL: https://harbourline.sg/\nHarbourline Logistics moves freight for "
          "manufacturers across Southeast Asia from its Changi hub: forwarding, warehousing, customs clearance.\n"
          "Call +65 6123 4567 or +65 8765 4321, fax 6543-2109; UEN 201912345K; 10 Changi South Lane 486162.\n"
          "### about: 关于我们\n港航物流成立于2019年，员工120人。 சிங்கப்பூர் சரக்கு சேவைகள்.")


def rationale_score() -> Any:
    return score(build_features(company_row(), SOFTWARE_ICP, crawl_row(), [INFO], {}), tenant_id=1)


# -- the estimate -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    pytest.param(CORPUS, id="prose-digits-cjk-tamil"),
    pytest.param(SCHEMA_JSON, id="json-schema"),
    pytest.param(str(rationale_messages("Nimbus Apps 1", rationale_score())[1].content), id="json-lines"),
    pytest.param("+65 6123 4567, +65 6123 4568, 2019-06-01, S$1,250,000.00", id="numbers"),
])
def test_the_estimate_never_counts_fewer_tokens_than_the_sandbox_tokenizer(text: str) -> None:
    assert estimate_tokens(text) >= count_tokens(text)


def test_the_estimate_stays_near_four_characters_a_token_for_english() -> None:
    prose = "We move freight for manufacturers and distributors across Southeast Asia from our hub. " * 20
    assert len(prose) / 4.5 <= estimate_tokens(prose) <= len(prose) / 3


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with serving(OpenAIServer(api_keys={API_KEY})) as server:
        yield server


def chat(server_url: str, **options: Any) -> OpenAIChat:
    return OpenAIChat(API_KEY, base_url=f"{server_url}/v1", max_retries=0, **{"timeout_s": 10, **options})


def test_a_reservation_covers_the_prompt_openai_bills_for_extraction_and_rationales(
        openai_server: OpenAIServer) -> None:
    client = chat(openai_server.url)
    extraction = build_messages(COMPANY, CORPUS)
    rationale = rationale_messages("Nimbus Apps 1", rationale_score())

    async def prompts() -> list[int]:
        async with client:
            await client.structured(extraction, CompanyProfile, max_output_tokens=1_000)
            first = openai_server.stats()["prompt_tokens"]
            await client.complete(rationale, max_output_tokens=120)
            return [first, openai_server.stats()["prompt_tokens"] - first]

    billed_extraction, billed_rationale = asyncio.run(prompts())
    assert estimate_prompt_tokens(extraction, SCHEMA_JSON) >= billed_extraction > 0
    assert estimate_prompt_tokens(rationale) >= billed_rationale > 0


# -- the billing rule ---------------------------------------------------------------------------------------
def failure_of(server_url: str, **options: Any) -> Exception:
    client = chat(server_url, **options)

    async def call() -> None:
        async with client:
            await client.complete(rationale_messages("Nimbus Apps 1", rationale_score()), max_output_tokens=50)

    with pytest.raises(Exception) as raised:
        asyncio.run(call())
    return raised.value


class SilentServer(SandboxServer):
    """Takes every chat completion and answers only when released: the client gives up first."""

    name = "openai-silent"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._hold)

    async def _hold(self, request: web.Request) -> web.Response:
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return web.json_response({"error": {"message": "released"}}, status=503)


@contextlib.contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    with serving(server):
        try:
            yield server
        finally:
            server.release.set()


def test_a_refused_call_costs_nothing() -> None:
    with serving(OpenAIServer(api_keys={API_KEY}, faults=FaultConfig(rate_5xx=1.0))) as failing:
        refused = failure_of(failing.url)
    assert isinstance(refused, openai.APIStatusError) and tokens_billed_for(refused, 900) == 0
    with serving(OpenAIServer(api_keys={"sk-someone-else"})) as server:
        unauthorized = failure_of(server.url)
    assert isinstance(unauthorized, openai.AuthenticationError) and tokens_billed_for(unauthorized, 900) == 0


def test_a_call_that_never_reached_openai_costs_nothing() -> None:
    with serving(OpenAIServer(api_keys={API_KEY})) as server:
        stopped_url = server.url
    unreachable = failure_of(stopped_url)
    assert isinstance(unreachable, openai.APIConnectionError) and not isinstance(unreachable, openai.APITimeoutError)
    assert tokens_billed_for(unreachable, 900) == 0


def test_a_call_that_timed_out_costs_its_whole_reservation() -> None:
    with silent_server() as server:
        timed_out = failure_of(server.url, timeout_s=0.3)
    assert isinstance(timed_out, openai.APITimeoutError) and tokens_billed_for(timed_out, 900) == 900


def test_an_unusable_reply_costs_what_openai_reported_and_an_unknown_error_the_reservation() -> None:
    @dataclasses.dataclass
    class Usage:
        total_tokens: int

    @dataclasses.dataclass
    class Completion:
        usage: Usage

    cut_short = openai.LengthFinishReasonError(completion=Completion(Usage(321)))  # type: ignore[arg-type]
    assert tokens_billed_for(cut_short, 900) == 321
    assert tokens_billed_for(ValueError("the model wrapper failed"), 900) == 900


@pytest.mark.database
@pytest.mark.parametrize("writer", ["extraction", "rationale"])
def test_extraction_and_rationales_settle_a_failed_call_by_the_same_rule(db: Database, writer: str) -> None:
    night = new_night(db, register_tenant(db), run_date=dt.date(2026, 6, 1), OPENAI_DAILY_TOKENS_CAP="50000")
    with silent_server() as server:
        client = chat(server.url, timeout_s=0.3)

        async def write() -> Any:
            async with client:
                if writer == "extraction":
                    return await Extractor(client, night).extract(COMPANY, CORPUS, None)
                return await RationaleWriter(client, night).write("Nimbus Apps 1", rationale_score())

        result = asyncio.run(write())
    assert result.source in ("deterministic", "template")
    with night.transaction() as conn:
        [row] = conn.execute("SELECT units_reserved, units_charged, status FROM vendor_usage").fetchall()
    assert (row["units_charged"], row["status"]) == (row["units_reserved"], "error")


def _estimate_char_by_char(text: str) -> int:
    """The estimate's rule spelled out one character at a time (what estimate_tokens must equal)."""
    digit_groups = sum(math.ceil(len(run) / 3) for run in re.findall(r"[0-9]+", text))
    letters = singles = 0
    for char in text:
        if char in "0123456789":
            continue
        if not char.isascii() or not (char.isalnum() or char.isspace()):
            singles += 1
        else:
            letters += 1
    return math.ceil(letters / 4) + digit_groups + singles


@pytest.mark.parametrize("text", [
    "".join(chr(code) for code in range(128)),
    "Call +65 6123 4567 or 98765432; 12 staff since 2009.\t\n\r\x0b\x0c\x1c\x1f",
    "新加坡 Pte. Ltd. — café ½ ٣٤٥ \u00a0\u2003\x85 emoji 🚚 {\"k\": [1, 22, 333, 4444]}",
    "",
])
def test_the_estimate_counts_every_character_as_its_rule_says(text: str) -> None:
    assert estimate_tokens(text) == _estimate_char_by_char(text)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_the_estimate_matches_its_rule_for_any_text(text: str) -> None:
    assert estimate_tokens(text) == _estimate_char_by_char(text)


@pytest.mark.database
def test_every_attempt_the_sdk_retries_takes_its_own_turn_of_the_key(db: Database) -> None:
    # The SDK retries a 429 itself; each attempt is a request, and its tokens, against the key's limits.
    night = new_night(db, register_tenant(db), run_date=dt.date(2026, 6, 1))
    messages = rationale_messages("Nimbus Apps 1", rationale_score())
    with serving(OpenAIServer(api_keys={API_KEY}, faults=FaultConfig(rate_429=1.0, retry_after_s=0))) as throttled:
        client = OpenAIChat(API_KEY, base_url=f"{throttled.url}/v1", max_retries=2, timeout_s=10)
        night.share_limits("openai", client)

        async def call() -> None:
            async with client:
                await client.complete(messages, max_output_tokens=50)

        with pytest.raises(openai.RateLimitError):
            asyncio.run(call())
        attempts = len(throttled.request_log)
    weight = estimate_prompt_tokens(messages, None) + 50
    with db.shared() as conn:
        requests = rate_limits.busiest_window(conn, client.key_fingerprint, openai_vendor.REQUESTS_BUCKET, 3600)
        tokens = rate_limits.busiest_window(conn, client.key_fingerprint, openai_vendor.TOKENS_BUCKET, 3600)
    assert attempts == 3 and (requests, tokens) == (3, 3 * weight)
