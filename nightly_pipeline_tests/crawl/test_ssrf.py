"""The SSRF guard: URL checks, address classes, resolve-once-and-pin, and refusals that send nothing."""
from __future__ import annotations

import asyncio
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest

from nightly_pipeline.crawl.fetcher import Fetcher
from nightly_pipeline.crawl.politeness import DomainScheduler
from nightly_pipeline.crawl.ssrf import (
    AddressPolicy,
    SSRFError,
    is_forbidden_address,
    parse_ipv4_literal,
)
from nightly_pipeline.crawl.transport import PinnedTransport, build_crawl_client
from nightly_pipeline_tests.kit.net import (
    RawHttpServer,
    RecordingBackend,
    StaticResolver,
    VirtualHosts,
    running,
)

STRICT = AddressPolicy()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://127.0.0.1./",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1%25eth0]/",
    "http://[fd00::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://198.18.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://1.2.3.4.5/",
    "http://a.b.c.1/",
    "http://08.0.0.1/",
])
def test_ip_literals_that_are_not_global_are_refused_in_every_notation(url: str) -> None:
    with pytest.raises(SSRFError) as refused:
        STRICT.check_url(url)
    assert url.split("/")[2].split("%")[0] in str(refused.value)


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f.1", "127.1", "127.0.1",
                                  "0x7F000001", "017700000001", "127.0.0.1."])
def test_ipv4_parser_reads_the_notations_resolvers_accept(host: str) -> None:
    assert parse_ipv4_literal(host) == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize("host", ["example.com", "acme.com.sg", "1example.com", "x.y.z"])
def test_ipv4_parser_leaves_names_alone(host: str) -> None:
    assert parse_ipv4_literal(host) is None


@pytest.mark.parametrize("url", [
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "http://example.com:8080/",
    "https://example.com:22/",
    "http://user:secret@example.com/",
    "http://localhost/",
    "http://api.localhost/",
    "http://intranet/",
    "http:///nohost",
    "not a url",
])
def test_schemes_ports_credentials_and_local_names_are_refused(url: str) -> None:
    with pytest.raises(SSRFError):
        STRICT.check_url(url)


@pytest.mark.parametrize("url", [
    "https://example.com/",
    "http://acme.com.sg/about?x=1",
    "http://93.184.216.34/",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/",
    "http://example.com:80/",
])
def test_public_targets_pass(url: str) -> None:
    target = STRICT.check_url(url)
    assert target.scheme in ("http", "https")
    assert target.port in (80, 443)


def test_ip_literal_target_keeps_the_parsed_address() -> None:
    assert STRICT.check_url("http://93.184.216.34/").ip == ipaddress.IPv4Address("93.184.216.34")
    assert STRICT.check_url("https://example.com/").ip is None


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.31.255.255", "192.168.0.1", "100.64.0.1", "100.127.255.255",
    "198.18.0.1", "198.19.255.255", "169.254.169.254", "169.254.0.1", "0.0.0.0", "0.1.2.3",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1", "::1", "::",
    "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:a00:1::1", "2001:db8::1",
])
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                     "::ffff:93.184.216.34"])
def test_global_addresses_are_not_forbidden(address: str) -> None:
    assert not is_forbidden_address(address)


def test_private_network_mode_still_refuses_metadata_and_non_unicast() -> None:
    sandbox = AddressPolicy(allow_private_networks=True, allow_nonstandard_ports=True)
    for allowed in ("http://127.0.0.1:8080/", "http://10.0.0.5/", "http://[::1]/", "http://localhost/"):
        sandbox.check_url(allowed)
    for refused in ("http://169.254.169.254/", "http://[fe80::1]/", "http://0.0.0.0/", "http://224.0.0.1/",
                    "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(SSRFError):
            sandbox.check_url(refused)


def test_extra_allowed_opens_exactly_one_endpoint() -> None:
    policy = AddressPolicy(extra_allowed=frozenset({"127.0.0.1:8080"}))
    assert policy.check_url("http://127.0.0.1:8080/").port == 8080
    for refused in ("http://127.0.0.1:8081/", "http://127.0.0.2:8080/", "http://127.0.0.1/", "http://10.0.0.5:8080/"):
        with pytest.raises(SSRFError):
            policy.check_url(refused)


def test_resolve_and_check_refuses_if_any_answer_is_forbidden() -> None:
    resolver = StaticResolver({
        "rebind.test": ["10.0.0.5"],
        "mixed.test": ["93.184.216.34", "127.0.0.1"],
        "mapped.test": ["::ffff:127.0.0.1"],
        "empty.test": [],
        "good.test": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    })

    async def scenario() -> str:
        for host in ("rebind.test", "mixed.test", "mapped.test", "empty.test"):
            with pytest.raises(SSRFError) as refused:
                await STRICT.resolve_and_check(host, 80, resolver)
            assert host in str(refused.value)
        return await STRICT.resolve_and_check("good.test", 443, resolver)

    assert asyncio.run(scenario()) == "93.184.216.34"
    assert resolver.lookups == ["rebind.test", "mixed.test", "mapped.test", "empty.test", "good.test"]


def _pinned_client(policy: AddressPolicy, resolver: StaticResolver, backend: RecordingBackend,
                   verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    transport = PinnedTransport(policy=policy, resolver=resolver, network_backend=backend, verify=verify)
    return httpx.AsyncClient(transport=transport)


def test_pinned_transport_connects_to_the_checked_address_and_keeps_the_host_header() -> None:
    site = VirtualHosts()
    site.page("allowed.test", "/", "<html>hello</html>")
    with running(site):
        policy = AddressPolicy(allow_nonstandard_ports=True, extra_allowed=frozenset({site.endpoint}))
        resolver = StaticResolver({"allowed.test": ["127.0.0.1"]})
        backend = RecordingBackend()

        async def scenario() -> httpx.Response:
            async with _pinned_client(policy, resolver, backend) as client:
                return await client.get(site.port_url("allowed.test"))

        response = asyncio.run(scenario())
    assert response.status_code == 200
    assert backend.connects == [("127.0.0.1", site.port)]
    assert resolver.lookups == ["allowed.test"]
    assert site.hits[0].headers["Host"] == f"allowed.test:{site.port}"


@pytest.mark.parametrize("answers", [["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], ["127.0.0.1"], ["::ffff:127.0.0.1"]])
def test_refused_name_opens_no_connection(answers: list[str]) -> None:
    allowed, victim = VirtualHosts(), RawHttpServer()
    with running(allowed, victim):
        policy = AddressPolicy(allow_nonstandard_ports=True, extra_allowed=frozenset({allowed.endpoint}))
        resolver = StaticResolver({"target.test": answers})
        backend = RecordingBackend()

        async def scenario() -> None:
            async with _pinned_client(policy, resolver, backend) as client:
                with pytest.raises(SSRFError):
                    await client.get(f"http://target.test:{victim.port}/")

        asyncio.run(scenario())
    assert backend.connects == []
    assert victim.connections == 0


def _strict_fetcher(client: httpx.AsyncClient, policy: AddressPolicy) -> Fetcher:
    return Fetcher(client, policy=policy, scheduler=DomainScheduler(0.0), user_agent="TestBot/1.0")


def test_redirects_to_metadata_or_private_names_are_refused_before_connecting() -> None:
    site, victim = VirtualHosts(), RawHttpServer()
    with running(site, victim):
        site.page("allowed.test", "/robots.txt", "", status=404)
        site.redirect("allowed.test", "/metadata", "http://169.254.169.254/latest/meta-data/")
        site.redirect("allowed.test", "/internal", f"http://internal.test:{victim.port}/admin")
        site.redirect("allowed.test", "/decimal", "http://2852039166/latest/meta-data/")
        policy = AddressPolicy(allow_nonstandard_ports=True, extra_allowed=frozenset({site.endpoint}))
        resolver = StaticResolver({"allowed.test": ["127.0.0.1"], "internal.test": ["127.0.0.1"]})
        backend = RecordingBackend()

        async def scenario() -> list:
            async with _pinned_client(policy, resolver, backend) as client:
                fetcher = _strict_fetcher(client, policy)
                return [await fetcher.fetch(site.port_url("allowed.test", path))
                        for path in ("/metadata", "/internal", "/decimal")]

        results = asyncio.run(scenario())
    for result in results:
        assert result.error_kind == "ssrf"
        assert len(result.redirects) == 1
        assert result.error.startswith(f"refused {result.redirects[0]}")
    assert {host for host, _ in backend.connects} == {"127.0.0.1"}
    assert all(port == site.port for _, port in backend.connects)
    assert victim.connections == 0


PUBLIC_LOOKING = "93.184.216.34"


def _proxy_fetch(proxy: VirtualHosts, resolver: StaticResolver, urls: list[str],
                 policy: AddressPolicy = STRICT) -> list:
    async def scenario() -> list:
        client = build_crawl_client(policy=policy, user_agent="TestBot/1.0", timeout_s=5,
                                    max_connections=4, proxy=proxy.url, resolver=resolver)
        async with client:
            fetcher = _strict_fetcher(client, policy)
            return [await fetcher.fetch(url) for url in urls]

    return asyncio.run(scenario())


def test_proxy_mode_checks_urls_and_resolves_every_host_before_the_proxy_sees_it() -> None:
    proxy = VirtualHosts()
    proxy.page("acme.com.sg", "/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    proxy.page("acme.com.sg", "/", "<html>acme</html>")
    with running(proxy):
        resolver = StaticResolver({"acme.com.sg": [PUBLIC_LOOKING]})
        ok, decimal, localhost, odd_port = _proxy_fetch(proxy, resolver, [
            "http://acme.com.sg/", "http://2130706433/", "http://localhost/", "http://acme.com.sg:8080/"])
    assert ok.ok and ok.body == b"<html>acme</html>"
    assert [r.error_kind for r in (decimal, localhost, odd_port)] == ["ssrf", "ssrf", "ssrf"]
    # robots.txt and the page: one lookup, remembered for the second request.
    assert resolver.lookups == ["acme.com.sg"]
    assert [(hit.host, hit.path) for hit in proxy.hits] == [("acme.com.sg", "/robots.txt"), ("acme.com.sg", "/")]


# Public names that resolve to places a crawl must never reach (the *.nip.io and localtest.me services
# answer any name with the address it spells or with loopback).
REBINDING_NAMES = {
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "localtest.me": ["127.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "169.254.169.254.nip.io": ["169.254.169.254"],
    "intranet.acme.com.sg": ["10.0.0.5"],
    "half.acme.com.sg": [PUBLIC_LOOKING, "127.0.0.1"],
}


@pytest.mark.parametrize("name", sorted(REBINDING_NAMES))
def test_proxy_mode_refuses_a_name_that_resolves_to_a_forbidden_address(name: str) -> None:
    proxy = VirtualHosts()
    proxy.page(name, "/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    proxy.page(name, "/", "<html>secret</html>")
    with running(proxy):
        (result,) = _proxy_fetch(proxy, StaticResolver(REBINDING_NAMES), [f"http://{name}/"])
    assert result.error_kind == "ssrf" and result.attempts == 0
    assert "resolves to" in (result.error or "")
    assert proxy.hits == []


@pytest.mark.parametrize("name", sorted(REBINDING_NAMES))
def test_proxy_mode_refuses_a_redirect_to_a_name_that_resolves_to_a_forbidden_address(name: str) -> None:
    proxy = VirtualHosts()
    proxy.page("acme.com.sg", "/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    proxy.redirect("acme.com.sg", "/about", f"http://{name}/latest/meta-data/")
    proxy.page(name, "/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    proxy.page(name, "/latest/meta-data/", "<html>secret</html>")
    with running(proxy):
        resolver = StaticResolver({"acme.com.sg": [PUBLIC_LOOKING], **REBINDING_NAMES})
        (result,) = _proxy_fetch(proxy, resolver, ["http://acme.com.sg/about"])
    assert result.error_kind == "ssrf"
    assert result.redirects == [f"http://{name}/latest/meta-data/"]
    assert {hit.host for hit in proxy.hits} == {"acme.com.sg"}


def test_proxy_mode_sends_nothing_for_a_name_that_does_not_resolve_here() -> None:
    proxy = VirtualHosts()
    proxy.page("only-the-proxy-knows.svc", "/", "<html>internal</html>")
    with running(proxy):
        (result,) = _proxy_fetch(proxy, StaticResolver({}), ["http://only-the-proxy-knows.svc/"])
    # robots.txt is the first request, so the page is refused as robots.txt-unreachable.
    assert not result.ok and "cannot resolve only-the-proxy-knows.svc" in (result.error or "")
    assert proxy.hits == []


def test_sandbox_mode_leaves_names_to_the_proxy() -> None:
    proxy = VirtualHosts()
    proxy.page("acme.com.sg", "/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    proxy.page("acme.com.sg", "/", "<html>acme</html>")
    sandbox = AddressPolicy(allow_private_networks=True)
    with running(proxy):
        resolver = StaticResolver({})
        (result,) = _proxy_fetch(proxy, resolver, ["http://acme.com.sg/"], policy=sandbox)
    assert result.ok
    assert resolver.lookups == []


# A self-signed certificate for secure.test (EC P-256, valid until 2126), made once with
#   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
#     -subj /CN=secure.test -addext subjectAltName=DNS:secure.test
TEST_CERT = Path(__file__).parent / "data" / "secure_test_cert.pem"
TEST_KEY = Path(__file__).parent / "data" / "secure_test_key.pem"


def test_tls_verifies_the_name_while_connecting_to_the_pinned_address() -> None:
    cert, key = TEST_CERT, TEST_KEY
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    server_context.sni_callback = lambda ssl_object, name, context: server_names.append(name)
    site = VirtualHosts(ssl_context=server_context)
    site.page("secure.test", "/", "<html>tls</html>")
    with running(site):
        policy = AddressPolicy(allow_nonstandard_ports=True, extra_allowed=frozenset({site.endpoint}))
        resolver = StaticResolver({"secure.test": ["127.0.0.1"], "impostor.test": ["127.0.0.1"]})
        backend = RecordingBackend()
        client_context = ssl.create_default_context(cafile=str(cert))

        async def scenario() -> tuple[httpx.Response, Exception]:
            async with _pinned_client(policy, resolver, backend, verify=client_context) as client:
                response = await client.get(site.port_url("secure.test", scheme="https"))
                with pytest.raises(httpx.ConnectError) as mismatch:
                    await client.get(site.port_url("impostor.test", scheme="https"))
                return response, mismatch.value

        response, mismatch = asyncio.run(scenario())
    assert response.text == "<html>tls</html>"
    assert server_names[0] == "secure.test"
    assert "certificate" in str(mismatch).lower() or "hostname" in str(mismatch).lower()
    assert backend.connects == [("127.0.0.1", site.port), ("127.0.0.1", site.port)]
