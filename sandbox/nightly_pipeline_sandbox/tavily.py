"""A Tavily API server over the simulated web, for ``TavilyClient(api_key=..., api_base_url=server.url)``.

Speaks the wire format of vendor-apis.md §1: ``POST /search``, ``/extract``, ``/crawl``, ``/map`` with
JSON bodies, ``Authorization: Bearer tvly-...`` (or ``api_key`` in the body), every documented response
key, ``failed_results`` with HTTP 200 for unreadable URLs, and ``usage: {"credits": n}`` when asked.

Credits follow the published rules: search 1 (basic) / 2 (advanced); extract 1 per 5 successful URLs
(2 per 5 advanced), rounded up per call; map 1 per 10 pages (2 with ``instructions``); crawl = map + extract.
Errors are ``{"detail": {"error": ...}}`` with 400, 401 (missing or unknown key), 429 (per-minute limit, with
``/crawl`` limited separately) and 432 (the key's credit allowance would be exceeded).
"""
from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nightly_pipeline_sandbox.base import FaultConfig, LatencyModel, SandboxServer
from nightly_pipeline_sandbox.tavily_view import (
    FetchError,
    Fetched,
    SearchIndex,
    TavilyView,
    Traversal,
    page_content,
    relevant_chunks,
    traverse,
)
from nightly_pipeline_sandbox.vendors_common import RollingWindow
from nightly_pipeline_sandbox.world import World

MAX_EXTRACT_URLS = 20
MAX_SEARCH_RESULTS = 20
RATE_WINDOW_S = 60.0
DEFAULT_CHUNKS_PER_SOURCE = 3

_Handler = Callable[[dict[str, Any]], tuple[dict[str, Any], int]]


class BadRequest(Exception):
    """A request body Tavily would answer with 400."""


class TavilyServer(SandboxServer):
    name = "tavily"

    def __init__(self, world: World, *, api_keys: set[str] | None = None, per_minute: int = 1000,
                 crawl_per_minute: int = 100, credit_limit: int | None = None, seed: int = 0,
                 latency: LatencyModel | None = None, faults: FaultConfig | None = None) -> None:
        super().__init__(seed=seed, latency=latency, faults=faults)
        self.world = world
        self.api_keys = api_keys            # None: any "tvly-" key is accepted
        self.per_minute = per_minute
        self.crawl_per_minute = crawl_per_minute
        self.credit_limit = credit_limit    # per key; None: unlimited
        self.view = TavilyView(world)
        self.index = SearchIndex(world)
        self._request_ids = random.Random(f"tavily-request-ids:{seed}")
        self._windows: dict[tuple[str, str], RollingWindow] = {}
        self._calls: Counter[str] = Counter()
        self._credits: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()
        self._handlers: dict[str, _Handler] = {
            "search": self._search, "extract": self._extract, "crawl": self._crawl, "map": self._map,
        }

    # -- SandboxServer hooks -------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        for endpoint in self._handlers:
            app.router.add_post(f"/{endpoint}", self._endpoint(endpoint))
        app.router.add_get("/usage", self._usage)

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._lock:
            stats["calls"] = dict(self._calls)
            stats["credits"] = dict(self._credits)
            stats["rejections"] = dict(self._rejections)
        return stats

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._windows.clear()
            self._calls.clear()
            self._credits.clear()
            self._rejections.clear()

    def credits_used(self, api_key: str) -> int:
        with self._lock:
            return self._credits[api_key]

    # -- request pipeline: auth, rate limit, work, billing ---------------------------------------------------
    def _endpoint(self, endpoint: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._call(request, endpoint)
        return handle

    async def _call(self, request: web.Request, endpoint: str) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body must be JSON.")
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object.")
        key = _api_key(request, body)
        if key is None or not self._accepts(key):
            return self._reject(401, "Unauthorized: missing or invalid API key.")
        if not self._admit(key, "crawl" if endpoint == "crawl" else "default"):
            return self._reject(429, "Your request has been blocked due to excessive requests. "
                                     "Please reduce the rate of requests.")
        try:
            payload, credits = self._handlers[endpoint](body)
        except BadRequest as exc:
            return _error(400, str(exc))
        if not self._charge(key, credits):
            return self._reject(432, "This request exceeds your plan's set usage limit. "
                                     "Please upgrade your plan or contact support@tavily.com")
        with self._lock:
            self._calls[endpoint] += 1
            request_id = str(uuid.UUID(int=self._request_ids.getrandbits(128), version=4))
        payload["response_time"] = round(time.perf_counter() - started, 3)
        payload["request_id"] = request_id
        if body.get("include_usage"):
            payload["usage"] = {"credits": credits}
        return web.json_response(payload)

    def _accepts(self, key: str) -> bool:
        return key.startswith("tvly-") if self.api_keys is None else key in self.api_keys

    def _admit(self, key: str, bucket: str) -> bool:
        limit = self.crawl_per_minute if bucket == "crawl" else self.per_minute
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault((key, bucket), RollingWindow(RATE_WINDOW_S))
            if window.total(now) >= limit:
                return False
            window.add(now)
            return True

    def _charge(self, key: str, credits: int) -> bool:
        with self._lock:
            if self.credit_limit is not None and self._credits[key] + credits > self.credit_limit:
                return False
            self._credits[key] += credits
            return True

    def _reject(self, status: int, message: str) -> web.Response:
        with self._lock:
            self._rejections[str(status)] += 1
        return _error(status, message)

    async def _usage(self, request: web.Request) -> web.Response:
        key = _api_key(request, {})
        if key is None or not self._accepts(key):
            return self._reject(401, "Unauthorized: missing or invalid API key.")
        used = self.credits_used(key)
        return web.json_response({"key": {"usage": used, "limit": self.credit_limit},
                                  "account": {"current_plan": "Sandbox", "plan_usage": used,
                                              "plan_limit": self.credit_limit}})

    # -- endpoints -----------------------------------------------------------------------------------------
    def _search(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequest("query is required.")
        max_results = _int_param(body, "max_results", 5, 0, MAX_SEARCH_RESULTS)
        hits = self.index.search(query, _str_list(body, "include_domains"),
                                 _str_list(body, "exclude_domains"))[:max_results]
        raw_format = body.get("include_raw_content")
        results = []
        for score, site in hits:
            result: dict[str, Any] = {"title": site.pages["/"].title, "url": f"https://{site.domain}/",
                                      "content": site.description, "score": score, "raw_content": None}
            if raw_format:
                result["raw_content"] = self._raw_content(result["url"], "text" if raw_format == "text" else "markdown")
            if body.get("include_favicon"):
                result["favicon"] = f"https://{site.domain}/favicon.ico"
            results.append(result)
        answer = None
        if body.get("include_answer") and hits:
            top = hits[0][1]
            answer = f"{top.display_name} ({top.domain}) is {top.industry.phrase} in Singapore. {top.industry.pitch[0]}"
        payload = {"query": query, "answer": answer, "images": [], "follow_up_questions": None, "results": results}
        return payload, 2 if body.get("search_depth") == "advanced" else 1

    def _raw_content(self, url: str, output_format: str) -> str | None:
        try:
            return page_content(self.view.fetch(url), output_format)
        except FetchError:
            return None

    def _extract(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        urls = body.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise BadRequest("urls must be a URL or a non-empty list of URLs.")
        if len(urls) > MAX_EXTRACT_URLS:
            raise BadRequest(f"Max {MAX_EXTRACT_URLS} URLs are allowed.")
        results, failed = [], []
        for url in urls:
            try:
                fetched = self.view.fetch(url)
            except FetchError as exc:
                failed.append({"url": url, "error": str(exc)})
                continue
            result = self._page_result(fetched, body, focus=body.get("query"))
            result["url"] = url
            results.append(result)
        advanced = body.get("extract_depth") == "advanced"
        return {"results": results, "failed_results": failed}, _extract_credits(len(results), advanced)

    def _crawl(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        base_url, pages = self._traverse(body)
        results = [self._page_result(page, body, focus=body.get("instructions")) for page in pages]
        credits = (_map_credits(len(pages), bool(body.get("instructions")))
                   + _extract_credits(len(pages), body.get("extract_depth") == "advanced"))
        return {"base_url": base_url, "results": results}, credits

    def _map(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        base_url, pages = self._traverse(body)
        return ({"base_url": base_url, "results": [page.url for page in pages]},
                _map_credits(len(pages), bool(body.get("instructions"))))

    def _traverse(self, body: dict[str, Any]) -> tuple[str, list[Fetched]]:
        url = body.get("url")
        if not isinstance(url, str) or not url.strip():
            raise BadRequest("url is required.")
        rules = Traversal(
            max_depth=_int_param(body, "max_depth", 1, 1, 5), max_breadth=_int_param(body, "max_breadth", 20, 1, 500),
            limit=_int_param(body, "limit", 50, 1, 10_000),
            select_paths=_patterns(body, "select_paths"), exclude_paths=_patterns(body, "exclude_paths"),
            select_domains=_patterns(body, "select_domains"), exclude_domains=_patterns(body, "exclude_domains"),
            allow_external=bool(body.get("allow_external", False)))
        base_url = url.strip().split("://", 1)[-1].split("/", 1)[0].lower()
        try:
            return base_url, traverse(self.view, url.strip(), rules)
        except FetchError:
            return base_url, []

    def _page_result(self, fetched: Fetched, body: dict[str, Any], *, focus: Any) -> dict[str, Any]:
        output_format = "text" if body.get("format") == "text" else "markdown"
        content = page_content(fetched, output_format)
        if isinstance(focus, str) and focus.strip():
            content = relevant_chunks(content, focus,
                                      _int_param(body, "chunks_per_source", DEFAULT_CHUNKS_PER_SOURCE, 1, 5))
        images = [f"https://{fetched.site.domain}/img/logo.png"] if body.get("include_images") and fetched.html else []
        result: dict[str, Any] = {"url": fetched.url, "raw_content": content, "images": images}
        if body.get("include_favicon"):
            result["favicon"] = f"https://{fetched.site.domain}/favicon.ico"
        return result


# -- request parsing and pricing ---------------------------------------------------------------------------
def _api_key(request: web.Request, body: dict[str, Any]) -> str | None:
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        key: Any = authorization[7:].strip()
    else:
        key = body.get("api_key")
    return key if isinstance(key, str) and key else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"detail": {"error": message}}, status=status)


def _int_param(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer between {low} and {high}.")
    return value


def _str_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest(f"{name} must be a list of strings.")
    return value


def _patterns(body: dict[str, Any], name: str) -> tuple[re.Pattern[str], ...]:
    try:
        return tuple(re.compile(pattern) for pattern in _str_list(body, name))
    except re.error as exc:
        raise BadRequest(f"{name} holds an invalid regular expression: {exc}") from exc


def _extract_credits(successful_urls: int, advanced: bool) -> int:
    return math.ceil(successful_urls / 5) * (2 if advanced else 1)


def _map_credits(pages: int, with_instructions: bool) -> int:
    return math.ceil(pages / 10) * (2 if with_instructions else 1)

