"""A company whose result cannot be stored fails alone: the others are stored, it is an error."""
import asyncio
import types

from nightly_pipeline.stages.crawl import CrawlStage


def test_a_result_the_store_refuses_is_that_companys_error_and_the_others_go_on() -> None:
    companies = [types.SimpleNamespace(company_id=n) for n in (1, 2, 3)]
    stage = CrawlStage.__new__(CrawlStage)

    async def enrich(company):
        return company.company_id

    stage.enrich = enrich
    stored, errors = [], []

    async def on_done(result: int) -> None:
        if result == 2:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        stored.append(result)

    async def on_error(company, error: Exception) -> None:
        errors.append((company.company_id, type(error).__name__))

    asyncio.run(stage.enrich_many(companies, on_done=on_done, on_error=on_error))
    assert sorted(stored) == [1, 3]
    assert errors == [(2, "ValueError")]
