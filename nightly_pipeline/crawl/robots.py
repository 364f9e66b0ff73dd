"""robots.txt per RFC 9309, fetched once per origin per crawl and parsed with Protego.

| fetch result                          | meaning                                   |
|---------------------------------------|-------------------------------------------|
| 2xx                                   | parse (first 500 KiB) and obey            |
| 4xx, or more than 5 redirects         | unavailable: allow all (§2.3.1.3, §2.3.1.2)|
| 429, 5xx, network error, refused URL  | unreachable: disallow all (§2.3.1.4)      |

429 is a 4xx code but means "come back later", so it is treated like 5xx, as Google does.
``Crawl-delay`` is not part of RFC 9309; it is honoured up to ``max_crawl_delay_s`` and the
clamping is logged.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx
from protego import Protego

if TYPE_CHECKING:
    from nightly_pipeline.crawl.fetcher import FetchResult

logger = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 500 * 1024
ROBOTS_MAX_REDIRECTS = 5
ROBOTS_TTL_S = 24 * 3600.0

RobotsOutcome = Literal["parsed", "unavailable", "unreachable"]


def robots_url_for(url: str) -> str:
    """The robots.txt URL governing ``url`` (same scheme, host and port)."""
    return str(httpx.URL(url).copy_with(path="/robots.txt", query=None, fragment=None))


def robots_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against (``Bot`` of ``Bot/1.0 (...)``).

    Matching the full header would let words in its comment (``+https://x/bot``) select
    another crawler's group.
    """
    return user_agent.strip().split("/", 1)[0].split()[0]


@dataclass(frozen=True)
class RobotsInfo:
    """What one origin's robots.txt allows our user agent."""

    url: str
    outcome: RobotsOutcome
    status: int | None
    reason: str
    agent: str
    crawl_delay_s: float | None = None
    declared_crawl_delay_s: float | None = None
    error_kind: str | None = None
    fetched_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    parser: Protego | None = field(default=None, repr=False, compare=False)

    @property
    def network_failure(self) -> bool:
        """True when no HTTP answer came back at all (connect error, timeout, refused)."""
        return self.status is None and self.outcome == "unreachable"

    def can_fetch(self, url: str) -> bool:
        if self.outcome == "unavailable":
            return True
        if self.outcome == "unreachable" or self.parser is None:
            return False
        return self.parser.can_fetch(url, self.agent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "outcome": self.outcome,
            "status": self.status,
            "reason": self.reason,
            "crawl_delay_s": self.crawl_delay_s,
            "declared_crawl_delay_s": self.declared_crawl_delay_s,
            "error_kind": self.error_kind,
            "fetched_at": self.fetched_at.isoformat(),
        }


def interpret_robots(result: FetchResult, *, agent: str, max_crawl_delay_s: float) -> RobotsInfo:
    """Turn the fetch of a robots.txt into the RFC 9309 decision."""
    status = result.status
    if result.error_kind == "too_many_redirects":
        return RobotsInfo(result.url, "unavailable", status, "more than 5 redirects: allow all",
                          agent, error_kind=result.error_kind)
    if status is None or result.error_kind in ("ssrf", "timeout", "connect", "protocol"):
        return RobotsInfo(result.url, "unreachable", status,
                          f"robots.txt unreachable ({result.error}): disallow all", agent,
                          error_kind=result.error_kind)
    if status == 429 or status >= 500:
        return RobotsInfo(result.url, "unreachable", status,
                          f"robots.txt answered HTTP {status}: disallow all", agent,
                          error_kind=result.error_kind)
    if not 200 <= status < 300:
        return RobotsInfo(result.url, "unavailable", status,
                          f"robots.txt answered HTTP {status}: allow all", agent,
                          error_kind=result.error_kind)
    text = result.body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff")
    parser = Protego.parse(text)
    declared = parser.crawl_delay(agent)
    honoured = declared
    if declared is not None and declared > max_crawl_delay_s:
        honoured = max_crawl_delay_s
        logger.warning("robots.txt %s asks Crawl-delay %.1f s; honouring the cap of %.1f s",
                       result.url, declared, max_crawl_delay_s)
    return RobotsInfo(result.url, "parsed", status, f"robots.txt answered HTTP {status}: obeyed",
                      agent, crawl_delay_s=honoured, declared_crawl_delay_s=declared, parser=parser)


RobotsFetch = Callable[[str], Awaitable["FetchResult"]]


class RobotsCache:
    """robots.txt decisions per origin, fetched once (concurrent callers share the fetch)."""

    def __init__(self, fetch: RobotsFetch, *, user_agent: str, max_crawl_delay_s: float = 10.0,
                 ttl_s: float = ROBOTS_TTL_S) -> None:
        self._fetch = fetch
        self._agent = robots_token(user_agent)
        self._max_crawl_delay_s = max_crawl_delay_s
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[float, asyncio.Future[RobotsInfo]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, url: str) -> RobotsInfo:
        """The robots.txt decision for the origin of ``url``."""
        robots_url = robots_url_for(url)
        entry = self._entries.get(robots_url)
        now = time.monotonic()
        if entry is None or now - entry[0] >= self._ttl_s:
            entry = (now, asyncio.ensure_future(self._load(robots_url)))
            self._entries[robots_url] = entry
        try:
            # Shielded: one caller giving up must not cancel the fetch the others wait for.
            return await asyncio.shield(entry[1])
        except Exception:
            # A fetch that raised (the politeness gate's database was unreachable, say) decided
            # nothing about the site: the next request asks again.
            if self._entries.get(robots_url) is entry:
                del self._entries[robots_url]
            raise

    async def aclose(self) -> None:
        """Cancel fetches still running; shielded, they would otherwise outlive the crawl."""
        pending = [future for _, future in self._entries.values() if not future.done()]
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _load(self, robots_url: str) -> RobotsInfo:
        result = await self._fetch(robots_url)
        return interpret_robots(result, agent=self._agent, max_crawl_delay_s=self._max_crawl_delay_s)
