"""Rationales through the real ChatOpenAI client against the OpenAI sandbox: written from the reasons
only, cached by features hash, within the daily token budget, a template when the model cannot be used."""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import openai
import psycopg
import pytest
from langchain_openai import ChatOpenAI
from psycopg.rows import dict_row
from pydantic import SecretStr

from nightly_pipeline.db import Database
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db.budget import VendorBudget
from nightly_pipeline.domain.scoring import Score, build_features, score
from nightly_pipeline.enrich.rationale import (
    Rationale,
    RationaleWriter,
    build_messages,
    template_rationale,
)
from nightly_pipeline.sandbox.llm import OpenAIServer
from nightly_pipeline_tests.sandbox.vendors_harness import serving
from nightly_pipeline_tests.scoring.scoring_testkit import (
    INFO,
    SOFTWARE_ICP,
    company_row,
    crawl_row,
    create_run,
    profile,
    register_tenant,
)

pytestmark = pytest.mark.database

MODEL = "gpt-4o-mini"
API_KEY = "sk-test-rationale-0001"
CAP = 50_000


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with serving(OpenAIServer(api_keys={API_KEY})) as server:
        yield server


@pytest.fixture
def budget(db: Database) -> VendorBudget:
    tenant = register_tenant(db)
    return VendorBudget(db, tenant, create_run(db, tenant, [], dt.date(2026, 6, 1)))


def nimbus_score(tenant_id: int) -> Score:
    features = build_features(company_row(employees_estimate=None), SOFTWARE_ICP,
                              crawl_row(profile_data=profile(employees_estimate=None)), [INFO], {})
    return score(features, tenant_id=tenant_id)


def write(server: OpenAIServer | None, db: Database, budget: VendorBudget, items: list[tuple[str, Score]], *,
          cap: int = CAP, api_key: str = API_KEY) -> list[Rationale]:
    """Write every rationale concurrently on one event loop, as the scoring asset does."""
    async def main() -> list[Rationale]:
        model = None if server is None else ChatOpenAI(
            model=MODEL, api_key=SecretStr(api_key), base_url=f"{server.url}/v1", max_retries=0, timeout=10,
            use_responses_api=False, http_async_client=openai.DefaultAsyncHttpxClient(timeout=10))
        try:
            writer = RationaleWriter(model, MODEL, db, budget, cap)
            return await asyncio.gather(*(writer.write(name, result) for name, result in items))
        finally:
            if model is not None:
                await model.root_async_client.close()

    return asyncio.run(main())


def usage_rows(admin: psycopg.Connection) -> list[dict[str, Any]]:
    return admin.cursor(row_factory=dict_row).execute(
        "SELECT endpoint, units_reserved, units_charged, status FROM vendor_usage ORDER BY usage_id").fetchall()


def billed_tokens(server: OpenAIServer) -> int:
    stats = server.stats()
    return stats["prompt_tokens"] + stats["completion_tokens"]


def test_the_prompt_carries_the_reasons_and_nothing_else_about_the_company(budget: VendorBudget) -> None:
    result = nimbus_score(budget.tenant_id)
    system, human = build_messages("Nimbus Apps", result)
    lines = str(human.content).splitlines()
    # The model reads each reason as the same phrase the template uses, with its effect.
    reasons = [line for line in lines if line.startswith("- ")]
    assert reasons == [f"- {r['text']} ({r['contribution']:+.2f})" for r in result.reasons]
    assert lines[:2] == ["Company: Nimbus Apps", f"Score: {result.value:.2f} of 1 (High)"]
    assert "Reasons that raised the score, strongest first:" in lines
    assert "Reasons that held it back, strongest first:" in lines
    # Signals that are not among the reasons never reach the model.
    assert "Stripe" not in str(human.content) and "payroll" not in str(human.content)
    assert "only the reasons given" in str(system.content)


def test_the_model_writes_the_rationale_from_the_reasons_and_the_tokens_are_settled(
        db: Database, budget: VendorBudget, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(budget.tenant_id)
    [rationale] = write(openai_server, db, budget, [("Nimbus Apps", result)])

    assert rationale.source == "llm" and rationale.rejected == ()
    # The sandbox restates the strongest positive and negative reasons it was given, in their words.
    assert rationale.text.startswith("The lead scores on industry code 62011, one of the ICP's codes")
    assert "held back by only a shared mailbox such as info@, not verified yet" in rationale.text
    assert rationale.tokens_used == billed_tokens(openai_server) > 0
    [row] = usage_rows(admin)
    assert row["status"] == "ok" and row["units_charged"] == rationale.tokens_used
    assert row["units_reserved"] >= rationale.tokens_used
    with db.tenant(budget.tenant_id) as conn:
        assert scores_db.get_rationale(conn, budget.tenant_id, result.features_hash) == rationale.text


def test_an_unchanged_company_gets_the_cached_rationale_without_spending_tokens(
        db: Database, budget: VendorBudget, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(budget.tenant_id)
    [first] = write(openai_server, db, budget, [("Nimbus Apps", result)])
    stats_after_first = openai_server.stats()

    [again] = write(openai_server, db, budget, [("Nimbus Apps", nimbus_score(budget.tenant_id))])

    assert again == Rationale(first.text, "cache", 0)
    assert openai_server.stats() == stats_after_first
    assert len(usage_rows(admin)) == 1


def test_without_a_key_the_rationale_is_a_template_sentence_from_the_reasons(
        db: Database, budget: VendorBudget, admin: psycopg.Connection) -> None:
    result = nimbus_score(budget.tenant_id)
    [rationale] = write(None, db, budget, [("Nimbus Apps", result)])

    assert rationale == Rationale(template_rationale("Nimbus Apps", result), "template", 0)
    assert rationale.text.startswith(f"Nimbus Apps is a High lead ({result.value:.2f}) on the strength of "
                                     "industry code 62011, one of the ICP's codes")
    assert ". It is held back by only a shared mailbox such as info@, not verified yet; " in rationale.text
    assert usage_rows(admin) == []
    with db.tenant(budget.tenant_id) as conn:
        assert scores_db.get_rationale(conn, budget.tenant_id, result.features_hash) is None


def test_an_exhausted_budget_gives_the_template_without_calling_the_model(
        db: Database, budget: VendorBudget, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(budget.tenant_id)
    [rationale] = write(openai_server, db, budget, [("Nimbus Apps", result)], cap=50)

    assert rationale.source == "template" and rationale.tokens_used == 0
    assert openai_server.stats()["calls"] == 0 and openai_server.stats()["requests"] == 0
    assert usage_rows(admin) == []


def test_the_cap_holds_for_concurrent_rationales_and_the_rest_get_templates(
        db: Database, budget: VendorBudget, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    items = [(f"Nimbus Apps {n}", score(build_features(company_row(n), SOFTWARE_ICP, crawl_row(), [INFO], {}),
                                        tenant_id=budget.tenant_id)) for n in range(1, 7)]
    writer = RationaleWriter(None, MODEL, db, budget, CAP)
    per_call = max(writer.reservation_tokens(name, result) for name, result in items)
    written = write(openai_server, db, budget, items, cap=per_call * 3)

    assert sorted(r.source for r in written) == ["llm"] * 3 + ["template"] * 3
    assert openai_server.stats()["calls"] == 3
    assert sum(row["units_reserved"] for row in usage_rows(admin)) <= per_call * 3


def test_a_failing_model_gives_the_template_and_settles_nothing_spent(
        db: Database, budget: VendorBudget, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(budget.tenant_id)
    [rationale] = write(openai_server, db, budget, [("Nimbus Apps", result)], api_key="sk-wrong-key-0000")

    assert rationale.source == "template"
    assert openai_server.stats()["unauthorized"] == 1
    [row] = usage_rows(admin)
    assert (row["status"], row["units_charged"]) == ("error", 0)
    with db.tenant(budget.tenant_id) as conn:
        assert scores_db.get_rationale(conn, budget.tenant_id, result.features_hash) is None


def test_a_model_rationale_stating_facts_missing_from_the_reasons_is_replaced_by_the_template(
        db: Database, budget: VendorBudget, admin: psycopg.Connection) -> None:
    result = nimbus_score(budget.tenant_id)
    with serving(OpenAIServer(api_keys={API_KEY}, unfaithful_rationales=True)) as careless:
        [rationale] = write(careless, db, budget, [("Nimbus Apps", result)])
        assert careless.stats()["calls"] == 1

    assert rationale.source == "template"
    assert rationale.text == template_rationale("Nimbus Apps", result)
    assert {"number 250", "technology Salesforce", "claim 'funding'"} <= set(rationale.rejected)
    # The call was paid for, and the unfaithful text is not cached for another night.
    [row] = usage_rows(admin)
    assert row["status"] == "ok" and row["units_charged"] == rationale.tokens_used > 0
    with db.tenant(budget.tenant_id) as conn:
        assert scores_db.get_rationale(conn, budget.tenant_id, result.features_hash) is None
