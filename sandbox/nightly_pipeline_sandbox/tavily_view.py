"""The simulated web as Tavily's own crawler sees it: rendered pages (JavaScript run), markdown or text
extraction, a name/keyword search index and the breadth-first traversal behind ``/crawl`` and ``/map``.

Tavily renders JavaScript, so the JS-only hard-case site has real content here while the web proxy serves
only its empty shell. Pages that never answer, loop, or would not decode are failures, as for any crawler.
"""
from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from nightly_pipeline_sandbox.world import HARD_CASE_PATHS, REDIRECT_LOOP_PATHS, Site, World, strip_legal_suffix

MAX_REDIRECTS = 5
_SKIPPED_TAGS = {"script", "style", "noscript", "template", "head", "svg", "iframe"}
_BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "nav", "main", "ul", "ol", "address",
               "blockquote", "table", "tr", "td", "th", "form", "figure", "aside", "body"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_NOT_PAGES = re.compile(r"\.(png|jpe?g|gif|svg|webp|ico|css|js|zip|gz|mp4|mp3|woff2?)$", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z0-9&]+")
_STOPWORDS = frozenset({"pte", "ltd", "private", "limited", "llp", "the", "and", "of", "in", "for", "a", "an", "to",
                        "company", "singapore", "sg", "website", "official", "site", "homepage", "com", "www"})


@dataclasses.dataclass(frozen=True)
class Fetched:
    url: str               # canonical https URL of the page
    site: Site
    html: str | None       # None for documents (PDF)
    document_text: str = ""


class FetchError(Exception):
    """Why Tavily could not read a URL (goes into ``failed_results``)."""


def tokens(text: str) -> list[str]:
    return [token for token in _TOKEN.findall(text.lower()) if token not in _STOPWORDS]


class TavilyView:
    def __init__(self, world: World) -> None:
        self.world = world

    def fetch(self, url: str) -> Fetched:
        """The page at ``url`` after redirects, as a JavaScript-running crawler reads it."""
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"Invalid URL: {url}")
        host, path, query = parts.hostname, parts.path or "/", parts.query
        for _ in range(MAX_REDIRECTS + 1):
            site = self.world.site_at(host)
            if site is None:
                raise FetchError(f"Could not resolve host: {host}")
            redirect = _redirect(site, path)
            if redirect is None:
                return self._read(site, host, path, query)
            host, path, query = redirect
        raise FetchError("Too many redirects")

    def _read(self, site: Site, host: str, path: str, query: str) -> Fetched:
        canonical = f"https://{host}{path}" + (f"?{query}" if query else "")
        case_path = HARD_CASE_PATHS.get(site.hard_case or "")
        if path == case_path and site.hard_case == "hang":
            raise FetchError("Timeout: the page did not respond")
        if path == case_path and site.hard_case == "huge_page":
            raise FetchError("Page exceeds the maximum content size")
        if path == case_path and site.hard_case == "gzip_bomb":
            raise FetchError("Failed to decode the response body")
        if path == case_path and site.hard_case == "pdf_as_html":
            return Fetched(canonical, site, None, _brochure_text(site))
        page = site.page(path, dict(parse_qsl(query)))
        if page is not None:
            return Fetched(canonical, site, page.html)
        asset = site.asset(path)
        if asset is not None and asset.content_type == "application/pdf":
            return Fetched(canonical, site, None, asset.text)
        if asset is not None:
            raise FetchError(f"Unsupported content type: {asset.content_type}")
        raise FetchError("HTTP 404: page not found")


def _redirect(site: Site, path: str) -> tuple[str, str, str] | None:
    if site.hard_case == "redirect_loop" and path in REDIRECT_LOOP_PATHS:
        first, second = REDIRECT_LOOP_PATHS
        return site.domain, second if path == first else first, ""
    if site.hard_case == "redirect_offsite" and path == "/" and site.redirect_target:
        return site.redirect_target, "/", ""
    return None


def _brochure_text(site: Site) -> str:
    asset = site.asset("/assets/brochure.pdf")
    return asset.text if asset is not None else ""


# -- extraction --------------------------------------------------------------------------------------------
class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.inline: list[str] = []

    def end_line(self, prefix: str = "") -> None:
        text = " ".join("".join(self.inline).split())
        if text:
            self.lines.append(prefix + text)
        self.inline = []


def page_content(fetched: Fetched, output_format: str = "markdown") -> str:
    """``raw_content`` for a page: markdown (headings, list items, absolute links) or plain text."""
    if fetched.html is None:
        return fetched.document_text
    tree = LexborHTMLParser(fetched.html)
    writer = _Writer()
    if tree.body is not None:
        _walk(tree.body, writer, fetched.url, output_format == "markdown")
    writer.end_line()
    return "\n".join(writer.lines)


def _walk(node: LexborNode, writer: _Writer, base_url: str, markdown: bool) -> None:
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            writer.inline.append(child.text_content or "")
        elif tag in _SKIPPED_TAGS:
            continue
        elif tag in _HEADINGS:
            writer.end_line()
            _walk(child, writer, base_url, markdown)
            writer.end_line("#" * _HEADINGS[tag] + " " if markdown else "")
        elif tag == "li":
            writer.end_line()
            _walk(child, writer, base_url, markdown)
            writer.end_line("- " if markdown else "")
        elif tag == "a" and markdown and child.attributes.get("href"):
            label = " ".join(child.text(deep=True).split())
            writer.inline.append(f" [{label}]({urljoin(base_url, child.attributes['href'] or '')}) ")
        elif tag == "br":
            writer.end_line()
        elif tag in _BLOCK_TAGS:
            writer.end_line()
            _walk(child, writer, base_url, markdown)
            writer.end_line()
        else:
            _walk(child, writer, base_url, markdown)


def relevant_chunks(content: str, query: str, count: int, chunk_chars: int = 500) -> str:
    """The ``count`` chunks of ``content`` sharing most words with ``query``, in page order."""
    chunks: list[str] = []
    for line in content.splitlines():
        if chunks and len(chunks[-1]) + len(line) < chunk_chars:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    wanted = set(tokens(query))
    ranked = sorted(range(len(chunks)), key=lambda i: (-len(wanted & set(tokens(chunks[i]))), i))[:count]
    return " [...] ".join(chunks[i] for i in sorted(ranked))


def page_links(fetched: Fetched) -> list[str]:
    """Absolute http(s) links of a page, without fragments, images or scripts, in document order."""
    if fetched.html is None:
        return []
    links = []
    for anchor in LexborHTMLParser(fetched.html).css("a[href]"):
        target = urljoin(fetched.url, anchor.attributes.get("href") or "").split("#", 1)[0]
        parts = urlsplit(target)
        if parts.scheme in ("http", "https") and parts.hostname and not _NOT_PAGES.search(parts.path):
            links.append(target)
    return links


# -- search ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Entry:
    site: Site
    name: frozenset[str]       # words of the company name, legal suffix dropped
    name_joined: str           # "pearlapps" for "Pearl Apps", as people type domains
    domain: frozenset[str]     # words of the domain label, and the label itself
    topic: frozenset[str]      # keywords, industry words and offerings


class SearchIndex:
    """Ranks sites by how well a query names the company (name, then domain) or its trade (keywords)."""

    def __init__(self, world: World) -> None:
        self._entries = [self._entry(site) for site in world.sites.values()]

    @staticmethod
    def _entry(site: Site) -> _Entry:
        name = tokens(strip_legal_suffix(site.entity_name))
        label = site.domain.split(".")[0]
        topic_text = " ".join((*site.keywords, *site.industry.words, site.industry.phrase, *site.industry.offerings))
        return _Entry(site, frozenset(name), "".join(name),
                      frozenset(label.split("-")) | {label.replace("-", "")}, frozenset(tokens(topic_text)))

    def search(self, query: str, include_domains: Sequence[str] = (),
               exclude_domains: Sequence[str] = ()) -> list[tuple[float, Site]]:
        """(score in [0, 1], site) for every site the query matches, best first."""
        wanted = tokens(query)
        if not wanted:
            return []
        hits = [(score, entry.site) for entry in self._entries
                if _domain_allowed(entry.site.domain, include_domains, exclude_domains)
                and (score := _score(entry, wanted)) > 0]
        hits.sort(key=lambda hit: (-hit[0], hit[1].domain))
        return hits


def _score(entry: _Entry, wanted: list[str]) -> float:
    """70% how much of the query the site explains, 30% how much of the company name the query gives."""
    joined = "".join(wanted)
    named = 1.0 if joined == entry.name_joined else len(entry.name & set(wanted)) / max(1, len(entry.name))
    if joined == entry.name_joined or joined in entry.domain:
        coverage = 1.0
    else:
        weights = [3 if t in entry.name or t == entry.name_joined else 2 if t in entry.domain
                   else 1 if t in entry.topic else 0 for t in wanted]
        coverage = sum(weights) / (3 * len(wanted))
    return round(0.7 * coverage + 0.3 * named, 4) if coverage else 0.0


def _domain_allowed(domain: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    def matches(pattern: str) -> bool:
        wanted = pattern.strip().lower().removeprefix("https://").removeprefix("http://").split("/")[0]
        wanted = wanted.removeprefix("www.")
        return domain == wanted or domain.endswith("." + wanted)
    if include and not any(matches(p) for p in include):
        return False
    return not any(matches(p) for p in exclude)


# -- traversal for /crawl and /map -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Traversal:
    max_depth: int = 1
    max_breadth: int = 20
    limit: int = 50
    select_paths: tuple[re.Pattern[str], ...] = ()
    exclude_paths: tuple[re.Pattern[str], ...] = ()
    select_domains: tuple[re.Pattern[str], ...] = ()
    exclude_domains: tuple[re.Pattern[str], ...] = ()
    allow_external: bool = False

    def in_scope(self, url: str, root: Site, world: World) -> bool:
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path or "/"
        if not self.allow_external and world.site_at(host) is not root:
            return False
        if self.select_domains and not any(p.search(host) for p in self.select_domains):
            return False
        if any(p.search(host) for p in self.exclude_domains):
            return False
        if self.select_paths and not any(p.search(path) for p in self.select_paths):
            return False
        return not any(p.search(path) for p in self.exclude_paths)


def traverse(view: TavilyView, start_url: str, rules: Traversal) -> list[Fetched]:
    """Breadth-first from ``start_url``: at most ``max_breadth`` new links per page, ``limit`` pages."""
    root = view.fetch(start_url)
    pages: list[Fetched] = []
    seen = {root.url}
    queue: collections.deque[tuple[Fetched, int]] = collections.deque([(root, 0)])
    while queue and len(pages) < rules.limit:
        page, depth = queue.popleft()
        if page is not root or _root_selected(page, rules):
            pages.append(page)
        if depth >= rules.max_depth:
            continue
        added = 0
        for link in page_links(page):
            if added >= rules.max_breadth:
                break
            if link in seen or not rules.in_scope(link, root.site, view.world):
                continue
            seen.add(link)
            try:
                queue.append((view.fetch(link), depth + 1))
            except FetchError:
                continue
            added += 1
    return pages


def _root_selected(root: Fetched, rules: Traversal) -> bool:
    path = urlsplit(root.url).path or "/"
    if rules.select_paths and not any(p.search(path) for p in rules.select_paths):
        return False
    return not any(p.search(path) for p in rules.exclude_paths)
