"""The simulated world and the web proxy that serves it, exercised with httpx over real loopback sockets."""
from __future__ import annotations

import asyncio
import html
import re
import statistics
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import phonenumbers
import pytest
from protego import Protego
from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline_sandbox.base import FaultConfig, LatencyModel
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.web import (
    GZIP_BOMB_INFLATED_BYTES,
    HUGE_PAGE_BYTES,
    WebProxyServer,
)
from nightly_pipeline_sandbox.world import (
    HARD_CASES,
    REDIRECT_LOOP_PATHS,
    World,
    name_derived_slug,
    registrable_domain,
)
from nightly_pipeline_sandbox.world_pages import EMAIL_FORMS, PHONE_FORMS, TESTIMONIAL

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CF_HEX = re.compile(r'data-cfemail="([0-9a-f]+)"|/cdn-cgi/l/email-protection#([0-9a-f]+)')


@pytest.fixture(scope="module")
def world() -> World:
    return World.from_acra_csv()


@pytest.fixture(scope="module")
def proxy(world: World) -> Iterator[WebProxyServer]:
    with serving(WebProxyServer(world)) as server:
        yield server


@pytest.fixture
def client(proxy: WebProxyServer) -> Iterator[httpx.Client]:
    httpx.post(f"{proxy.url}/_sandbox/reset")
    with httpx.Client(proxy=proxy.url, timeout=10) as http:
        yield http


def ordinary_site(world: World):
    """A registry company's site with no hard case, a team page and personal emails."""
    return next(site for site in world.sites.values()
                if site.hard_case is None and site.uen in world.companies and site.personal_emails_shown)


def cf_decode(hexstr: str) -> str:
    key = int(hexstr[:2], 16)
    return "".join(chr(int(hexstr[i:i + 2], 16) ^ key) for i in range(2, len(hexstr), 2))


def emails_in(page_html: str) -> set[str]:
    """Every address a careful extractor recovers from raw HTML (platform-notes §4.7)."""
    text = html.unescape(page_html)
    found = set(EMAIL.findall(text))
    found |= {cf_decode(a or b) for a, b in CF_HEX.findall(page_html)}
    spelled = re.sub(r"\s*[\[(]at[\])]\s*", "@", text)
    found |= set(EMAIL.findall(re.sub(r"\s*[\[(]dot[\])]\s*", ".", spelled)))
    return found


# -- the world ---------------------------------------------------------------------------------------------
def test_the_same_seed_builds_the_same_world_and_another_seed_does_not(world: World) -> None:
    again = World.from_acra_csv(seed=7)
    assert again.sites == world.sites
    assert (again.hard_cases, again.lookalikes) == (world.hard_cases, world.lookalikes)
    other = World.from_acra_csv(seed=8)
    assert other.sites.keys() != world.sites.keys()


def test_every_hard_case_has_a_domain_of_its_own(world: World) -> None:
    assert set(world.hard_cases) == set(HARD_CASES)
    assert len(set(world.hard_cases.values())) == len(HARD_CASES)
    for case, domain in world.hard_cases.items():
        assert world.sites[domain].hard_case == case


def test_rows_with_a_website_keep_its_domain_and_about_30_percent_of_the_others_have_no_site(world: World) -> None:
    with_website = [row for row in world.companies.values() if row["website"].strip()]
    assert with_website
    for row in with_website:
        site = world.site_for_uen(row["uen"])
        assert site is not None and site.domain == registrable_domain(row["website"])
    others = [row for row in world.companies.values() if not row["website"].strip()]
    siteless = [row for row in others if world.site_for_uen(row["uen"]) is None]
    assert 0.2 <= len(siteless) / len(others) <= 0.4
    for row in others:
        site = world.site_for_uen(row["uen"])
        if site is not None:
            label, _, suffix = site.domain.partition(".")
            assert label == name_derived_slug(row["entity_name"]) and suffix in ("com.sg", "sg", "com")


@pytest.mark.parametrize(("entity_name", "slug"), [
    ("ACME ROBOTICS PTE. LTD.", "acme-robotics"), ("NEXUS IT SERVICES PRIVATE LIMITED", "nexus-it-services"),
    ("CORAL MANAGEMENT PTE LTD", "coral-management"), ("KATONG DATA", "katong-data"),
    ("BANYAN EATING HOUSE LLP", "banyan-eating-house"), ("HARBOUR CARGO LTD", "harbour-cargo"),
])
def test_name_derived_slug_drops_the_legal_suffix(entity_name: str, slug: str) -> None:
    assert name_derived_slug(entity_name) == slug


def test_lookalikes_are_other_companies_at_sibling_domains(world: World) -> None:
    assert len(world.lookalikes) >= 3
    for domain, resembled_uen in world.lookalikes.items():
        lookalike, original = world.sites[domain], world.companies[resembled_uen]
        assert lookalike.uen != resembled_uen and lookalike.uen not in world.companies
        assert lookalike.entity_name != original["entity_name"]
        assert name_derived_slug(original["entity_name"]).replace("-", "") in domain.replace("-", "")
        real = world.site_for_uen(resembled_uen)
        if real is not None:
            assert real.domain.split(".")[0] == domain.split(".")[0] and real.domain != domain
    assert any(world.site_for_uen(uen) is not None for uen in world.lookalikes.values())


def test_ground_truth_emails_are_exactly_what_each_page_holds(world: World) -> None:
    for site in world.sites.values():
        for path, page in site.pages.items():
            assert emails_in(page.html) == set(site.truth.emails_by_page.get(path, ())), (site.domain, path)


def test_every_contact_form_occurs_and_phones_are_valid_singapore_numbers(world: World) -> None:
    email_forms = {m.form for site in world.sites.values() for m in site.email_mentions}
    phone_forms = {m.form for site in world.sites.values() for m in site.phone_mentions}
    assert email_forms == set(EMAIL_FORMS) and phone_forms == set(PHONE_FORMS)
    for site in world.sites.values():
        for number in site.truth.phones:
            assert phonenumbers.is_valid_number(phonenumbers.parse(number, "SG")), number


def test_about_half_the_sites_print_personal_emails_and_the_rest_only_role_addresses(world: World) -> None:
    sites = list(world.sites.values())
    personal = [site for site in sites if site.truth.personal_emails_shown]
    assert 0.35 <= len(personal) / len(sites) <= 0.65
    for site in personal:
        assert {p.email for p in site.truth.people} <= site.truth.emails_by_page["/team"]
    for site in sites:
        if not site.truth.personal_emails_shown:
            assert not site.truth.emails & {p.email for p in site.truth.people}


def test_page_text_speaks_the_industry(world: World) -> None:
    software = [s for s in world.sites.values() if s.truth.industry == "software"]
    restaurants = [s for s in world.sites.values() if s.truth.industry == "food"]
    assert software and restaurants
    for site in software:
        text = LexborHTMLParser(site.pages["/"].html).body.text().lower()
        assert "saas" in text and "cloud" in text and "platform" in text
    for site in restaurants:
        assert "saas" not in site.pages["/"].html.lower()


def test_optional_pages_follow_the_truth(world: World) -> None:
    for site in world.sites.values():
        truth = site.truth
        assert ("/pricing" in site.pages) == truth.has_pricing
        assert ("/case-studies" in site.pages) == truth.has_case_studies
        assert ("/careers" in site.pages) == truth.has_careers
        if truth.has_careers:
            jobs = LexborHTMLParser(site.pages["/careers"].html).css("li.job")
            assert len(jobs) == len(truth.open_roles)
    assert any(site.truth.open_roles for site in world.sites.values())


# -- the proxy: ordinary pages -----------------------------------------------------------------------------
def test_a_page_fetched_through_the_proxy_carries_content_and_tech_hints(world: World, client: httpx.Client) -> None:
    site = ordinary_site(world)
    response = client.get(f"http://{site.domain}/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert f"UEN: {site.uen}" in response.text and '"@type": "Organization"' in response.text
    for name, value in site.tech.headers:
        assert value in response.headers.get_list(name)
    for script in site.tech.scripts:
        assert html.escape(script) in response.text
    assert client.get(f"http://www.{site.domain}/team").text == site.pages["/team"].html


def test_an_unknown_host_gets_a_502_naming_a_dns_failure(client: httpx.Client) -> None:
    response = client.get("http://no-such-company.com.sg/")
    assert response.status_code == 502
    assert "dns_error" in response.headers["proxy-status"]
    assert "could not resolve host: no-such-company.com.sg" in response.text


def test_assets_are_served_with_their_types(world: World, client: httpx.Client) -> None:
    site = ordinary_site(world)
    pdf = client.get(f"http://{site.domain}/assets/brochure.pdf")
    logo = client.get(f"http://{site.domain}/img/logo.png")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert logo.headers["content-type"] == "image/png" and logo.content.startswith(b"\x89PNG")
    assert client.get(f"http://{site.domain}/nothing-here").status_code == 404


def test_the_calendar_links_to_the_next_month_for_ever(world: World, client: httpx.Client) -> None:
    site = ordinary_site(world)
    url = f"http://{site.domain}/calendar?month=2025-11"
    months = []
    for _ in range(4):
        page = LexborHTMLParser(client.get(url).text)
        months.append(page.css_first("h1").text())
        following = next(a for a in page.css("a") if a.text() == "Next month")
        url = str(httpx.URL(url).join(following.attributes["href"]))
    assert months == ["Events in 2025-11", "Events in 2025-12", "Events in 2026-01", "Events in 2026-02"]


# -- the proxy: hard cases ---------------------------------------------------------------------------------
def test_robots_hard_cases(world: World, client: httpx.Client) -> None:
    def robots(case: str) -> httpx.Response:
        return client.get(f"http://{world.hard_cases[case]}/robots.txt")

    assert not Protego.parse(robots("robots_disallow_all").text).can_fetch("/about", "nightly-bot")
    only_team = Protego.parse(robots("robots_disallow_path").text)
    assert not only_team.can_fetch("/team", "nightly-bot") and only_team.can_fetch("/about", "nightly-bot")
    assert "/team" in world.sites[world.hard_cases["robots_disallow_path"]].pages
    assert robots("robots_404").status_code == 404
    assert robots("robots_500").status_code == 500
    assert Protego.parse(robots("crawl_delay").text).crawl_delay("nightly-bot") == 2


def test_a_hanging_page_times_the_client_out_while_other_requests_are_served(
        world: World, proxy: WebProxyServer, client: httpx.Client) -> None:
    hang_url = f"http://{world.hard_cases['hang']}/about"
    other = ordinary_site(world)

    def fetch_hanging() -> httpx.Response:
        with httpx.Client(proxy=proxy.url, timeout=httpx.Timeout(10, read=2.0)) as hanging_client:
            return hanging_client.get(hang_url)

    def wait_for_hanging(count: int) -> int:
        for _ in range(500):
            if proxy.stats()["hanging"] == count:
                break
            threading.Event().wait(0.02)
        return proxy.stats()["hanging"]

    with ThreadPoolExecutor(max_workers=1) as pool:
        hanging = pool.submit(fetch_hanging)
        assert wait_for_hanging(1) == 1
        assert client.get(other.url).status_code == 200
        assert proxy.stats()["hanging"] == 1
        with pytest.raises(httpx.ReadTimeout):
            hanging.result()
    assert wait_for_hanging(0) == 0     # the server lets go once the client has given up


def test_a_flaky_site_answers_503_with_retry_after_once_per_path(world: World, client: httpx.Client) -> None:
    domain = world.hard_cases["flaky_503"]
    first = client.get(f"http://{domain}/")
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    assert client.get(f"http://{domain}/").status_code == 200
    assert client.get(f"http://{domain}/about").status_code == 503
    assert client.get(f"http://{domain}/about").status_code == 200


def test_redirect_hard_cases(world: World, client: httpx.Client) -> None:
    loop_domain = world.hard_cases["redirect_loop"]
    first = client.get(f"http://{loop_domain}{REDIRECT_LOOP_PATHS[0]}")
    assert first.status_code == 302 and first.headers["location"] == REDIRECT_LOOP_PATHS[1]
    with pytest.raises(httpx.TooManyRedirects):
        client.get(f"http://{loop_domain}{REDIRECT_LOOP_PATHS[0]}", follow_redirects=True)

    offsite = world.sites[world.hard_cases["redirect_offsite"]]
    moved = client.get(offsite.url)
    assert moved.status_code == 301
    target = world.site_at(httpx.URL(moved.headers["location"]).host)
    assert target is not None and target.uen != offsite.uen
    landed = client.get(offsite.url, follow_redirects=True)
    assert f"UEN: {target.uen}" in landed.text


def test_the_30_mib_page_streams_in_full(world: World, client: httpx.Client) -> None:
    with client.stream("GET", f"http://{world.hard_cases['huge_page']}/about") as response:
        assert int(response.headers["content-length"]) == HUGE_PAGE_BYTES
        received, first, last = 0, b"", b""
        for chunk in response.iter_bytes():
            first = first or chunk
            received += len(chunk)
            last = chunk
    assert received == HUGE_PAGE_BYTES
    assert first.startswith(b"<!DOCTYPE html>") and last.endswith(b"</html>\n")


def test_the_gzip_bomb_is_a_small_transfer_that_inflates_hugely(world: World, client: httpx.Client) -> None:
    with client.stream("GET", f"http://{world.hard_cases['gzip_bomb']}/about") as response:
        assert response.headers["content-encoding"] == "gzip"
        raw = b"".join(response.iter_raw())
    assert len(raw) < 2 * 1024 * 1024
    # Inflate only a bounded prefix, as a careful crawler would.
    inflater = zlib.decompressobj(wbits=31)
    prefix = inflater.decompress(raw, 8 * 1024 * 1024)
    assert len(prefix) == 8 * 1024 * 1024 and prefix.strip() == b""
    assert int.from_bytes(raw[-4:], "little") == GZIP_BOMB_INFLATED_BYTES % 2**32


def test_a_pdf_is_served_where_html_is_expected(world: World, client: httpx.Client) -> None:
    response = client.get(f"http://{world.hard_cases['pdf_as_html']}/about")
    assert response.headers["content-type"] == "application/pdf" and response.content.startswith(b"%PDF-")


def test_the_javascript_only_site_serves_an_empty_shell(world: World, client: httpx.Client) -> None:
    site = world.sites[world.hard_cases["js_only"]]
    body = client.get(f"http://{site.domain}/contact").text
    assert '<div id="root"></div>' in body and "<script" in body
    assert site.uen not in body and not emails_in(body)
    assert site.truth.emails_by_page["/contact"]   # the content exists, only not in the served HTML


def test_the_cp1252_page_declares_no_charset(world: World, client: httpx.Client) -> None:
    response = client.get(f"http://{world.hard_cases['cp1252']}/")
    assert response.headers["content-type"] == "text/html"
    assert b"\x93Great service" in response.content and b"\x94" in response.content
    assert b"Ren\xe9e" in response.content and b"charset" not in response.content
    assert TESTIMONIAL in response.content.decode("cp1252")


def test_the_broken_html_site_is_broken_but_still_carries_its_facts(world: World, client: httpx.Client) -> None:
    site = world.sites[world.hard_cases["broken_html"]]
    body = client.get(f"http://{site.domain}/contact").text
    assert "</p>" not in body and body.count("<p") > 3
    assert body.count("</div>") > body.count("<div")
    first_close = body.index("</form>")
    assert body.count("<form", 0, first_close) >= 2
    assert site.uen in LexborHTMLParser(body).body.text()
    assert emails_in(body) == set(site.truth.emails_by_page["/contact"])


# -- latency, faults and the log ---------------------------------------------------------------------------
def test_latency_at_scale_1_centres_on_250_ms_and_is_applied_to_every_request(world: World) -> None:
    site = ordinary_site(world)
    with serving(WebProxyServer(world, seed=3, latency=LatencyModel(scale=1.0))) as server:
        async def burst() -> list[int]:
            async with httpx.AsyncClient(proxy=server.url, timeout=30) as http:
                responses = await asyncio.gather(*(http.get(f"{site.url}products/item-{n}") for n in range(1, 41)))
            return [r.status_code for r in responses]

        assert asyncio.run(burst()) == [200] * 40
        draws = server.latency_samples()
        assert len(draws) == 40 and 0.15 <= statistics.median(draws) <= 0.45
        assert max(draws) > min(draws) > 0

        with httpx.Client(proxy=server.url, timeout=30) as http:
            for _ in range(4):
                http.get(site.url)
        records, sequential_draws = server.request_log[-4:], server.latency_samples()[-4:]
        # Each request started after the previous response was logged, then waited its own draw.
        for previous, current, delay in zip(records, records[1:], sequential_draws[1:]):
            assert current.at - previous.at >= delay


def test_latency_scale_0_adds_no_delay(world: World, proxy: WebProxyServer, client: httpx.Client) -> None:
    for path in ("/", "/about", "/contact"):
        client.get(f"{ordinary_site(world).url}{path.lstrip('/')}")
    latency = httpx.get(f"{proxy.url}/_sandbox/stats").json()["latency"]
    assert latency["samples"] == 3 and latency["max_s"] == 0


def test_fault_knobs_inject_429_and_503_at_the_configured_rates(world: World) -> None:
    site = ordinary_site(world)
    with serving(WebProxyServer(world, seed=11, faults=FaultConfig(rate_429=0.25, rate_5xx=0.1))) as server:
        with httpx.Client(proxy=server.url, timeout=10) as http:
            responses = [http.get(site.url) for _ in range(200)]
    statuses = Counter(r.status_code for r in responses)
    assert 30 <= statuses[429] <= 70 and 8 <= statuses[503] <= 35
    assert statuses[200] == 200 - statuses[429] - statuses[503]
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 429)


def test_the_log_counts_requests_per_simulated_host(world: World, proxy: WebProxyServer,
                                                    client: httpx.Client) -> None:
    first, second = [site for site in world.sites.values() if site.hard_case is None][:2]
    for path in ("", "about", "calendar?month=2025-03"):
        client.get(first.url + path)
    client.get(second.url)
    client.get(f"http://www.{second.domain}/contact")
    stats = httpx.get(f"{proxy.url}/_sandbox/stats").json()
    assert stats["by_host"] == {first.domain: 3, second.domain: 1, f"www.{second.domain}": 1}
    log = httpx.get(f"{proxy.url}/_sandbox/log").json()
    assert [row["path"] for row in log if row["host"] == first.domain] == ["/", "/about", "/calendar?month=2025-03"]
    assert all(row["status"] == 200 and row["bytes"] > 0 for row in log)
