"""Server-side request forgery guard for crawl targets.

Crawl URLs come from registry rows, search results and redirects, so any of them may point at
loopback, the cloud metadata service or a private network. The guard works in two places:

* :meth:`AddressPolicy.check_url` before a request: scheme, port, credentials and IP literals
  in every notation a resolver would accept (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
  ``[::ffff:127.0.0.1]``);
* :meth:`AddressPolicy.resolve_and_check` at connect time (see :mod:`.transport`): the name is
  resolved once, refused if *any* answer is forbidden, and the connection is pinned to the
  address that was checked, so DNS rebinding between check and connect cannot slip through.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from nightly_pipeline.crawl.transport import Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}

# Every range of IANA's IPv4 and IPv6 special-purpose address registries that is not globally
# reachable, listed here so the guard does not depend on the ``is_global`` tables of the running
# Python (3.11 lacks 192.0.0.0/24 beyond its first /29, 3fff::/20 and fec0::/10, for instance).
# 192.0.0.0/24 is refused whole, its two anycast addresses included: nothing there is a website.
_ALWAYS_FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # this network
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link local, cloud metadata
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "240.0.0.0/4",  # reserved, limited broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
        "100::/64",  # discard-only
        "100:0:0:1::/64",  # dummy prefix
        "2001::/23",  # IETF protocol assignments (TEREDO, benchmarking, ORCHID, ...)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link local
        "fec0::/10",  # deprecated site local
    )
)

# Still refused in sandbox mode: nothing legitimate lives there, and 169.254.169.254 is the
# cloud metadata service.
_NEVER_ALLOWED_NETWORKS = tuple(
    ipaddress.ip_network(network) for network in ("0.0.0.0/8", "169.254.0.0/16", "fe80::/10")
)

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# A NAT64 gateway (RFC 6052) connects to the IPv4 address in the last 32 bits.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")

# WHATWG URL rule: a host whose last label is a number is an IPv4 address (in any notation).
_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


class SSRFError(ValueError):
    """A crawl target refused by the guard; the message names the target and the reason."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"refused {target}: {reason}")
        self.target = target
        self.reason = reason


@dataclass(frozen=True)
class ParsedTarget:
    """A URL that passed :meth:`AddressPolicy.check_url`."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None


def _translated_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 address is a connection to, if it is one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address forwards to (mapped, NAT64, compatible or 6to4), if any."""
    translated = _translated_ipv4(address)
    if translated is not None:
        return translated
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _as_address(ip: str | IPAddress) -> IPAddress:
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip
    return ipaddress.ip_address(ip.strip("[]"))


def is_forbidden_address(ip: str | IPAddress) -> bool:
    """True when ``ip`` is not a globally routable unicast address.

    An IPv4-mapped (``::ffff:127.0.0.1``) or NAT64 (``64:ff9b::7f00:1``) address is judged by its
    IPv4 address; other IPv6 forms that carry one (``::127.0.0.1``, 6to4) must pass both as IPv6
    and as IPv4. A scoped IPv6 address (``fe80::1%eth0``) is always forbidden.
    """
    address = _as_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return True
        # A mapped or NAT64 address is an IPv4 connection in disguise: only the IPv4 address counts.
        translated = _translated_ipv4(address)
        if translated is not None:
            return is_forbidden_address(translated)
        embedded = _embedded_ipv4(address)
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in network for network in _ALWAYS_FORBIDDEN_NETWORKS)
    )


def _is_never_allowed(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return True
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _is_never_allowed(embedded)
    return (
        address.is_multicast
        or address.is_unspecified
        or (address.is_reserved and not address.is_loopback)
        or any(address in network for network in _NEVER_ALLOWED_NETWORKS)
    )


def _parse_ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part, 10)


def parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """Parse ``host`` the way URL parsers and ``inet_aton`` do, or return None for a name.

    Accepts dotted, decimal (``2130706433``), octal (``0177.0.0.1``), hex (``0x7f.0.0.1``) and
    short forms (``127.1``). A host whose last label is numeric but which is not a valid
    address (``1.2.3.4.5``, ``a.b.c.1``) raises ``ValueError``: WHATWG URL parsing rejects it,
    and letting it through to a resolver would invite parser differentials.
    """
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    if not labels or not _NUMERIC_LABEL.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMERIC_LABEL.match(label) for label in labels):
        raise ValueError(f"host {host!r} ends in a number but is not an IPv4 address")
    try:
        numbers = [_parse_ipv4_number(label) for label in labels]
    except ValueError as exc:
        raise ValueError(f"host {host!r} is not a valid IPv4 address") from exc
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"host {host!r} is out of the IPv4 range")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is an IP literal (any notation), else None."""
    if ":" in host:
        return ipaddress.IPv6Address(host.strip("[]").replace("%25", "%"))
    return parse_ipv4_literal(host)


def _parse_endpoint(endpoint: str) -> tuple[IPAddress, int]:
    host, separator, port = endpoint.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"allowed endpoint {endpoint!r} must look like '127.0.0.1:8080' or '[::1]:8080'")
    return ipaddress.ip_address(host.strip("[]")), int(port)


@dataclass(frozen=True)
class AddressPolicy:
    """Which crawl targets may be contacted.

    ``allow_private_networks`` is the sandbox switch: loopback and private ranges become
    reachable, but link-local (cloud metadata), unspecified, multicast and reserved addresses
    stay refused. ``extra_allowed`` names exact ``ip:port`` endpoints that are reachable even
    though their address is not global (a test server on loopback), without opening anything
    else. Non-default ports are refused unless ``allow_nonstandard_ports`` or the endpoint is
    listed.
    """

    allow_private_networks: bool = False
    allow_nonstandard_ports: bool = False
    extra_allowed: frozenset[str] = frozenset()
    _endpoints: frozenset[tuple[IPAddress, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        endpoints = frozenset(_parse_endpoint(endpoint) for endpoint in self.extra_allowed)
        object.__setattr__(self, "_endpoints", endpoints)

    def _port_allowed(self, port: int) -> bool:
        return (
            self.allow_nonstandard_ports
            or port in DEFAULT_PORTS.values()
            or any(port == allowed_port for _, allowed_port in self._endpoints)
        )

    def refusal_reason(self, ip: str | IPAddress, port: int) -> str | None:
        """Why connecting to ``ip:port`` is refused, or None when it is allowed."""
        address = _as_address(ip)
        if (address, port) in self._endpoints:
            return None
        if not (self.allow_nonstandard_ports or port in DEFAULT_PORTS.values()):
            return f"port {port} is not a default web port"
        if not is_forbidden_address(address):
            return None
        if self.allow_private_networks and not _is_never_allowed(address):
            return None
        return f"address {address} is not globally routable"

    def check_url(self, url: str) -> ParsedTarget:
        """Validate a URL before any request; raise :class:`SSRFError` naming URL and reason."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise SSRFError(url, f"not a valid URL ({exc})") from exc
        scheme = parsed.scheme
        if scheme not in DEFAULT_PORTS:
            raise SSRFError(url, f"scheme {scheme or '(none)'!r} is not http or https")
        if parsed.userinfo:
            raise SSRFError(url, "credentials in the URL")
        host = parsed.raw_host.decode("ascii").lower()
        if not host:
            raise SSRFError(url, "no host")
        port = parsed.port or DEFAULT_PORTS[scheme]
        try:
            ip = parse_ip_literal(host)
        except ValueError as exc:
            raise SSRFError(url, str(exc)) from exc
        if ip is not None:
            reason = self.refusal_reason(ip, port)
        else:
            reason = self._name_refusal_reason(host.rstrip("."), port, scheme)
        if reason is not None:
            raise SSRFError(url, reason)
        return ParsedTarget(url=str(parsed), scheme=scheme, host=host, port=port, ip=ip)

    def _name_refusal_reason(self, host: str, port: int, scheme: str) -> str | None:
        if port != DEFAULT_PORTS[scheme] and not self._port_allowed(port):
            return f"port {port} is not the default port of {scheme}"
        if self.allow_private_networks:
            return None
        # Through a proxy the guard never sees an answer, so names that are local by
        # definition (RFC 6761) or by convention (single label) are refused by name.
        if host == "localhost" or host.endswith(".localhost"):
            return "localhost names always resolve to loopback"
        if "." not in host:
            return f"single-label host {host!r} is an intranet name"
        return None

    async def resolve_and_check(self, host: str, port: int, resolver: Resolver) -> str:
        """Resolve ``host`` once and return the address to connect to.

        Refuses when the answer is empty or when *any* answer is forbidden: a name that mixes
        public and private answers is a rebinding setup, not a site to pick the good half of.
        """
        target = f"{host}:{port}"
        try:
            literal = parse_ip_literal(host)
        except ValueError as exc:
            raise SSRFError(target, str(exc)) from exc
        if literal is not None:
            reason = self.refusal_reason(literal, port)
            if reason is not None:
                raise SSRFError(target, reason)
            return str(literal)
        answers = await resolver.resolve(host)
        if not answers:
            raise SSRFError(target, "the name has no addresses")
        addresses = [_as_address(answer) for answer in answers]
        for address in addresses:
            reason = self.refusal_reason(address, port)
            if reason is not None:
                raise SSRFError(target, f"resolves to {address}: {reason}")
        return str(addresses[0])
