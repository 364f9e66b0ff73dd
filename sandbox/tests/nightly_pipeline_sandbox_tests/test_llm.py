from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from enum import Enum
from typing import Literal

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai.lib._pydantic import (
    to_strict_json_schema,  # the schema ChatOpenAI sends for json_schema
)
from pydantic import BaseModel, Field

from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.llm import OpenAIServer
from nightly_pipeline_sandbox.llm_answers import SchemaFiller, read_evidence
from nightly_pipeline_sandbox.llm_tokens import count_chat_prompt, count_tokens

PAGE = """Company: Harbourline Logistics Pte. Ltd.
Website text:
# Harbourline Logistics
Harbourline Logistics Pte. Ltd. is a logistics company with 120 employees serving businesses across Southeast Asia.
We move freight for manufacturers and distributors from our Changi hub.
## Our Services
- Freight forwarding
- Warehousing
- Customs clearance
Address: 10 Changi South Lane, Singapore 486162
"""
SYSTEM = "You are an analyst. Extract the company profile from the page text. Industries: e.g. software, retail."


class Headquarters(BaseModel):
    street: str | None = None
    postal_code: str | None = Field(None, description="Six-digit Singapore postal code")


class CompanyProfile(BaseModel):
    """Firmographics extracted from a company website."""

    industry: str = Field(description="Main industry in one or two words")
    employees: int | None = Field(None, ge=0, description="Number of employees")
    revenue_bucket: Literal["<1M", "1M-10M", "10M-50M", ">50M"]
    business_model: Literal["B2B", "B2C", "both", "unknown"]
    hq: Headquarters
    products: list[str] = Field(default_factory=list, max_length=5)
    about: str = Field(description="One or two sentences about the company")
    confidence: float = Field(ge=0, le=1)


def chat(server: OpenAIServer, api_key: str = "sk-test") -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=server.url + "/v1", api_key=api_key, max_retries=0,
                      use_responses_api=False)


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    with serving(OpenAIServer()) as server:
        yield server


def assert_reflects_page(profile: CompanyProfile) -> None:
    assert "logistics" in profile.industry.lower()
    assert profile.employees == 120
    assert profile.revenue_bucket == "10M-50M"
    assert profile.business_model == "B2B"
    assert profile.hq.postal_code == "486162"
    assert profile.hq.street and "Changi South Lane" in profile.hq.street
    assert profile.products == ["Freight forwarding", "Warehousing", "Customs clearance"]
    assert profile.about.startswith("Harbourline Logistics Pte. Ltd. is a logistics company")
    assert profile.confidence > 0.8


def test_json_schema_structured_output_reflects_the_page_and_reports_usage(llm_server: OpenAIServer) -> None:
    structured = chat(llm_server).with_structured_output(CompanyProfile, include_raw=True)
    result = structured.invoke([("system", SYSTEM), ("user", PAGE)])
    assert result["parsing_error"] is None
    assert_reflects_page(result["parsed"])

    usage = result["raw"].usage_metadata
    stats = llm_server.stats()
    assert usage["input_tokens"] == stats["prompt_tokens_by_key"]["sk-test"] > 0
    assert usage["output_tokens"] == stats["completion_tokens_by_key"]["sk-test"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_token_details"]["cache_read"] == 0
    assert stats["calls_by_mode"] == {"json_schema": 1}
    assert stats["tokens_by_mode"] == {"json_schema": usage["total_tokens"]}


def test_function_calling_structured_output(llm_server: OpenAIServer) -> None:
    structured = chat(llm_server).with_structured_output(CompanyProfile, method="function_calling",
                                                         include_raw=True)
    result = structured.invoke([("system", SYSTEM), ("user", PAGE)])
    assert result["parsing_error"] is None
    assert_reflects_page(result["parsed"])
    assert result["raw"].response_metadata["finish_reason"] == "tool_calls"
    assert llm_server.stats()["calls_by_mode"] == {"tool_call": 1}


def test_structured_output_without_evidence_still_validates(llm_server: OpenAIServer) -> None:
    structured = chat(llm_server).with_structured_output(CompanyProfile)
    profile = structured.invoke([("user", "Nothing to see here.")])
    assert profile.employees is None
    assert profile.business_model == "unknown"
    assert profile.products == []
    assert profile.confidence < 0.5


def test_plain_chat_restates_the_scoring_reasons(llm_server: OpenAIServer) -> None:
    reply = chat(llm_server).invoke([
        ("system", "Write a one-sentence rationale from the reasons only."),
        ("user", "Reasons:\n- industry_match: software (+0.30)\n- live_company (+0.10)\n- no_website (-0.20)")])
    assert reply.content == ("The lead scores on industry match (software, +0.3) and live company (+0.1), "
                             "held back by no website (-0.2).")
    assert reply.response_metadata["finish_reason"] == "stop"


def test_missing_or_wrong_key_is_401() -> None:
    with serving(OpenAIServer(api_keys={"sk-test"})) as server:
        with pytest.raises(openai.AuthenticationError):
            chat(server, api_key="sk-wrong").invoke("hello")
        response = httpx.post(server.url + "/v1/chat/completions",
                              json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 401
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert server.stats()["unauthorized"] == 2


def test_tokens_per_minute_limit_answers_an_openai_style_429() -> None:
    with serving(OpenAIServer(model_tokens_per_minute=60)) as server:
        llm = chat(server)
        llm.invoke("Say hello to the team.")
        with pytest.raises(openai.RateLimitError) as raised:
            llm.invoke("Write a long welcome message for the whole logistics team at Harbourline " * 3)
        assert raised.value.body["code"] == "rate_limit_exceeded"
        assert "tokens per min (TPM): Limit 60" in raised.value.body["message"]
        assert server.stats()["rate_limited"] == 1


def test_max_tokens_truncates_with_finish_reason_length(llm_server: OpenAIServer) -> None:
    response = httpx.post(llm_server.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-test"},
                          json={"model": "gpt-4o-mini", "max_tokens": 5,
                                "messages": [{"role": "user", "content": PAGE}]})
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 5
    assert set(body) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_prompt_tokens_follow_openai_message_overheads() -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PAGE, "name": "crawler"}]
    expected = (3 + sum(3 + count_tokens(m["role"]) + count_tokens(m["content"]) for m in messages)
                + 1 + count_tokens("crawler"))
    assert count_chat_prompt(messages) == expected
    assert count_tokens("") == 0 and count_tokens("hello world") == 2
    prose = ("The company builds warehouse software for freight forwarders and sells it to medium-sized "
             "businesses in Singapore, Malaysia and Indonesia through a small direct sales team.")
    assert 3.0 <= len(prose) / count_tokens(prose) <= 5.5


class Tier(str, Enum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class Contact(BaseModel):
    name: str
    email: str | None = None


class Signals(BaseModel):
    has_careers_page: bool
    is_b2b: bool
    founded: int | None = Field(None, ge=1900, le=2100)


class Everything(BaseModel):
    company_name: str
    size: Tier
    headcount_band: Literal["1-10", "11-50", "51-200", "201-500", "500+"]
    score: float = Field(gt=0, lt=100)
    rating: int = Field(ge=1, le=5)
    tags: list[str] = Field(min_length=2, max_length=3)
    contacts: list[Contact] = Field(default_factory=list, max_length=2)
    signals: Signals
    last_seen: dt.date
    nested: list[list[int]] = Field(default_factory=list)
    industry_confidence: float = Field(ge=0, le=1)
    industry: str | None = None


@pytest.mark.parametrize("text", ["", PAGE + "\nWe are hiring: see our careers page. Founded in 2009.\n"
                                           "Contact sales@harbourline.com.sg or ops@harbourline.com.sg."])
def test_schema_filler_output_validates_against_the_pydantic_model(text: str) -> None:
    for schema in (Everything.model_json_schema(), to_strict_json_schema(Everything)):
        value = SchemaFiller(read_evidence(text), schema).fill()
        parsed = Everything.model_validate_json(json.dumps(value))
        if text:
            assert parsed.company_name == "Harbourline Logistics Pte. Ltd."
            assert parsed.headcount_band == "51-200" and parsed.size == Tier.MEDIUM
            assert parsed.signals.has_careers_page and parsed.signals.is_b2b and parsed.signals.founded == 2009
            assert parsed.industry == "logistics" and parsed.industry_confidence > 0.9
        else:
            assert parsed.industry is None and parsed.industry_confidence < 0.5
