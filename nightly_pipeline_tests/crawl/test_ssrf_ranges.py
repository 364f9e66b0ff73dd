"""Every special-purpose range of IANA's IPv4 and IPv6 registries that is not globally reachable is
refused, whatever ``ipaddress.is_global`` says on the running Python (3.11 misses several)."""
from __future__ import annotations

import pytest

from nightly_pipeline.crawl.ssrf import AddressPolicy, SSRFError, is_forbidden_address

FORBIDDEN = [
    # IPv4 special-purpose address registry
    ("0.0.0.1", "this network"),
    ("10.1.2.3", "private"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("127.0.0.1", "loopback"),
    ("169.254.169.254", "link local, cloud metadata"),
    ("172.16.0.1", "private"),
    ("192.0.0.1", "IETF protocol assignments"),
    ("192.0.0.8", "IPv4 dummy address"),
    ("192.0.0.9", "port control protocol anycast"),
    ("192.0.0.10", "traversal using relays around NAT anycast"),
    ("192.0.0.170", "NAT64/DNS64 discovery"),
    ("192.0.0.192", "IETF protocol assignments, unassigned on 3.11's list"),
    ("192.0.0.255", "IETF protocol assignments"),
    ("192.0.2.1", "documentation TEST-NET-1"),
    ("192.88.99.1", "deprecated 6to4 relay anycast"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.51.100.1", "documentation TEST-NET-2"),
    ("203.0.113.1", "documentation TEST-NET-3"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "limited broadcast"),
    # IPv6 special-purpose address registry
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("64:ff9b::a00:1", "NAT64 well-known prefix onto a private address"),
    ("64:ff9b::7f00:1", "NAT64 well-known prefix onto loopback"),
    ("64:ff9b:1::1", "local-use IPv4/IPv6 translation"),
    ("100::1", "discard-only"),
    ("100:0:0:1::1", "dummy IPv6 prefix"),
    ("2001::1", "TEREDO"),
    ("2001:2::1", "benchmarking"),
    ("2001:10::1", "deprecated ORCHID"),
    ("2001:db8::1", "documentation"),
    ("2002:a00:1::", "6to4 onto a private address"),
    ("3fff::1", "documentation (RFC 9637)"),
    ("5f00::1", "segment routing SIDs"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link local"),
    ("fec0::1", "deprecated site local"),
    ("feff::1", "deprecated site local"),
    ("ff02::1", "multicast"),
]

ALLOWED = [
    ("1.1.1.1", "public"),
    ("8.8.8.8", "public"),
    ("192.0.1.1", "public, just above 192.0.0.0/24"),
    ("192.31.196.1", "AS112, globally reachable"),
    ("2606:4700:4700::1111", "public"),
    ("64:ff9b::808:808", "NAT64 onto a public address"),
    ("2002:808:808::", "6to4 onto a public address"),
]


@pytest.mark.parametrize("address, why", FORBIDDEN)
def test_non_global_special_purpose_addresses_are_forbidden(address, why):
    assert is_forbidden_address(address), why
    with pytest.raises(SSRFError):
        AddressPolicy().check_url(f"http://[{address}]/" if ":" in address else f"http://{address}/")


@pytest.mark.parametrize("address, why", ALLOWED)
def test_globally_reachable_addresses_are_allowed(address, why):
    assert not is_forbidden_address(address), why
