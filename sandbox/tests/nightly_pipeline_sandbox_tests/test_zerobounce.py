from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from nightly_pipeline_sandbox.harness import FakeClock, serving
from nightly_pipeline_sandbox.people import people_for
from nightly_pipeline_sandbox.zerobounce import BAD_KEY_OR_NO_CREDITS, ZeroBounceServer

RESULT_FIELDS = {"address", "status", "sub_status", "account", "domain", "did_you_mean", "domain_age_days",
                 "free_email", "mx_found", "mx_record", "smtp_provider", "firstname", "lastname", "gender",
                 "country", "region", "city", "zipcode", "processed_at"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(5_000.0)


@pytest.fixture
def zerobounce(clock: FakeClock) -> Iterator[ZeroBounceServer]:
    with serving(ZeroBounceServer(api_keys={"zb-key"}, clock=clock)) as server:
        yield server


@pytest.fixture
def client(zerobounce: ZeroBounceServer) -> Iterator[httpx.Client]:
    # The product points both ZEROBOUNCE_BASE_URL and ZEROBOUNCE_BULK_BASE_URL here.
    with httpx.Client(base_url=zerobounce.url + "/v2") as http:
        yield http


def validate(client: httpx.Client, email: str, api_key: str = "zb-key") -> dict:
    response = client.get("/validate", params={"api_key": api_key, "email": email, "ip_address": ""})
    assert response.status_code == 200
    return response.json()


def credits(client: httpx.Client, api_key: str = "zb-key") -> str:
    return client.get("/getcredits", params={"api_key": api_key}).json()["Credits"]


def batch(client: httpx.Client, emails: list[str], api_key: str = "zb-key") -> httpx.Response:
    return client.post("/validatebatch", json={
        "api_key": api_key, "email_batch": [{"email_address": e, "ip_address": None} for e in emails]})


def test_validate_returns_the_full_field_set(client: httpx.Client) -> None:
    result = validate(client, "valid.jane.tan@pearlapps.com.sg")
    assert set(result) == RESULT_FIELDS
    assert result["status"] == "valid" and result["sub_status"] == ""
    assert result["account"] == "valid.jane.tan" and result["domain"] == "pearlapps.com.sg"
    assert isinstance(result["domain_age_days"], str) and result["domain_age_days"].isdigit()
    assert result["mx_found"] == "true" and result["free_email"] is False
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}", result["processed_at"])


@pytest.mark.parametrize(("email", "status", "sub_status"), [
    ("valid.x@pearlapps.com.sg", "valid", ""),
    ("invalid.x@pearlapps.com.sg", "invalid", None),
    ("catchall.x@pearlapps.com.sg", "catch-all", ""),
    ("someone@catchall-example.com.sg", "catch-all", ""),
    ("unknown.x@pearlapps.com.sg", "unknown", None),
    ("spamtrap.x@pearlapps.com.sg", "spamtrap", ""),
    ("abuse.x@pearlapps.com.sg", "abuse", ""),
    ("donotmail.x@pearlapps.com.sg", "do_not_mail", None),
    ("info@pearlapps.com.sg", "do_not_mail", "role_based"),
    ("sales@catchall-example.com.sg", "do_not_mail", "role_based_catch_all"),
    ("not-an-address", "invalid", "failed_syntax_check"),
    ("jane@gmial.com", "invalid", "possible_typo"),
])
def test_status_is_forced_by_the_address(client: httpx.Client, email: str, status: str, sub_status: str | None) -> None:
    result = validate(client, email)
    assert result["status"] == status
    if sub_status is not None:
        assert result["sub_status"] == sub_status


def test_statuses_are_deterministic_and_follow_a_realistic_mix(zerobounce: ZeroBounceServer,
                                                              client: httpx.Client) -> None:
    addresses = [p.email for i in range(300) for p in people_for(f"company{i}.com.sg", f"Company {i}")]
    first = [zerobounce.verdict(a) for a in addresses]
    assert first == [ZeroBounceServer(api_keys={"zb-key"}).verdict(a) for a in addresses]
    sample = addresses[0]
    assert validate(client, sample)["status"] == validate(client, sample)["status"] == first[0].status
    shares = Counter(v.status for v in first)
    total = len(addresses)
    assert 0.60 <= shares["valid"] / total <= 0.80
    assert 0.05 <= shares["invalid"] / total <= 0.15
    assert 0.04 <= shares["catch-all"] / total <= 0.18
    assert 0.03 <= shares["unknown"] / total <= 0.10
    assert shares["spamtrap"] + shares["abuse"] + shares["do_not_mail"] > 0


def test_unknown_results_are_not_charged(client: httpx.Client, zerobounce: ZeroBounceServer) -> None:
    assert credits(client) == "100000"
    validate(client, "unknown.someone@pearlapps.com.sg")
    assert credits(client) == "100000"
    validate(client, "valid.someone@pearlapps.com.sg")
    assert credits(client) == "99999"
    stats = zerobounce.stats()
    assert stats["credits_used"] == 1 and stats["addresses_validated"] == 2
    assert stats["calls_by_endpoint"] == {"getcredits": 3, "validate": 2}


def test_bad_key_is_http_200_with_an_error_body(client: httpx.Client) -> None:
    assert validate(client, "valid.x@pearlapps.com.sg", api_key="wrong") == {"error": BAD_KEY_OR_NO_CREDITS}
    response = batch(client, ["valid.x@pearlapps.com.sg"], api_key="wrong")
    assert response.status_code == 200 and response.json() == {"error": BAD_KEY_OR_NO_CREDITS}
    assert credits(client, api_key="wrong") == "-1"


def test_batch_validates_each_address_and_charges_all_but_unknown(client: httpx.Client) -> None:
    response = batch(client, ["valid.a@pearlapps.com.sg", "unknown.b@pearlapps.com.sg", "invalid.c@x.com.sg"])
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] == []
    assert [r["status"] for r in body["email_batch"]] == ["valid", "unknown", "invalid"]
    assert all(set(r) == RESULT_FIELDS for r in body["email_batch"])
    assert credits(client) == "99998"


def test_batches_over_the_size_limit_are_rejected_uncharged(client: httpx.Client) -> None:
    response = batch(client, [f"valid.{i}@pearlapps.com.sg" for i in range(201)])
    assert response.status_code == 200
    assert "200" in response.json()["error"]
    assert credits(client) == "100000"


def test_sixth_batch_call_in_a_minute_is_refused_and_the_block_holds(
        client: httpx.Client, zerobounce: ZeroBounceServer, clock: FakeClock) -> None:
    for _ in range(5):
        assert batch(client, ["valid.a@pearlapps.com.sg"]).status_code == 200
        clock.now += 1
    refused = batch(client, ["valid.a@pearlapps.com.sg"])
    assert refused.status_code == 429
    assert "5 calls per minute" in refused.json()["error"]

    clock.now += 58  # without the block, most of the first five calls would have left the window by now
    still_blocked = batch(client, ["valid.a@pearlapps.com.sg"])
    assert still_blocked.status_code == 429 and "blocked" in still_blocked.json()["error"]
    clock.now += 3600 - 58 + 1  # the block lasts an hour from the refused call
    assert batch(client, ["valid.a@pearlapps.com.sg"]).status_code == 200

    stats = zerobounce.stats()
    assert stats["batch_refusals"] == 2
    assert stats["max_batch_calls_in_60s"] == 6
    assert stats["credits_used"] == 6


def test_a_key_over_the_batch_limit_stays_blocked_for_an_hour_and_other_keys_do_not(
        clock: FakeClock) -> None:
    with serving(ZeroBounceServer(api_keys={"zb-key", "zb-other"}, clock=clock)) as server, \
            httpx.Client(base_url=server.url + "/v2") as http:
        for _ in range(5):
            assert batch(http, ["valid.a@pearlapps.com.sg"]).status_code == 200
        assert batch(http, ["valid.a@pearlapps.com.sg"]).status_code == 429
        clock.now += 59 * 60
        late = batch(http, ["valid.a@pearlapps.com.sg"])
        assert late.status_code == 429 and "blocked" in late.json()["error"]
        assert batch(http, ["valid.a@pearlapps.com.sg"], api_key="zb-other").status_code == 200
        clock.now += 61
        assert batch(http, ["valid.a@pearlapps.com.sg"]).status_code == 200


def test_running_out_of_credits_turns_into_the_error_body(clock: FakeClock) -> None:
    with serving(ZeroBounceServer(credits=2, clock=clock)) as server, \
            httpx.Client(base_url=server.url + "/v2") as http:
        body = batch(http, ["valid.a@x.com.sg", "valid.b@x.com.sg", "valid.c@x.com.sg"], api_key="any").json()
        assert [r["address"] for r in body["email_batch"]] == ["valid.a@x.com.sg", "valid.b@x.com.sg"]
        assert body["errors"] == [{"error": BAD_KEY_OR_NO_CREDITS, "email_address": "valid.c@x.com.sg"}]
        assert validate(http, "valid.d@x.com.sg", api_key="any") == {"error": BAD_KEY_OR_NO_CREDITS}
        assert credits(http, api_key="any") == "0"


def test_api_usage_counts_statuses(client: httpx.Client) -> None:
    validate(client, "valid.a@pearlapps.com.sg")
    validate(client, "info@pearlapps.com.sg")
    usage = client.get("/getapiusage", params={"api_key": "zb-key", "start_date": "2025-01-01",
                                               "end_date": "2025-01-31"}).json()
    assert usage["total"] == 2 and usage["status_valid"] == 1 and usage["status_do_not_mail"] == 1
    assert usage["sub_status_role_based"] == 1
    assert usage["start_date"] == "1/1/2025"
    missing_dates = client.get("/getapiusage", params={"api_key": "zb-key"}).json()
    assert "error" in missing_dates
