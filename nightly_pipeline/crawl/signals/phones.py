"""Phone numbers on a page, in E.164, read with Singapore as the default region."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

import phonenumbers
from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.crawl.pages import parse_html
from nightly_pipeline.crawl.signals.html import visible_text_from_tree
from nightly_pipeline.domain.web import DEFAULT_PHONE_REGION, normalize_phone

# Characters before a number that may hold its label ("Fax:", "Tel / Fax").
_LABEL_WINDOW_CHARS = 20
_DIGIT = re.compile(r"\d")
_HTML_HINT = re.compile(r"<[a-zA-Z!/]")


def _is_calendar_date(digits: str) -> bool:
    # Bare eight-digit runs such as 31122023 pass as Singapore VoIP numbers (3xxx xxxx).
    for layout in ("%d%m%Y", "%Y%m%d"):
        try:
            parsed = dt.datetime.strptime(digits, layout)
        except ValueError:
            continue
        if 1900 <= parsed.year <= 2099:
            return True
    return False


def _is_fax(text: str, start: int) -> bool:
    window = text[max(0, start - _LABEL_WINDOW_CHARS):start]
    label = _DIGIT.split(window)[-1]
    return "fax" in label.lower() and "tel" not in label.lower()


def _is_embedded(text: str, start: int, end: int) -> bool:
    # A number glued to letters or digits is part of an identifier (a UEN like 53312345K).
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return before.isalnum() or after.isalnum()


def _text_numbers(text: str) -> Iterator[str]:
    matcher = phonenumbers.PhoneNumberMatcher(text, DEFAULT_PHONE_REGION, leniency=phonenumbers.Leniency.VALID)
    for match in matcher:
        raw = match.raw_string
        if raw.isdigit() and _is_calendar_date(raw):
            continue
        if _is_embedded(text, match.start, match.end) or _is_fax(text, match.start):
            continue
        yield phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)


def tel_link_numbers(tree: LexborHTMLParser) -> Iterator[str]:
    for anchor in tree.css("a[href]"):
        href = (anchor.attributes.get("href") or "").strip()
        if href[:4].lower() == "tel:":
            number = normalize_phone(unquote(href[4:]))
            if number is not None:
                yield number


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def phones_from_parsed(tel_numbers: Iterable[str], visible_text: str) -> list[str]:
    return unique([*tel_numbers, *_text_numbers(visible_text)])


def extract_phones(html_or_text: str) -> list[str]:
    """Distinct phone numbers in E.164: ``tel:`` links first, then numbers in the text.

    Accepts HTML or plain text. Dates, postal codes, numbers glued to identifiers (UENs)
    and numbers labelled as fax are left out.
    """
    if not _HTML_HINT.search(html_or_text):
        return unique(_text_numbers(html_or_text))
    tree = parse_html(html_or_text)
    tel_numbers = list(tel_link_numbers(tree))
    return phones_from_parsed(tel_numbers, visible_text_from_tree(tree))
