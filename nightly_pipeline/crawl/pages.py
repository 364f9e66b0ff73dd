"""Link discovery and key-page selection on an already-fetched home page.

Everything here is pure: no network, no clock. The crawler fetches the home page, asks
:func:`select_key_pages` for the site's key pages (one each of about, contact, team, pricing,
careers, case studies, products/services), and uses
:func:`is_probably_binary_url` / :func:`is_html_content_type` / :func:`sniff_html` to avoid
downloading or parsing anything that is not an HTML page.
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from nightly_pipeline.domain.web import registrable_domain

# Parsing cost grows with the DOM; a company page is far below this, a runaway page is cut.
MAX_PARSE_CHARS = 3_000_000

HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_SNIFF = re.compile(
    rb"\s*(?:<!doctype\s+html|<html|<head|<body|<!--|<meta|<title|<div|<p\b)", re.IGNORECASE
)

# Extensions of resources that are never an HTML page worth parsing for company signals.
NON_HTML_EXTENSIONS = frozenset(
    {
        # documents
        "pdf", "doc", "docx", "xls", "xlsx", "xlsm", "ppt", "pptx", "pps", "ppsx", "odt", "ods",
        "odp", "rtf", "csv", "txt", "epub", "ics", "vcf",
        # images
        "jpg", "jpeg", "png", "gif", "webp", "svg", "bmp", "ico", "tif", "tiff", "avif", "heic",
        "heif", "psd", "eps", "ai",
        # audio and video
        "mp3", "wav", "ogg", "oga", "m4a", "aac", "flac", "mp4", "m4v", "mov", "avi", "wmv",
        "webm", "mkv", "flv", "mpg", "mpeg", "3gp", "swf",
        # archives and installers
        "zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "xz", "exe", "dmg", "pkg", "apk", "msi",
        "iso", "bin", "deb", "rpm", "jar",
        # web assets and feeds
        "css", "js", "mjs", "map", "json", "xml", "rss", "atom", "woff", "woff2", "ttf", "otf",
        "eot",
    }
)

# Path segments of pages that multiply without adding company facts (archives, filters,
# sessions, shops) or that need a login.
TRAP_SEGMENTS = frozenset(
    {
        "tag", "tags", "category", "categories", "calendar", "events-calendar", "archive",
        "archives", "author", "authors", "login", "log-in", "signin", "sign-in", "signup",
        "sign-up", "register", "logout", "log-out", "account", "my-account", "myaccount",
        "cart", "checkout", "basket", "wishlist", "search", "feed", "rss", "wp-admin",
        "wp-login.php", "wp-json", "xmlrpc.php", "cdn-cgi", "admin", "print", "share",
        "compare", "lost-password", "password-reset", "forgot-password", "ical",
    }
)
TRAP_QUERY_KEYS = frozenset(
    {
        "page", "paged", "sort", "orderby", "order", "filter", "date", "day", "month", "year",
        "replytocom", "share", "add-to-cart", "add_to_cart", "s", "q", "search", "ical",
        "tribe-bar-date", "eventdisplay", "outlook-ical", "action", "redirect_to", "returnurl",
        "login", "session", "sessionid", "sid", "phpsessid", "calendar",
    }
)
_PAGINATION_PATH = re.compile(r"/page/\d+(?:/|$)")
_DATE_ARCHIVE_PATH = re.compile(r"/(?:19|20)\d{2}/(?:0?[1-9]|1[0-2])(?:/|$)")

# Kinds in the order they are worth a fetch when the budget is tight.
KIND_KEYWORDS: dict[str, tuple[str, ...]] = {
    "about": (
        "about", "about-us", "aboutus", "who-we-are", "our-story", "company", "our-company",
        "company-profile", "corporate-profile", "profile", "overview",
    ),
    "contact": (
        "contact", "contact-us", "contactus", "contacts", "get-in-touch", "enquiry", "enquiries",
        "inquiry", "reach-us", "find-us",
    ),
    "team": (
        "team", "our-team", "the-team", "people", "our-people", "leadership", "management",
        "board", "board-of-directors", "directors", "founders", "staff",
    ),
    "pricing": ("pricing", "prices", "price", "plans", "packages", "rates", "fees"),
    "careers": (
        "careers", "career", "jobs", "job", "vacancies", "vacancy", "join-us", "join-our-team",
        "hiring", "work-with-us", "openings",
    ),
    "case_studies": (
        "case-studies", "case-study", "casestudies", "customers", "clients", "our-clients",
        "success-stories", "portfolio", "testimonials", "our-work",
    ),
    "products": (
        "products", "product", "services", "service", "solutions", "what-we-do", "offerings",
        "capabilities",
    ),
    "news": (
        "news", "blog", "blogs", "insights", "press", "media", "newsroom", "articles", "updates",
        "press-releases",
    ),
}
KIND_PRIORITY: tuple[str, ...] = tuple(KIND_KEYWORDS)
# The kinds a crawl fetches: pages that describe the company. News and blog pages are classified (a
# post's date is a signal) but are listings and articles, not key pages.
KEY_PAGE_KINDS: tuple[str, ...] = tuple(kind for kind in KIND_PRIORITY if kind != "news")
# A key page is named by its link text or its own last path segment; a match on a parent folder only
# ("/products/item-7", "/services/freight") is a detail page under a key page.
KEY_PAGE_MIN_STRENGTH = 3.0

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_WHITESPACE = re.compile(r"\s+")
_FOLLOWABLE_SCHEMES = ("http", "https")
_EMPTY_URL = urlsplit("")


@dataclass(frozen=True, slots=True)
class Link:
    """An absolute, fragment-free link and the text a visitor sees for it."""

    url: str
    text: str


def site_key(url_or_host: str) -> str | None:
    """What the crawl treats as one site: the registrable domain, or the host itself where there is
    none (an IP address, ``localhost``), so that such a host is still its own site and not one
    with every other host that has no domain. None when there is no host at all."""
    domain = registrable_domain(url_or_host)
    if domain is not None:
        return domain
    value = url_or_host.strip()
    host = _split(value if "//" in value else f"//{value}").hostname
    return host.rstrip(".").lower() if host else None


def parse_html(html: str) -> LexborHTMLParser:
    """Parse ``html`` with lexbor, cutting a runaway document to :data:`MAX_PARSE_CHARS`."""
    return LexborHTMLParser(html[:MAX_PARSE_CHARS])


def is_probably_binary_url(url: str) -> bool:
    """True when the URL's path ends in the extension of a non-HTML resource."""
    path = _split(url).path
    extension = posixpath.splitext(path.rstrip("/"))[1].lstrip(".").lower()
    return extension in NON_HTML_EXTENSIONS


def is_html_content_type(content_type: str | None) -> bool:
    """True for ``text/html`` and ``application/xhtml+xml`` (parameters ignored).

    A missing header is not HTML by itself: callers sniff the body with :func:`sniff_html`.
    """
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in HTML_MEDIA_TYPES


def sniff_html(body_prefix: bytes) -> bool:
    """Guess from the first bytes whether a response without a content type is HTML."""
    return bool(_HTML_SNIFF.match(body_prefix.removeprefix(b"\xef\xbb\xbf")[:1024]))


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _anchor_text(anchor: LexborNode) -> str:
    text = _collapse(anchor.text(separator=" "))
    if text:
        return text
    for attribute in ("aria-label", "title"):
        label = anchor.attributes.get(attribute)
        if label:
            return _collapse(label)
    image = anchor.css_first("img[alt]")
    return _collapse(image.attributes.get("alt") or "") if image is not None else ""


def _document_base(base_url: str, tree: LexborHTMLParser) -> str:
    base = tree.css_first("base[href]")
    href = (base.attributes.get("href") or "").strip() if base is not None else ""
    return (absolute_url(base_url, href) if href else None) or base_url


def _split(url: str) -> SplitResult:
    # urlsplit raises only for malformed IPv6 hosts; such a URL has no usable parts.
    try:
        return urlsplit(url)
    except ValueError:
        return _EMPTY_URL


def absolute_url(base_url: str, href: str) -> str | None:
    """``href`` resolved against ``base_url`` and normalised, or None when unusable."""
    try:
        joined = urljoin(base_url, href.strip())
    except ValueError:
        return None
    return normalize_url(joined)


def normalize_url(url: str) -> str | None:
    """Lower-case scheme and host, drop the fragment, give an empty path ``/``.

    Returns None for anything that is not an http(s) URL with a host.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _FOLLOWABLE_SCHEMES or not parts.hostname:
        return None
    netloc = parts.hostname.lower()
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _dedupe_key(url: str) -> str:
    parts = _split(url)
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _raw_links(base_url: str, tree: LexborHTMLParser) -> Iterator[Link]:
    document_base = _document_base(base_url, tree)
    for anchor in tree.css("a[href], area[href]"):
        href = (anchor.attributes.get("href") or "").strip()
        if not href or href.startswith("#"):
            continue
        url = absolute_url(document_base, href)
        if url is not None:
            yield Link(url=url, text=_anchor_text(anchor))


def discover_links(base_url: str, html: str, *, same_site: bool = True) -> list[Link]:
    """Links of a page: absolute, fragment-stripped, deduplicated, in document order.

    Only http(s) links survive (no ``mailto:``, ``tel:``, ``javascript:``). With
    ``same_site`` (the default) only links on the base URL's registrable domain are kept.
    A URL seen first without text takes the text of a later duplicate.
    """
    site = site_key(base_url)
    found: dict[str, Link] = {}
    for link in _raw_links(base_url, parse_html(html)):
        if same_site and site_key(link.url) != site:
            continue
        key = _dedupe_key(link.url)
        previous = found.get(key)
        if previous is None:
            found[key] = link
        elif not previous.text and link.text:
            found[key] = Link(url=previous.url, text=link.text)
    return list(found.values())


def _slug(text: str) -> str:
    return _NON_ALNUM.sub("-", text.lower()).strip("-")


def _mentions(slug: str, keyword: str) -> bool:
    return f"-{keyword}-" in f"-{slug}-"


def _path_segments(url: str) -> list[str]:
    path = _split(url).path
    segments = [segment for segment in path.split("/") if segment]
    if segments:
        # "about-us.html" names the same page as "about-us".
        segments[-1] = posixpath.splitext(segments[-1])[0] or segments[-1]
    return [_slug(segment) for segment in segments]


def _kind_strength(kind: str, segments: list[str], text_slug: str) -> float:
    keywords = KIND_KEYWORDS[kind]
    strength = 0.0
    if text_slug and any(_mentions(text_slug, keyword) for keyword in keywords):
        strength += 3.0
    if segments and any(_mentions(segments[-1], keyword) for keyword in keywords):
        strength += 3.0
    elif any(_mentions(segment, keyword) for segment in segments[:-1] for keyword in keywords):
        strength += 1.0
    return strength


def _classify(url: str, link_text: str) -> tuple[str, float] | None:
    segments = _path_segments(url)
    text_slug = _slug(link_text)
    best: tuple[str, float] | None = None
    for kind in KIND_PRIORITY:
        strength = _kind_strength(kind, segments, text_slug)
        if strength > 0 and (best is None or strength > best[1]):
            best = (kind, strength)
    return best


def page_kind(url: str, link_text: str = "") -> str | None:
    """The kind of page a URL (and the text of a link to it) points at.

    One of ``about``, ``contact``, ``team``, ``pricing``, ``careers``, ``case_studies``,
    ``products``, ``news``; ``home`` for the site root; None when nothing matches.
    """
    classified = _classify(url, link_text)
    if classified is not None:
        return classified[0]
    return "home" if _split(url).netloc and not _path_segments(url) else None


def is_trap_url(url: str) -> bool:
    """True for calendar, tag, pagination, date-archive, login, cart and search-like URLs."""
    parts = _split(url)
    path = parts.path.lower()
    if _PAGINATION_PATH.search(path) or _DATE_ARCHIVE_PATH.search(path):
        return True
    if any(segment in TRAP_SEGMENTS for segment in path.split("/")):
        return True
    return any(key.lower() in TRAP_QUERY_KEYS for key, _ in parse_qsl(parts.query, keep_blank_values=True))


def _link_score(url: str, strength: float) -> float:
    depth = len(_path_segments(url))
    # Shallow, query-free URLs are the canonical pages; deep ones are usually detail pages.
    penalty = 0.5 * max(0, depth - 1) + (1.0 if _split(url).query else 0.0)
    return strength - penalty


@dataclass(frozen=True, slots=True)
class _Candidate:
    url: str
    kind: str
    strength: float
    score: float
    position: int


def _candidates(base_url: str, html: str) -> list[_Candidate]:
    home_key = _dedupe_key(normalize_url(base_url) or base_url)
    candidates = []
    for position, link in enumerate(discover_links(base_url, html)):
        if _dedupe_key(link.url) == home_key:
            continue
        if is_probably_binary_url(link.url) or is_trap_url(link.url):
            continue
        classified = _classify(link.url, link.text)
        if classified is None:
            continue
        kind, strength = classified
        candidates.append(_Candidate(link.url, kind, strength, _link_score(link.url, strength), position))
    return candidates


def select_key_pages(base_url: str, html: str, max_pages: int) -> list[str]:
    """The home page's key pages: the best same-site link of each key kind, at most ``max_pages``.

    Kinds come in :data:`KEY_PAGE_KINDS` order, one page each. A site with fewer key pages gets
    fewer requests: the budget is never filled with other links (product detail pages, listings,
    news). Media, documents, trap URLs and other domains are never chosen; neither is the home page.
    """
    if max_pages <= 0:
        return []
    key_links = [candidate for candidate in _candidates(base_url, html)
                 if candidate.kind in KEY_PAGE_KINDS and candidate.strength >= KEY_PAGE_MIN_STRENGTH]
    best_per_kind: dict[str, _Candidate] = {}
    for candidate in sorted(key_links, key=lambda c: (-c.score, c.position)):
        best_per_kind.setdefault(candidate.kind, candidate)
    return [best_per_kind[kind].url for kind in KEY_PAGE_KINDS if kind in best_per_kind][:max_pages]
