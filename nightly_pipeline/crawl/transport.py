"""HTTP transport for the crawler: connections pinned to the address the SSRF guard checked.

httpcore opens every TCP connection through a network backend. :class:`PinnedNetworkBackend`
resolves the name once, lets :class:`~.ssrf.AddressPolicy` judge every answer, and connects to
the checked address. The URL, the ``Host`` header, TLS SNI and certificate verification keep the
name, because httpcore takes them from the request origin, not from the socket address. A check
made before a separate connect would be defeated by a TTL-0 rebinding answer; here the check and
the connect use the same answer.

With a proxy (``CRAWLER_PROXY``) the proxy connects, so nothing can be pinned: :class:`ResolvingProxyTransport`
resolves the host of every request (every hop of a redirect chain is a request of its own) and hands it
to the proxy only when every answer is allowed. The proxy resolves the name again, and DNS may answer it
differently by then, so an egress-filtering proxy stays the real guard there. In sandbox mode
(``allow_private_networks``) names are left to the proxy: the simulated web exists only inside it.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
import typing
import zlib
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Protocol

import certifi
import httpcore
import httpx

from nightly_pipeline.crawl.ssrf import DEFAULT_PORTS, AddressPolicy


class UnresolvableHost(httpcore.ConnectError):
    """The name did not resolve; httpx re-raises it as ``ConnectError`` with this as the cause."""


class Resolver(Protocol):
    """Name resolution used by the pinned transport; tests inject fixed answers."""

    async def resolve(self, host: str) -> list[str]: ...


class SystemResolver:
    """The operating system's resolver through ``loop.getaddrinfo``, answers deduplicated."""

    async def resolve(self, host: str) -> list[str]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class CachingResolver:
    """Remembers each name's answer, or its failure, for ``ttl_s``; concurrent lookups share one query.

    Through a proxy every request is checked, and a site visit asks for the same few names many
    times; the system resolver answers from a thread pool, so asking once per name keeps a broad crawl
    from queueing on it.
    """

    def __init__(self, inner: Resolver, *, ttl_s: float = 30.0, max_names: int = 10_000) -> None:
        self._inner = inner
        self._ttl_s = ttl_s
        self._max_names = max_names
        self._entries: dict[str, tuple[float, asyncio.Future[list[str]]]] = {}

    async def resolve(self, host: str) -> list[str]:
        now = time.monotonic()
        entry = self._entries.get(host)
        if entry is None or entry[0] <= now:
            self._make_room(now)
            lookup = asyncio.ensure_future(self._inner.resolve(host))
            # Retrieved here so a failure nobody else awaits is not reported as never retrieved.
            lookup.add_done_callback(lambda done: done.cancelled() or done.exception())
            entry = self._entries[host] = (now + self._ttl_s, lookup)
        # Shielded: one caller giving up must not cancel the lookup the others wait for.
        return list(await asyncio.shield(entry[1]))

    def _make_room(self, now: float) -> None:
        if len(self._entries) < self._max_names:
            return
        for name in [name for name, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[name]
        while len(self._entries) >= self._max_names:
            del self._entries[next(iter(self._entries))]


async def _checked_address(policy: AddressPolicy, resolver: Resolver, host: str, port: int,
                           timeout: float | None) -> str:
    """The allowed address of ``host``, or httpcore's connect errors for a lookup that failed."""
    try:
        async with asyncio.timeout(timeout):
            return await policy.resolve_and_check(host, port, resolver)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
    except OSError as exc:
        raise UnresolvableHost(f"cannot resolve {host}: {exc}") from exc


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects to the policy-checked address of the requested host, never to the name."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await _checked_address(self._policy, self._resolver, host, port, timeout)
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not crawl targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool connects through the pinned backend.

    httpx does not expose httpcore's ``network_backend`` argument, so the pool is rebuilt with
    the same settings plus the backend; httpx's request mapping and exception translation
    (``handle_async_request``) stay in use unchanged.
    """

    def __init__(
        self,
        *,
        policy: AddressPolicy,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=128, max_keepalive_connections=64,
                                            keepalive_expiry=5.0),
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else _ssl_context(verify)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PinnedNetworkBackend(policy, resolver or SystemResolver(), network_backend),
        )


class ResolvingProxyTransport(httpx.AsyncBaseTransport):
    """A forward-proxy transport that sends a request on only when its host resolves, here, to
    addresses the policy allows (all of them, as at connect time without a proxy).

    The URL checks have already run in the fetcher; this adds what only an answer can show, such as a
    public-looking name (``*.nip.io``, ``localtest.me``, ``metadata.google.internal``) that resolves to
    loopback, a private network or the metadata service. A refused host raises
    :class:`~.ssrf.SSRFError`; one that does not resolve here is not sent either, since a name only the
    proxy can resolve is an internal name.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, *, policy: AddressPolicy, resolver: Resolver) -> None:
        self._inner = inner
        self._policy = policy
        self._resolver = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or DEFAULT_PORTS.get(url.scheme, 443)
        timeout = request.extensions.get("timeout", {}).get("connect")
        try:
            await _checked_address(self._policy, self._resolver, host, port, timeout)
        except httpcore.ConnectTimeout as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except UnresolvableHost as exc:
            # The fetcher tells a name that does not resolve from a refused connect by this cause.
            raise httpx.ConnectError(str(exc), request=request) from exc
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _ssl_context(verify: bool) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=certifi.where())


def build_crawl_client(
    *,
    policy: AddressPolicy,
    user_agent: str,
    timeout_s: float,
    max_connections: int,
    proxy: str | None = None,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """The one ``httpx.AsyncClient`` of a crawl.

    Redirects are followed by the fetcher, hop by hop, so the client never follows them. The
    cookie jar accepts nothing: a crawl is stateless, and one site's cookies have no business in
    the next request. Environment proxies are ignored; the proxy is configured explicitly.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                          keepalive_expiry=5.0)
    transport: httpx.AsyncBaseTransport
    if proxy:
        context = verify if isinstance(verify, ssl.SSLContext) else _ssl_context(verify)
        transport = httpx.AsyncHTTPTransport(proxy=proxy, verify=context, trust_env=False, limits=limits)
        if not policy.allow_private_networks:
            transport = ResolvingProxyTransport(transport, policy=policy,
                                                resolver=CachingResolver(resolver or SystemResolver()))
    else:
        transport = PinnedTransport(policy=policy, resolver=resolver, verify=verify, limits=limits)
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s),
        cookies=_refusing_cookie_jar(),
        headers={
            "User-Agent": user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            "Accept-Language": "en;q=1.0, *;q=0.5",
            "Accept-Encoding": "gzip, deflate, br",
        },
    )


# Domains per client pool: httpcore's pool does keep-alive housekeeping in time quadratic in its
# connection count (encode/httpcore#1035), and a crawl through a forward proxy holds about one
# connection per domain in flight, so one big pool spends the crawl's CPU on bookkeeping.
DOMAINS_PER_POOL = 4


class ShardedClient:
    """Several crawl clients behind the two calls the fetcher makes; a host always maps to the same
    client, so its keep-alive connections are reused."""

    def __init__(self, clients: typing.Sequence[httpx.AsyncClient]) -> None:
        if not clients:
            raise ValueError("at least one client is needed")
        self._clients = list(clients)

    def _for(self, url: httpx.URL) -> httpx.AsyncClient:
        return self._clients[zlib.crc32(url.host.encode()) % len(self._clients)]

    def build_request(self, method: str, url: str, **kwargs: typing.Any) -> httpx.Request:
        return self._clients[0].build_request(method, url, **kwargs)

    async def send(self, request: httpx.Request, **kwargs: typing.Any) -> httpx.Response:
        return await self._for(request.url).send(request, **kwargs)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def build_sharded_crawl_client(*, concurrency: int, verify: ssl.SSLContext | bool = True,
                               **options: typing.Any) -> ShardedClient:
    """Clients enough that each pool serves about :data:`DOMAINS_PER_POOL` domains in flight.

    They share one TLS context: loading the CA bundle takes ~20 ms, once per context.
    """
    shards = max(1, -(-concurrency // DOMAINS_PER_POOL))
    per_pool = max(8, 2 * -(-concurrency // shards))
    context = verify if isinstance(verify, ssl.SSLContext) else _ssl_context(verify)
    return ShardedClient([build_crawl_client(max_connections=per_pool, verify=context, **options)
                          for _ in range(shards)])


def _refusing_cookie_jar() -> CookieJar:
    # Passed as a bare CookieJar: httpx.Client copies an httpx.Cookies into a default jar,
    # which would drop the policy.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
