"""Rationales through the real ChatOpenAI client against the OpenAI sandbox: written from the reasons
only, cached by features hash, within the daily token budget, a template when the model cannot be used."""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from nightly_pipeline.db import Database
from nightly_pipeline.db import scores as scores_db
from nightly_pipeline_sandbox.llm import OpenAIServer
from nightly_pipeline.scoring.rationale import (
    Rationale,
    RationaleWriter,
    build_messages,
    template_rationale,
)
from nightly_pipeline.scoring.score import Score, build_features, score
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.vendors.openai import NullOpenAIChat, OpenAIChat
from nightly_pipeline_tests.kit.night import new_night
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_tests.kit.scoring import INFO, SOFTWARE_ICP, company_row, crawl_row, profile
from nightly_pipeline_tests.kit.tenants import register_tenant

pytestmark = pytest.mark.database

MODEL = "gpt-4o-mini"
API_KEY = "sk-test-rationale-0001"
CAP = 50_000


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with serving(OpenAIServer(api_keys={API_KEY})) as server:
        yield server


@pytest.fixture
def tenant(db: Database) -> int:
    return register_tenant(db)


def night_with_cap(db: Database, tenant: int, cap: int) -> TenantNight:
    """A fresh night of ``tenant`` whose OpenAI tokens are capped at ``cap`` a day."""
    with db.tenant(tenant) as conn:
        nights = conn.execute("SELECT count(*) AS n FROM enrichment_runs").fetchone()["n"]
    return new_night(db, tenant, run_date=dt.date(2026, 6, 1) + dt.timedelta(days=nights),
                     OPENAI_DAILY_TOKENS_CAP=str(cap))


def nimbus_score(tenant_id: int) -> Score:
    features = build_features(company_row(employees_estimate=None), SOFTWARE_ICP,
                              crawl_row(profile_data=profile(employees_estimate=None)), [INFO], {})
    return score(features, tenant_id=tenant_id)


def write(server: OpenAIServer | None, db: Database, tenant: int, items: list[tuple[str, Score]], *,
          cap: int = CAP, api_key: str = API_KEY) -> list[Rationale]:
    """Write every rationale concurrently on one event loop, as the scoring asset does."""
    night = night_with_cap(db, tenant, cap)
    chat = (NullOpenAIChat("no OPENAI_API_KEY", model=MODEL) if server is None else
            OpenAIChat(api_key, model=MODEL, base_url=f"{server.url}/v1", max_retries=0, timeout_s=10))

    async def main() -> list[Rationale]:
        async with chat:
            writer = RationaleWriter(chat, night)
            return await asyncio.gather(*(writer.write(name, result) for name, result in items))

    return asyncio.run(main())


def usage_rows(admin: psycopg.Connection) -> list[dict[str, Any]]:
    return admin.cursor(row_factory=dict_row).execute(
        "SELECT endpoint, units_reserved, units_charged, status FROM vendor_usage ORDER BY usage_id").fetchall()


def billed_tokens(server: OpenAIServer) -> int:
    stats = server.stats()
    return stats["prompt_tokens"] + stats["completion_tokens"]


def test_the_prompt_carries_the_reasons_and_nothing_else_about_the_company(tenant: int) -> None:
    result = nimbus_score(tenant)
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
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(tenant)
    [rationale] = write(openai_server, db, tenant, [("Nimbus Apps", result)])

    assert rationale.source == "llm" and rationale.rejected == ()
    # The sandbox restates the strongest positive and negative reasons it was given, in their words.
    assert rationale.text.startswith("The lead scores on industry code 62011, one of the ICP's codes")
    assert "held back by only a shared mailbox such as info@, not verified yet" in rationale.text
    assert rationale.tokens_used == billed_tokens(openai_server) > 0
    [row] = usage_rows(admin)
    assert row["status"] == "ok" and row["units_charged"] == rationale.tokens_used
    assert row["units_reserved"] >= rationale.tokens_used
    with db.tenant(tenant) as conn:
        assert scores_db.get_rationale(conn, result.features_hash) == rationale.text


def test_an_unchanged_company_gets_the_cached_rationale_without_spending_tokens(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(tenant)
    [first] = write(openai_server, db, tenant, [("Nimbus Apps", result)])
    stats_after_first = openai_server.stats()

    [again] = write(openai_server, db, tenant, [("Nimbus Apps", nimbus_score(tenant))])

    assert again == Rationale(first.text, "cache", 0)
    assert openai_server.stats() == stats_after_first
    assert len(usage_rows(admin)) == 1


def test_without_a_key_the_rationale_is_a_template_sentence_from_the_reasons(
        db: Database, tenant: int, admin: psycopg.Connection) -> None:
    result = nimbus_score(tenant)
    [rationale] = write(None, db, tenant, [("Nimbus Apps", result)])

    assert rationale == Rationale(template_rationale("Nimbus Apps", result), "template", 0)
    assert rationale.text.startswith(f"Nimbus Apps is a High lead ({result.value:.2f}) on the strength of "
                                     "industry code 62011, one of the ICP's codes")
    assert ". It is held back by only a shared mailbox such as info@, not verified yet; " in rationale.text
    assert usage_rows(admin) == []
    with db.tenant(tenant) as conn:
        assert scores_db.get_rationale(conn, result.features_hash) is None


def test_an_exhausted_budget_gives_the_template_without_calling_the_model(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(tenant)
    [rationale] = write(openai_server, db, tenant, [("Nimbus Apps", result)], cap=50)

    assert rationale.source == "template" and rationale.tokens_used == 0
    assert openai_server.stats()["calls"] == 0 and openai_server.stats()["requests"] == 0
    assert usage_rows(admin) == []


def test_the_cap_holds_for_concurrent_rationales_and_the_rest_get_templates(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    items = [(f"Nimbus Apps {n}", score(build_features(company_row(n), SOFTWARE_ICP, crawl_row(), [INFO], {}),
                                        tenant_id=tenant)) for n in range(1, 7)]
    writer = RationaleWriter(NullOpenAIChat("no OPENAI_API_KEY", model=MODEL), night_with_cap(db, tenant, CAP))
    per_call = max(writer.reservation_tokens(name, result) for name, result in items)
    written = write(openai_server, db, tenant, items, cap=per_call * 3)

    assert sorted(r.source for r in written) == ["llm"] * 3 + ["template"] * 3
    assert openai_server.stats()["calls"] == 3
    assert sum(row["units_reserved"] for row in usage_rows(admin)) <= per_call * 3


def test_a_failing_model_gives_the_template_and_settles_nothing_spent(
        db: Database, tenant: int, openai_server: OpenAIServer, admin: psycopg.Connection) -> None:
    result = nimbus_score(tenant)
    [rationale] = write(openai_server, db, tenant, [("Nimbus Apps", result)], api_key="sk-wrong-key-0000")

    assert rationale.source == "template"
    assert openai_server.stats()["unauthorized"] == 1
    [row] = usage_rows(admin)
    assert (row["status"], row["units_charged"]) == ("error", 0)
    with db.tenant(tenant) as conn:
        assert scores_db.get_rationale(conn, result.features_hash) is None


def test_a_model_rationale_stating_facts_missing_from_the_reasons_is_replaced_by_the_template(
        db: Database, tenant: int, admin: psycopg.Connection) -> None:
    result = nimbus_score(tenant)
    with serving(OpenAIServer(api_keys={API_KEY}, unfaithful_rationales=True)) as careless:
        [rationale] = write(careless, db, tenant, [("Nimbus Apps", result)])
        assert careless.stats()["calls"] == 1

    assert rationale.source == "template"
    assert rationale.text == template_rationale("Nimbus Apps", result)
    assert {"number 250", "technology Salesforce", "claim 'funding'"} <= set(rationale.rejected)
    # The call was paid for, and the unfaithful text is not cached for another night.
    [row] = usage_rows(admin)
    assert row["status"] == "rejected" and row["units_charged"] == rationale.tokens_used > 0
    with db.tenant(tenant) as conn:
        assert scores_db.get_rationale(conn, result.features_hash) is None
