"""Email addresses published on a page, in every form sites use to show or hide them.

Runs on the raw HTML (addresses hide in attributes, scripts and JSON-LD, not only in text).
Forms: plain text, HTML entities, ``mailto:`` links (with query strings and several
recipients), ``[at]``/``(at)``/``{at}`` with ``[dot]``-style obfuscation, Cloudflare email
protection (``data-cfemail`` and ``/cdn-cgi/l/email-protection#…``) and JSON-LD ``email``.
A bare " at " is deliberately not rewritten: in prose it produces false addresses.
"""
from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterable, Iterator
from email.utils import getaddresses
from typing import Any
from urllib.parse import parse_qsl, unquote

from email_validator import EmailNotValidError, validate_email
from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.crawl.pages import MAX_PARSE_CHARS, parse_html
from nightly_pipeline.crawl.signals.jsonld import jsonld_emails, jsonld_values
from nightly_pipeline.domain.web import EmailHit, classify_email, has_public_suffix

# How much a source tells about an address, richest first: structured data the company
# declared, a link meant to be clicked, a protected link, then text matches.
EMAIL_SOURCES: tuple[str, ...] = ("jsonld", "mailto", "cloudflare", "text", "obfuscated")
SOURCE_RANK = {source: rank for rank, source in enumerate(EMAIL_SOURCES)}
# Domains whose addresses are error trackers, code hosts or documentation examples.
JUNK_DOMAINS = frozenset(
    {
        "sentry.io", "wixpress.com", "sentry-next.wixpress.com", "noreply.github.com",
        "no-reply.github.com", "example.com", "example.org", "example.net", "domain.com",
        "yourdomain.com", "yourcompany.com", "company.com", "email.com", "mysite.com",
        "yoursite.com", "website.com",
    }
)
JUNK_LOCAL_PARTS = frozenset(
    {
        "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply",
        "mailer-daemon", "postmaster", "bounce", "bounces", "you", "your", "yourname",
        "your.name", "your-name", "youremail", "your.email", "name", "email", "user",
        "username", "someone", "john.doe", "johndoe", "jane.doe", "test",
    }
)
# Names that end like a file, not a mail domain (``logo@2x.png`` from srcset attributes).
FILE_LIKE_TLDS = frozenset(
    {
        "png", "jpg", "jpeg", "gif", "webp", "svg", "bmp", "ico", "tif", "tiff", "avif", "heic",
        "css", "js", "mjs", "json", "map", "mp4", "mov", "webm", "zip", "pdf", "woff", "woff2",
        "ttf", "eot", "php", "html", "htm", "asp", "aspx",
    }
)
MAX_LOCAL_PART_CHARS = 25

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LOCAL = r"[A-Za-z0-9][A-Za-z0-9._+-]*"
_PLAIN_EMAIL = re.compile(rf"(?<![\w.+%-])({_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,24}})\b")
_OBFUSCATED_AT = r"\s*(?:\[\s*at\s*\]|\(\s*at\s*\)|\{\s*at\s*\}|@)\s*"
_OBFUSCATED_DOT = r"(?:\s*(?:\[\s*dot\s*\]|\(\s*dot\s*\)|\{\s*dot\s*\})\s*|\.|\s+dot\s+)"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+%-])({_LOCAL}){_OBFUSCATED_AT}({_LABEL}(?:{_OBFUSCATED_DOT}{_LABEL})+)", re.IGNORECASE
)
_OBFUSCATED_DOT_TOKEN = re.compile(_OBFUSCATED_DOT, re.IGNORECASE)
_CLOUDFLARE_ATTRIBUTE = re.compile(r"""data-cfemail\s*=\s*["']?([0-9a-fA-F]+)""", re.IGNORECASE)
_CLOUDFLARE_HREF = re.compile(r"/cdn-cgi/l/email-protection#([0-9a-fA-F]+)", re.IGNORECASE)
# A mailto: URL anywhere (links, buttons, forms, data attributes, scripts, JSON-LD strings).
_MAILTO = re.compile(r"mailto:\s*([^\s\"'<>()\\]+)", re.IGNORECASE)
_MAILTO_RECIPIENT_KEYS = frozenset({"to", "cc", "bcc"})
# Percent-encoding applied twice (``%2540``) still hides an address; more layers than this is not a site.
_MAX_UNQUOTE_ROUNDS = 3
_JS_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")
_HEX_LIKE = re.compile(r"(?=[0-9a-f-]*\d)[0-9a-f-]{8,}")
_ASCII_LOCAL_PART = re.compile(r"[a-z0-9._+-]+")


def cloudflare_decode(hex_string: str) -> str | None:
    """Decode Cloudflare's email protection: the first byte is a key XORed into every following
    byte, and the bytes are UTF-8 (as Cloudflare's decoder reads them). None for anything that is
    not hex, has no payload, is not UTF-8 or decodes to control characters."""
    if len(hex_string) < 4 or len(hex_string) % 2:
        return None
    try:
        data = bytes.fromhex(hex_string)
        decoded = bytes(byte ^ data[0] for byte in data[1:]).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not decoded.isprintable() or any(char.isspace() for char in decoded):
        return None
    return decoded


def _decode_js_escape(match: re.Match[str]) -> str:
    return chr(int(match.group(1) or match.group(2), 16))


def _searchable_text(raw_html: str) -> str:
    return _JS_ESCAPE.sub(_decode_js_escape, html_lib.unescape(raw_html))


def _fully_unquoted(text: str) -> str:
    for _ in range(_MAX_UNQUOTE_ROUNDS):
        unquoted = unquote(text)
        if unquoted == text:
            break
        text = unquoted
    return text


def _address_list(text: str) -> Iterator[str]:
    """``"a@x.sg, Jane Tan <b@x.sg>; c@x.sg"`` → each address."""
    for _, address in getaddresses([text.replace(";", ",")]):
        if address.strip():
            yield address.strip()


def mailto_addresses(url: str) -> list[str]:
    """Every recipient of a ``mailto:`` URL: the path's, and ``to``, ``cc`` and ``bcc`` in the query;
    percent-encoding (even doubled) is undone, subject and body are ignored."""
    value = url.strip()
    if value[:7].lower() == "mailto:":
        value = value[7:]
    path, _, query = value.partition("?")
    found = list(_address_list(_fully_unquoted(path)))
    for key, recipients in parse_qsl(query.replace("&amp;", "&"), keep_blank_values=False):
        if key.strip().lower() in _MAILTO_RECIPIENT_KEYS:
            found.extend(_address_list(_fully_unquoted(recipients)))
    return found


def _mailto_recipients(tree: LexborHTMLParser, text: str) -> Iterator[str]:
    for anchor in tree.css("a[href], area[href]"):
        href = (anchor.attributes.get("href") or "").strip()
        if href[:7].lower() == "mailto:":
            yield from mailto_addresses(href)
    for match in _MAILTO.finditer(text):
        yield from mailto_addresses(match.group(1))


def _cloudflare_addresses(raw_html: str, text: str) -> Iterator[str]:
    # The raw HTML for attribute values as written; the unescaped text for entity-encoded hrefs.
    for source in (raw_html, text):
        for pattern in (_CLOUDFLARE_ATTRIBUTE, _CLOUDFLARE_HREF):
            for match in pattern.finditer(source):
                decoded = cloudflare_decode(match.group(1))
                if decoded:
                    yield decoded


def _obfuscated_addresses(text: str) -> Iterator[str]:
    for match in _OBFUSCATED_EMAIL.finditer(text):
        domain = _OBFUSCATED_DOT_TOKEN.sub(".", match.group(2))
        yield f"{match.group(1)}@{domain}"


def _candidates(raw_html: str, tree: LexborHTMLParser, jsonld: list[Any]) -> Iterator[tuple[str, str]]:
    raw_html = raw_html[:MAX_PARSE_CHARS]
    text = _searchable_text(raw_html)
    yield from ((address, "jsonld") for value in jsonld_emails(jsonld) for address in mailto_addresses(value))
    yield from ((address, "mailto") for address in _mailto_recipients(tree, text))
    yield from ((address, "cloudflare") for address in _cloudflare_addresses(raw_html, text))
    yield from ((match.group(1), "text") for match in _PLAIN_EMAIL.finditer(text))
    yield from ((address, "obfuscated") for address in _obfuscated_addresses(text))


def _domain_is(domain: str, listed: Iterable[str]) -> bool:
    return any(domain == entry or domain.endswith(f".{entry}") for entry in listed)


def _is_junk(local_part: str, domain: str) -> bool:
    tld = domain.rsplit(".", 1)[-1]
    return (
        len(local_part) > MAX_LOCAL_PART_CHARS
        or not _ASCII_LOCAL_PART.fullmatch(local_part)
        or _HEX_LIKE.fullmatch(local_part) is not None
        or local_part in JUNK_LOCAL_PARTS
        or tld in FILE_LIKE_TLDS
        or not has_public_suffix(domain)
        or _domain_is(domain, JUNK_DOMAINS)
    )


def normalize_email(candidate: str) -> str | None:
    """The lower-cased, validated address, or None for junk and invalid addresses."""
    address = candidate.strip().strip(".,;:<>()[]{}'\"").lower()
    local_part, at, domain = address.rpartition("@")
    if not at or _is_junk(local_part, domain):
        return None
    try:
        validated = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return None
    return validated.normalized.lower()


def prefer_richest(hits: Iterable[EmailHit]) -> list[EmailHit]:
    """One hit per address, from its richest source, in order of first appearance."""
    best: dict[str, EmailHit] = {}
    for hit in hits:
        current = best.get(hit.email)
        if current is None or SOURCE_RANK[hit.source] < SOURCE_RANK[current.source]:
            best[hit.email] = hit
    return list(best.values())


def emails_from_parsed(
    raw_html: str, tree: LexborHTMLParser, jsonld: list[Any], company_domain: str | None
) -> list[EmailHit]:
    hits = []
    for candidate, source in _candidates(raw_html, tree, jsonld):
        email = normalize_email(candidate)
        if email is not None:
            hits.append(classify_email(email, company_domain, source))
    return prefer_richest(hits)


def extract_emails(html: str, company_domain: str | None) -> list[EmailHit]:
    """Addresses on the page, validated, lower-cased, one hit per address.

    ``company_domain`` (URL or bare domain) sets ``on_company_domain`` by registrable domain,
    so ``acme.com.sg.evil.com`` does not count as ``acme.com.sg``.
    """
    tree = parse_html(html)
    return emails_from_parsed(html, tree, jsonld_values(tree), company_domain)
