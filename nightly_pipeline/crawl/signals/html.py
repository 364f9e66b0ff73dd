"""Decoding, page metadata, readable text and social profile links of one HTML page."""
from __future__ import annotations

import codecs
import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.crawl.pages import absolute_url, parse_html
from nightly_pipeline.domain.web import registrable_domain

# Bytes scanned for <meta charset>; browsers use 1024, authors sometimes put it later.
_META_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# WHATWG Encoding: these labels mean windows-1252 on the web (and gb2312 means gbk).
_WEB_ENCODING_ALIASES = {"ascii": "cp1252", "iso8859-1": "cp1252", "latin-1": "cp1252", "gb2312": "gbk"}

_INVISIBLE_TAGS = ["script", "style", "noscript", "svg", "template", "iframe"]
# Navigation, header and footer repeat on every page and say little about the company.
_BOILERPLATE_TAGS = ["nav", "footer", "header"]
_BLOCK_SELECTOR = (
    "p, div, section, article, main, aside, h1, h2, h3, h4, h5, h6, li, dt, dd, tr, td, th,"
    " blockquote, pre, address, figcaption, br, hr, table, ul, ol, dl, form, fieldset"
)
# A private-use code point, which real page text practically never contains.
_BLOCK_MARK = "\ue000"


def _web_codec(label: str) -> str | None:
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    return _WEB_ENCODING_ALIASES.get(name, name)


def _header_charset(content_type: str | None) -> str | None:
    match = _HEADER_CHARSET.search(content_type or "")
    return _web_codec(match.group(1)) if match else None


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:_META_PRESCAN_BYTES])
    if not match:
        return None
    codec = _web_codec(match.group(1).decode("ascii", "ignore"))
    # A meta tag readable as ASCII cannot be in UTF-16, so the label is wrong (WHATWG rule).
    if codec is not None and codec.startswith("utf-16"):
        return "utf-8"
    return codec


def decode_html(body: bytes, content_type: str | None) -> str:
    """Decode an HTML body to text.

    A byte-order mark wins (as in browsers), then the ``charset`` of the Content-Type header,
    then ``<meta charset>`` / ``http-equiv``, then strict UTF-8, then windows-1252 (what a
    page without a declared charset almost always is when it is not UTF-8).
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(codec, errors="replace")
    declared = _header_charset(content_type) or _meta_charset(body)
    if declared is not None:
        return body.decode(declared, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


@dataclass(frozen=True, slots=True)
class PageMeta:
    title: str | None
    description: str | None
    language: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def _meta_content(tree: LexborHTMLParser, selector: str) -> str | None:
    for node in tree.css(selector):
        content = collapse_whitespace(node.attributes.get("content") or "")
        if content:
            return content
    return None


def _title(tree: LexborHTMLParser) -> str | None:
    node = tree.css_first("title")
    title = collapse_whitespace(node.text()) if node is not None else ""
    return title or _meta_content(tree, 'meta[property="og:title" i], meta[name="og:title" i]')


def _language(tree: LexborHTMLParser) -> str | None:
    html_node = tree.css_first("html")
    lang = (html_node.attributes.get("lang") or "").strip() if html_node is not None else ""
    if lang:
        return lang
    declared = _meta_content(tree, 'meta[http-equiv="content-language" i]')
    if declared:
        return declared.split(",", 1)[0].strip()
    locale = _meta_content(tree, 'meta[property="og:locale" i]')
    return locale.replace("_", "-") if locale else None


def page_meta_from_tree(tree: LexborHTMLParser) -> PageMeta:
    description = _meta_content(tree, 'meta[name="description" i]') or _meta_content(
        tree, 'meta[property="og:description" i], meta[name="og:description" i]'
    )
    return PageMeta(title=_title(tree), description=description, language=_language(tree))


def extract_page_meta(html: str) -> PageMeta:
    """Title, description and language; Open Graph tags stand in for missing ones."""
    return page_meta_from_tree(parse_html(html))


def _mark_blocks(tree: LexborHTMLParser) -> None:
    # Lexbor joins text nodes without separators; a marker around each block keeps
    # headings, paragraphs and list items apart without splitting inline markup.
    for node in tree.css(_BLOCK_SELECTOR):
        node.insert_before(_BLOCK_MARK)
        node.insert_after(_BLOCK_MARK)


def _block_text(tree: LexborHTMLParser) -> str:
    root = tree.body or tree.root
    text = root.text() if root is not None else ""
    # Source line breaks are whitespace in HTML; only block boundaries become new lines.
    blocks = (" ".join(block.split()) for block in text.split(_BLOCK_MARK))
    return "\n".join(block for block in blocks if block)


def visible_text_from_tree(tree: LexborHTMLParser) -> str:
    """All visible text, header and footer included (where phone numbers live); mutates ``tree``."""
    tree.strip_tags(_INVISIBLE_TAGS, recursive=True)
    _mark_blocks(tree)
    return _block_text(tree)


def visible_and_main_text(tree: LexborHTMLParser) -> tuple[str, str]:
    """:func:`visible_text_from_tree` and :func:`main_text` from one pass; mutates ``tree``."""
    visible = visible_text_from_tree(tree)
    tree.strip_tags(_BOILERPLATE_TAGS, recursive=True)
    return visible, _block_text(tree)


def main_text(html: str) -> str:
    """The page's readable text, one block (heading, paragraph, list item) per line.

    Scripts, styles, navigation, header, footer and other non-content subtrees are dropped.
    """
    return visible_and_main_text(parse_html(html))[1]


# Network -> registrable domains it is served from.
SOCIAL_DOMAINS: dict[str, tuple[str, ...]] = {
    "linkedin": ("linkedin.com",),
    "facebook": ("facebook.com", "fb.com", "fb.me"),
    "instagram": ("instagram.com",),
    "twitter": ("twitter.com", "x.com"),
    "youtube": ("youtube.com", "youtu.be"),
    "tiktok": ("tiktok.com",),
}
# First path segments that are share buttons, tracking pixels or content, not a profile.
_SOCIAL_NON_PROFILE_SEGMENTS = frozenset(
    {
        "sharer", "sharer.php", "share", "share.php", "sharearticle", "intent", "tr", "plugins",
        "dialog", "login", "login.php", "home", "hashtag", "search", "watch", "embed", "p",
        "reel", "reels", "status", "policies", "legal", "privacy",
        "help", "about", "explore", "feed", "signup", "i", "video",
    }
)
# Paths that point at an organisation rather than a person or a post rank first.
_SOCIAL_PREFERRED_PREFIXES = ("/company/", "/school/", "/showcase/", "/channel/", "/c/", "/@", "/user/", "/pages/")


def _social_network(url: str) -> str | None:
    domain = registrable_domain(url)
    for network, domains in SOCIAL_DOMAINS.items():
        if domain in domains:
            return network
    return None


def _is_profile_path(path: str) -> bool:
    segments = [segment for segment in path.lower().split("/") if segment]
    return bool(segments) and segments[0] not in _SOCIAL_NON_PROFILE_SEGMENTS


def _canonical_profile_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("https", parts.netloc, parts.path.rstrip("/"), "", ""))


def social_links_from_tree(base_url: str, tree: LexborHTMLParser) -> dict[str, str]:
    best: dict[str, tuple[bool, str]] = {}
    for anchor in tree.css("a[href]"):
        url = absolute_url(base_url, anchor.attributes.get("href") or "")
        if url is None:
            continue
        network = _social_network(url)
        path = urlsplit(url).path
        if network is None or not _is_profile_path(path):
            continue
        preferred = path.lower().startswith(_SOCIAL_PREFERRED_PREFIXES)
        current = best.get(network)
        if current is None or (preferred and not current[0]):
            best[network] = (preferred, _canonical_profile_url(url))
    return {network: url for network, (_, url) in best.items()}


def extract_social_links(base_url: str, html: str) -> dict[str, str]:
    """Profile URLs by network: ``linkedin``, ``facebook``, ``instagram``, ``twitter`` (also
    x.com), ``youtube``, ``tiktok``.

    Share buttons, posts and tracking links are skipped; organisation pages (LinkedIn
    ``/company/``, YouTube channels) beat other links of the same network. URLs come back
    as https without query or fragment.
    """
    return social_links_from_tree(base_url, parse_html(html))
