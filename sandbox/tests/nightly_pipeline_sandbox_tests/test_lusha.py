from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from nightly_pipeline_sandbox.harness import FakeClock, serving
from nightly_pipeline_sandbox.lusha import LushaServer
from nightly_pipeline_sandbox.people import LEADER_ROLES, people_for

DOMAIN = "pearlapps.com.sg"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
def lusha(clock: FakeClock) -> Iterator[LushaServer]:
    with serving(LushaServer(unknown_domain_rate=0.0, clock=clock)) as server:
        yield server


@pytest.fixture
def client(lusha: LushaServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lusha.url, headers={"api_key": "k"}) as http:
        yield http


def search_body(*, domains: list[str] | None = None, titles: list[str] | None = None, size: int = 10,
                title_key: str = "jobTitles", domain_key: str = "domains") -> dict:
    contacts = {title_key: titles} if titles else {}
    return {"pages": {"page": 0, "size": size},
            "filters": {"contacts": {"include": contacts},
                        "companies": {"include": {domain_key: domains if domains is not None else [DOMAIN]}}}}


def search(client: httpx.Client, **kwargs) -> dict:
    response = client.post("/prospecting/contact/search", json=search_body(**kwargs))
    assert response.status_code == 200, response.text
    return response.json()


def test_people_are_deterministic_singapore_staff_of_the_domain() -> None:
    people = people_for(DOMAIN, "Pearl Apps Pte. Ltd.")
    assert people == people_for("https://www.PearlApps.com.sg/", "Pearl Apps Pte. Ltd.")
    assert people != people_for("otherco.com.sg", "Other Co Pte. Ltd.")
    assert 3 <= len(people) <= 12
    assert people[0].title in {role.title for role in LEADER_ROLES}
    assert len({p.email for p in people}) == len(people)
    for person in people:
        assert person.email.endswith("@" + DOMAIN)
        assert re.fullmatch(r"\+65 [89]\d{3} \d{4}", person.mobile)
        assert 1 <= person.seniority <= 6
        assert person.linkedin_url.startswith("https://www.linkedin.com/in/")


def test_people_counts_span_three_to_twelve_across_companies() -> None:
    counts = {len(people_for(f"company{i}.com.sg", f"Company {i}")) for i in range(200)}
    assert min(counts) == 3 and max(counts) == 12


def test_search_then_enrich_reveals_contacts_and_charges_each_enriched_contact(
        client: httpx.Client, lusha: LushaServer) -> None:
    found = search(client)
    assert found["totalResults"] == len(people_for(DOMAIN, "x")) == len(found["data"])
    first, second = found["data"][:2]
    assert first["isShown"] is False and first["fqdn"] == DOMAIN and first["hasWorkEmail"] is True
    assert lusha.stats()["credits_by_key"] == {"k": 0}, "search is free"

    enriched = client.post("/prospecting/contact/enrich",
                           json={"requestId": found["requestId"], "contactIds": [first["contactId"],
                                                                                  second["contactId"]]})
    assert enriched.status_code == 200, enriched.text
    contacts = enriched.json()["contacts"]
    assert [c["id"] for c in contacts] == [first["contactId"], second["contactId"]]
    assert all(c["isSuccess"] for c in contacts)
    data = contacts[0]["data"]
    assert data["fullName"] == first["name"] and data["jobTitle"] == first["jobTitle"]
    assert data["emailAddresses"][0]["email"].endswith("@" + DOMAIN)
    assert data["socialLinks"]["linkedin"].startswith("https://www.linkedin.com/in/")
    assert lusha.stats()["credits_by_key"] == {"k": 2}

    again = client.post("/prospecting/contact/enrich",
                        json={"requestId": found["requestId"], "contactIds": [first["contactId"]]})
    assert again.status_code == 200
    assert lusha.stats()["credits_by_key"] == {"k": 3}, "the vendor charges a re-enriched contact again"
    assert search(client)["data"][0]["isShown"] is True


def test_both_filter_spellings_and_case_insensitive_title_substrings(client: httpx.Client) -> None:
    leaders = ["founder", "CEO", "managing DIRECTOR"]
    canonical = search(client, titles=leaders)
    alternative = search(client, titles=leaders, title_key="titles", domain_key="companyDomains")
    assert canonical["data"], "every company has a CEO, founder or managing director"
    assert [c["contactId"] for c in canonical["data"]] == [c["contactId"] for c in alternative["data"]]
    assert all(any(t.lower() in c["jobTitle"].lower() for t in leaders) for c in canonical["data"])
    assert search(client, titles=["Chief Astronaut"])["data"] == []


def test_company_names_resolve_to_the_same_company_as_its_domain(client: httpx.Client) -> None:
    by_domain = search(client)
    body = search_body(domains=[DOMAIN])
    body["filters"]["companies"]["include"]["names"] = ["PEARL APPS PTE. LTD."]
    both = client.post("/prospecting/contact/search", json=body).json()
    assert [c["contactId"] for c in both["data"]] == [c["contactId"] for c in by_domain["data"]]
    assert {c["companyName"] for c in both["data"]} == {"PEARL APPS PTE. LTD."}


def test_domains_unknown_to_lusha_return_no_contacts(clock: FakeClock) -> None:
    with serving(LushaServer(unknown_domain_rate=1.0, clock=clock)) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        assert search(http)["data"] == []
    with serving(LushaServer(clock=clock)) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        assert search(http, domains=["gmail.com"])["totalResults"] == 0
        known = [search(http, domains=[f"firm{i}.com.sg"])["totalResults"] > 0 for i in range(200)]
        assert 0.8 <= sum(known) / len(known) <= 0.97, "about 10 % of domains are unknown by default"


def test_requests_without_a_valid_key_are_401(lusha: LushaServer) -> None:
    no_key = httpx.post(lusha.url + "/prospecting/contact/search", json=search_body())
    assert no_key.status_code == 401 and no_key.json()["statusCode"] == 401
    with serving(LushaServer(api_keys={"good"})) as strict:
        wrong = httpx.get(strict.url + "/v2/company", params={"domain": DOMAIN}, headers={"api_key": "bad"})
        assert wrong.status_code == 401
        assert strict.stats()["unauthorized"] == 1


def test_page_size_above_fifty_is_rejected(client: httpx.Client) -> None:
    response = client.post("/prospecting/contact/search", json=search_body(size=51))
    assert response.status_code == 400
    assert "pages.size" in response.json()["message"]


def test_enrich_rejects_more_than_100_ids_and_unknown_request_ids(client: httpx.Client, lusha: LushaServer) -> None:
    request_id = search(client)["requestId"]
    too_many = client.post("/prospecting/contact/enrich",
                           json={"requestId": request_id, "contactIds": [f"id-{i}" for i in range(101)]})
    assert too_many.status_code == 400 and too_many.json()["statusCode"] == 400
    unknown = client.post("/prospecting/contact/enrich",
                          json={"requestId": "00000000-0000-4000-8000-000000000000", "contactIds": ["x"]})
    assert unknown.status_code == 400
    assert "requestId" in unknown.json()["message"]
    assert lusha.stats()["credits_by_key"] == {"k": 0}


def test_ids_outside_the_search_fail_per_item_and_are_not_charged(client: httpx.Client, lusha: LushaServer) -> None:
    found = search(client, size=1)
    other_page_id = search(client)["data"][1]["contactId"]
    response = client.post("/prospecting/contact/enrich",
                           json={"requestId": found["requestId"],
                                 "contactIds": [found["data"][0]["contactId"], other_page_id]})
    assert response.status_code == 200
    assert [c["isSuccess"] for c in response.json()["contacts"]] == [True, False]
    assert lusha.stats()["credits_by_key"] == {"k": 1}


def test_reveal_flags_need_a_unified_credits_plan(client: httpx.Client) -> None:
    found = search(client)
    response = client.post("/prospecting/contact/enrich",
                           json={"requestId": found["requestId"], "contactIds": [found["data"][0]["contactId"]],
                                 "revealEmails": True})
    assert response.status_code == 403


def test_per_minute_limit_counts_down_then_refuses_with_429(clock: FakeClock) -> None:
    with serving(LushaServer(per_minute=3, clock=clock)) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        left = []
        for _ in range(3):
            response = http.get("/v2/company", params={"domain": "nowhere"})
            assert response.headers["x-rate-limit-minute"] == "3"
            left.append(int(response.headers["x-minute-requests-left"]))
        assert left == [2, 1, 0]
        refused = http.get("/v2/company", params={"domain": "nowhere"})
        assert refused.status_code == 429
        assert refused.json()["statusCode"] == 429
        assert re.search(r"Reset in \d+ seconds", refused.json()["message"])
        assert refused.headers["x-minute-requests-left"] == "0"
        assert refused.headers["x-minute-usage"] == "3"

        clock.now += 61  # the sliding window has emptied
        assert http.get("/v2/company", params={"domain": "nowhere"}).headers["x-minute-requests-left"] == "2"
        stats = server.stats()
        assert stats["rate_limited"] == 1
        assert stats["max_requests_in_60s"] == 4
        assert stats["calls_by_endpoint"] == {"/v2/company": 5}


def test_hourly_and_daily_limits_add_their_headers_and_refuse(clock: FakeClock) -> None:
    with serving(LushaServer(per_minute=100, per_hour=5, per_day=2, clock=clock)) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        first = http.get("/prospecting/filters/contacts/seniority")
        assert first.status_code == 200
        assert first.headers["x-rate-limit-hourly"] == "5" and first.headers["x-hourly-requests-left"] == "4"
        assert first.headers["x-rate-limit-daily"] == "2" and first.headers["x-daily-usage"] == "1"
        http.get("/prospecting/filters/contacts/seniority")
        refused = http.get("/prospecting/filters/contacts/seniority")
        assert refused.status_code == 429
        assert refused.json()["message"].startswith("Daily API quota limit exceeded")


def test_person_lookup_charges_only_when_found(client: httpx.Client, lusha: LushaServer) -> None:
    missing = client.get("/v2/person", params={"email": "nobody@" + DOMAIN})
    assert missing.status_code == 200
    contact = missing.json()["contact"]
    assert contact["error"] and contact["isCreditCharged"] is False and contact["data"] is None
    assert lusha.stats()["credits_by_key"] == {"k": 0}

    person = people_for(DOMAIN, "Pearl Apps Pte. Ltd.")[0]
    by_email = client.get("/v2/person", params={"email": person.email}).json()["contact"]
    assert by_email["isCreditCharged"] is True and by_email["error"] is None
    assert by_email["data"]["jobTitle"]["title"] == person.title
    by_name = client.get("/v2/person", params={"firstName": person.first_name, "lastName": person.last_name,
                                               "companyDomain": DOMAIN}).json()["contact"]
    assert by_name["data"]["emailAddresses"][0]["email"] == person.email
    by_linkedin = client.get("/v2/person", params={"linkedinUrl": person.linkedin_url + "/"}).json()["contact"]
    assert by_linkedin["data"]["fullName"] == person.full_name
    assert lusha.stats()["credits_by_key"] == {"k": 3}
    assert client.get("/v2/person").status_code == 400


def test_credit_limit_refuses_with_402(clock: FakeClock) -> None:
    with serving(LushaServer(credit_limit=2, unknown_domain_rate=0.0, clock=clock)) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        found = search(http)
        ids = [c["contactId"] for c in found["data"][:3]]
        refused = http.post("/prospecting/contact/enrich", json={"requestId": found["requestId"], "contactIds": ids})
        assert refused.status_code == 402 and refused.json()["statusCode"] == 402
        allowed = http.post("/prospecting/contact/enrich",
                            json={"requestId": found["requestId"], "contactIds": ids[:2]})
        assert allowed.status_code == 200
        assert server.stats()["credits_by_key"] == {"k": 2}
        assert server.stats()["payment_required"] == 1


def test_company_lookup_by_domain(client: httpx.Client) -> None:
    company = client.get("/v2/company", params={"domain": "https://www.pearlapps.com.sg"})
    assert company.status_code == 200
    data = company.json()["data"]
    assert data["domain"] == DOMAIN and data["location"]["country"] == "Singapore"
    assert client.get("/v2/company", params={"domain": "gmail.com"}).status_code == 404


def test_known_companies_supply_names_and_linkedin_lookups(clock: FakeClock) -> None:
    person = people_for(DOMAIN, "Pearl Apps Pte. Ltd.")[1]
    with serving(LushaServer(unknown_domain_rate=0.0, clock=clock)) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        unseen = http.get("/v2/person", params={"linkedinUrl": person.linkedin_url}).json()["contact"]
        assert unseen["data"] is None, "a LinkedIn URL alone does not say which company to look in"
    with serving(LushaServer(companies={DOMAIN: "Pearl Apps Pte. Ltd."}, unknown_domain_rate=0.0,
                             clock=clock)) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        found = http.get("/v2/person", params={"linkedinUrl": person.linkedin_url}).json()["contact"]
        assert found["data"]["emailAddresses"][0]["email"] == person.email
        assert found["data"]["company"]["name"] == "Pearl Apps Pte. Ltd."
        assert {c["companyName"] for c in search(http)["data"]} == {"Pearl Apps Pte. Ltd."}


def test_outages_refuse_only_the_searches_and_enrich_calls_of_their_domains(clock: FakeClock) -> None:
    other = "otherco.com.sg"
    with serving(LushaServer(unknown_domain_rate=0.0, clock=clock, search_outage_domains={other},
                             enrich_outage_domains={DOMAIN})) as server, \
            httpx.Client(base_url=server.url, headers={"api_key": "k"}) as http:
        refused = http.post("/prospecting/contact/search", json=search_body(domains=[DOMAIN, other]))
        assert refused.status_code == 503
        found = search(http, domains=[DOMAIN])
        ids = [item["contactId"] for item in found["data"][:2]]
        enriched = http.post("/prospecting/contact/enrich", json={"requestId": found["requestId"], "contactIds": ids})
        assert enriched.status_code == 503
        assert server.stats()["credits_total"] == 0
