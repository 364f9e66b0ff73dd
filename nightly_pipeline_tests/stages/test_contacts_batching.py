"""Lusha lookups batched across companies, counted at the Lusha sandbox with the real httpx client and
PostgreSQL: a search per chunk of domains (and per page), an enrich call per search request, the same
contacts per company as a lookup company by company, the cap spent fairly, and a lost request costing
only its own companies."""
from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.domain.contacts import fair_order
from nightly_pipeline.stages import contacts as contacts_stage
from nightly_pipeline.stages.contacts import DOMAINS_PER_SEARCH, hit_owner, name_key, name_variants, rank_hits
from nightly_pipeline.vendors.lusha import MAX_ENRICH_IDS, MAX_PAGE_SIZE, LushaClient, SearchHit
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.lusha import LushaServer
from nightly_pipeline_sandbox.people import people_for
from nightly_pipeline_tests.stages.test_contacts import (  # noqa: F401 (tenant is a fixture)
    ENRICH,
    KEY,
    SEARCH,
    add_companies,
    ledger,
    new_night,
    run_stage,
    stored_contacts,
    tenant,
)

pytestmark = pytest.mark.database

# Titles only some of the sandbox's companies have, so that some companies need the search without them.
TITLES = ["Managing Director", "Head of Sales"]


@contextlib.contextmanager
def lusha(**options: Any) -> Iterator[LushaServer]:
    with serving(LushaServer(api_keys={KEY}, **{"unknown_domain_rate": 0.0, **options})) as server:
        yield server


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def matches(company: dict[str, Any], titles: Sequence[str]) -> int:
    """How many of the sandbox's people at the company a search with ``titles`` finds."""
    people = people_for(company["website_domain"], company["name"])
    return sum(1 for p in people if not titles or any(t.lower() in p.title.lower() for t in titles))


def pages(hits: int) -> int:
    return max(1, math.ceil(hits / MAX_PAGE_SIZE))


def expected_searches(companies: Sequence[dict[str, Any]], titles: Sequence[str]) -> int:
    """Search requests for ``companies`` (one lookup each, all known to Lusha): every page of one search
    per chunk under the titles, then every page of one search per chunk of those nobody matched."""
    chunks = [companies[i:i + DOMAINS_PER_SEARCH] for i in range(0, len(companies), DOMAINS_PER_SEARCH)]
    requests = sum(pages(sum(matches(c, titles) for c in chunk)) for chunk in chunks)
    unmatched = [c for c in companies if matches(c, titles) == 0]
    chunks = [unmatched[i:i + DOMAINS_PER_SEARCH] for i in range(0, len(unmatched), DOMAINS_PER_SEARCH)]
    return requests + sum(pages(sum(matches(c, []) for c in chunk)) for chunk in chunks)


def one_by_one(server: LushaServer, companies: Sequence[dict[str, Any]], titles: Sequence[str],
               limit: int = 3) -> dict[int, list[str]]:
    """The contacts a lookup company by company chooses (one search by the company's domain and names,
    then one without the titles when nobody matched), best first."""
    async def run() -> dict[int, list[str]]:
        chosen = {}
        async with LushaClient(KEY, base_url=server.url) as client:
            for company in companies:
                domain, names = company["website_domain"], name_variants(company)
                chosen[company["company_id"]] = []
                for search_titles in (titles, []):
                    result = await client.search_contacts(domain, names, search_titles)
                    best = rank_hits(result.hits, domain=domain, names=names, preferred_titles=titles, limit=limit)
                    if best:
                        chosen[company["company_id"]] = [hit.contact_id for hit in best]
                        break
        return chosen
    return asyncio.run(run())


def lusha_ids(db: Database, tenant: int) -> dict[int, list[str]]:
    """The Lusha contact ids stored per company."""
    found: dict[int, list[str]] = defaultdict(list)
    for row in stored_contacts(db, tenant):
        if "lusha" in row["source"]:
            found[row["company_id"]].append(row["vendor_ref"]["lusha"]["contact_id"])
    return found


def test_a_night_takes_one_search_per_chunk_and_page_and_one_enrich_per_search_request(
        db: Database, tenant: int) -> None:
    companies = add_companies(db, 60)  # chunks of 25, 25 and 10
    with lusha() as server:
        report = run_stage(server, companies, new_night(db, tenant), preferred_titles=TITLES)
        stats = server.stats()
    calls = stats["calls_by_endpoint"]

    assert calls[SEARCH] == report.lusha_searches == expected_searches(companies, TITLES)
    assert calls[SEARCH] < 60 // 5, "a search serves many companies"
    request_ids = {row["vendor_ref"]["lusha"]["request_id"] for row in stored_contacts(db, tenant)
                   if row["source"] == "lusha"}
    # A search request's ids go together (they are at most a page, fewer than MAX_ENRICH_IDS).
    assert calls[ENRICH] == report.lusha_enrich_calls == len(request_ids)
    assert calls[ENRICH] >= math.ceil(stats["contacts_enriched"] / MAX_ENRICH_IDS)
    assert calls[ENRICH] <= calls[SEARCH]
    assert report.lusha_contacts_enriched == stats["contacts_enriched"] == stats["credits_total"]
    assert len(lusha_ids(db, tenant)) == 60 and report.degradations == []
    usage = [row for row in ledger(db, tenant) if row["endpoint"] == ENRICH]
    assert len(usage) == calls[ENRICH] and sum(r["units_charged"] for r in usage) == stats["contacts_enriched"]


@pytest.mark.parametrize("titles", [TITLES, ["CEO", "Founder", "Managing Director", "CTO", "Head of Sales"]])
def test_each_company_gets_the_contacts_a_lookup_of_it_alone_would_choose(
        db: Database, tenant: int, titles: list[str]) -> None:
    companies = add_companies(db, 70)
    # Two companies on one site: looked up once, both get its people.
    twin = dict(companies[1], company_id=companies[-1]["company_id"])
    companies[-1] = twin
    with lusha(unknown_domain_rate=0.1) as server:
        report = run_stage(server, companies, new_night(db, tenant), preferred_titles=titles)
    with lusha(unknown_domain_rate=0.1) as reference:
        expected = one_by_one(reference, companies, titles)

    found = lusha_ids(db, tenant)
    assert {company_id: sorted(ids) for company_id, ids in found.items()} == {
        company_id: sorted(ids) for company_id, ids in expected.items() if ids}
    assert any(not ids for ids in expected.values()), "some domains are unknown to Lusha"
    assert found[twin["company_id"]] == found[companies[1]["company_id"]]
    assert report.lusha_contacts_enriched == len({cid for ids in expected.values() for cid in ids})


def test_the_cap_is_spent_exactly_and_fairly_best_candidate_of_each_company_first(db: Database, tenant: int) -> None:
    companies = add_companies(db, 60)
    with lusha() as reference:
        ranked = one_by_one(reference, companies, TITLES)
    night = new_night(db, tenant)
    with lusha() as server:
        report = run_stage(server, companies, night, preferred_titles=TITLES, max_lookups=75)
        stats = server.stats()

    spent_in_order = fair_order([ranked[c["company_id"]] for c in companies])[:75]
    expected: dict[int, list[str]] = defaultdict(list)
    owner = {cid: company_id for company_id, ids in ranked.items() for cid in ids}
    for cid in spent_in_order:
        expected[owner[cid]].append(cid)
    assert {k: sorted(v) for k, v in lusha_ids(db, tenant).items()} == {k: sorted(v) for k, v in expected.items()}
    assert len(expected) == 60, "every company has its best candidate before any has a second"
    assert report.lusha_contacts_enriched == stats["contacts_enriched"] == 75
    assert report.cap_reached and report.companies_skipped_for_cap == 0
    usage = night.budget.usage()["lusha"]
    assert usage["charged"] == usage["reserved"] == 75


def test_a_cap_smaller_than_the_night_serves_the_first_companies_and_searches_no_further(
        db: Database, tenant: int) -> None:
    companies = add_companies(db, 60)
    night = new_night(db, tenant)
    with lusha() as server:
        report = run_stage(server, companies, night, preferred_titles=TITLES, max_lookups=20)
        stats = server.stats()

    found = lusha_ids(db, tenant)
    assert [c["company_id"] for c in companies if c["company_id"] in found] == [
        c["company_id"] for c in companies[:20]]
    assert all(len(ids) == 1 for ids in found.values())
    assert stats["calls_by_endpoint"][SEARCH] == expected_searches(companies[:DOMAINS_PER_SEARCH], TITLES), \
        "the first chunk has more companies than the cap can serve: later chunks are not searched"
    assert stats["contacts_enriched"] == 20 and night.budget.usage()["lusha"]["charged"] == 20
    assert report.cap_reached and report.companies_skipped_for_cap == 40
    assert [d for d in report.degradations if "cap reached (20 contacts" in d and "40 companies" in d]


def test_a_search_lost_to_an_outage_leaves_only_its_chunk_for_the_next_run(db: Database, tenant: int) -> None:
    companies = add_companies(db, 60)
    second_chunk = companies[DOMAINS_PER_SEARCH:2 * DOMAINS_PER_SEARCH]
    with lusha(search_outage_domains={second_chunk[3]["website_domain"]}) as server:
        report = run_stage(server, companies, new_night(db, tenant), preferred_titles=TITLES,
                           client_options={"sleep": no_sleep})
        refused = [r for r in server.request_log if r.status == 503]

    assert refused and all(r.path == SEARCH for r in refused)
    served = set(lusha_ids(db, tenant))
    assert served == {c["company_id"] for c in companies} - {c["company_id"] for c in second_chunk}
    [failed] = [d for d in report.degradations if d.startswith("Lusha lookup failed")]
    assert failed.startswith(f"Lusha lookup failed for {DOMAINS_PER_SEARCH} companies") and "503" in failed
    assert not [d for d in report.degradations if "stopped" in d]

    with lusha() as server:
        retry = run_stage(server, companies, new_night(db, tenant), preferred_titles=TITLES)
        calls = server.stats()["calls_by_endpoint"]
    assert retry.lusha_cache_hits == 60 - DOMAINS_PER_SEARCH and retry.degradations == []
    assert calls[SEARCH] == expected_searches(second_chunk, TITLES)
    assert set(lusha_ids(db, tenant)) == {c["company_id"] for c in companies}


def test_an_enrich_call_lost_to_an_outage_costs_only_its_companies_and_nothing_is_paid_twice(
        db: Database, tenant: int) -> None:
    companies = add_companies(db, 60)
    victim = companies[40]
    night = new_night(db, tenant)
    with lusha(enrich_outage_domains={victim["website_domain"]}) as server:
        report = run_stage(server, companies, night, preferred_titles=TITLES)
        first = server.stats()

    paid_first = {cid for ids in lusha_ids(db, tenant).values() for cid in ids}
    lost = {c["company_id"] for c in companies} - set(lusha_ids(db, tenant))
    [failed] = [d for d in report.degradations if d.startswith("Lusha lookup failed")]
    degraded = int(re.match(r"Lusha lookup failed for (\d+) companies", failed).group(1))
    assert victim["company_id"] in lost and "503" in failed
    # A company whose candidates came on two search pages keeps the contacts of its other call.
    assert len(lost) <= degraded < 60
    assert first["calls_by_endpoint"][ENRICH] == report.lusha_enrich_calls >= 2, "the other enrich calls went"
    assert night.budget.usage()["lusha"]["charged"] == first["contacts_enriched"] == len(paid_first), \
        "the lost call cost nothing"

    with lusha() as server:
        retry = run_stage(server, companies, new_night(db, tenant), preferred_titles=TITLES)
    assert retry.lusha_cache_hits == 60 - degraded and retry.degradations == []
    final = lusha_ids(db, tenant)
    assert set(final) == {c["company_id"] for c in companies}
    assert len(paid_first) + retry.lusha_contacts_enriched == len({cid for ids in final.values() for cid in ids}), \
        "no contact is paid for twice"


def hit(contact_id: str, *, fqdn: str | None, company_name: str | None = None) -> SearchHit:
    return SearchHit(contact_id, None, "CEO", company_name, fqdn, True)


def test_a_hit_goes_to_the_company_of_its_domain_or_else_of_its_unique_name() -> None:
    by_domain = {"acme.com.sg": "acme", "beta.sg": "beta", "twin-a.sg": "twin a", "twin-b.sg": "twin b"}
    by_name = {name_key("Acme Pte. Ltd."): ["acme"], name_key("Beta"): ["beta"],
               name_key("Twin Holdings"): ["twin a", "twin b"]}
    assert hit_owner(hit("1", fqdn="www.beta.sg", company_name="Acme"), by_domain, by_name) == "beta"
    assert hit_owner(hit("2", fqdn="elsewhere.com"), by_domain, by_name) is None
    assert hit_owner(hit("3", fqdn=None, company_name="ACME PTE LTD"), by_domain, by_name) == "acme"
    assert hit_owner(hit("4", fqdn=None, company_name="Twin Holdings"), by_domain, by_name) is None, \
        "a name two companies of the search share names neither"
    assert hit_owner(hit("5", fqdn=None, company_name=None), by_domain, by_name) is None


def test_a_chunk_reads_no_more_pages_than_its_companies_searched_alone_would_and_misses_none(
        db: Database, tenant: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two hits a company: a page of 50 covers a few companies, and the chunk's budget is one page.
    monkeypatch.setattr(contacts_stage, "HITS_PER_COMPANY", 2)
    companies = add_companies(db, DOMAINS_PER_SEARCH)
    with lusha() as server:
        report = run_stage(server, companies, new_night(db, tenant), preferred_titles=[])
        calls = server.stats()["calls_by_endpoint"]

    assert 1 < calls[SEARCH] < DOMAINS_PER_SEARCH
    assert report.degradations == [] and set(lusha_ids(db, tenant)) == {c["company_id"] for c in companies}
