"""Schema.org JSON-LD on a page: the organisation it describes and its job postings.

Real pages carry JSON-LD with ``@graph`` wrappers, top-level lists, several blocks, HTML
comments, trailing commas and raw newlines inside strings; all of that is tolerated and a
block that still cannot be read is skipped.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.crawl.pages import parse_html

_JSON_DECODER = json.JSONDecoder(strict=False)
_WRAPPERS = re.compile(r"<!--|-->|<!\[CDATA\[|\]\]>")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_FIRST_INT = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+")
_SG_POSTAL_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")

_ORGANIZATION_TYPES = frozenset(
    {
        "Organization", "Corporation", "LocalBusiness", "NGO", "Consortium", "Airline",
        "Store", "OnlineStore", "Restaurant",
    }
)
_ORGANIZATION_TYPE_SUFFIXES = ("Organization", "Business", "Service", "Agency", "Store")
_ORGANIZATION_FIELDS = ("name", "url", "email", "telephone", "address", "numberOfEmployees", "foundingDate", "sameAs")
_ADDRESS_PARTS = ("streetAddress", "addressLocality", "addressRegion", "postalCode", "addressCountry")


def _decode_values(text: str) -> list[Any]:
    values = []
    position = 0
    while position < len(text):
        while position < len(text) and text[position] in " \t\r\n;":
            position += 1
        if position >= len(text):
            break
        value, position = _JSON_DECODER.raw_decode(text, position)
        values.append(value)
    return values


def _parse_block(raw: str) -> list[Any]:
    text = _WRAPPERS.sub("", raw).strip()
    for candidate in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            return _decode_values(candidate)
        except json.JSONDecodeError:
            continue
    return []


def jsonld_values(tree: LexborHTMLParser) -> list[Any]:
    """The decoded top-level values of every readable ``application/ld+json`` block."""
    values: list[Any] = []
    for script in tree.css("script[type]"):
        media_type = (script.attributes.get("type") or "").split(";", 1)[0].strip().lower()
        if media_type == "application/ld+json":
            values.extend(_parse_block(script.text()))
    return values


def iter_nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``, depth first (covers ``@graph`` and nesting)."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from iter_nodes(child)
    elif isinstance(value, list):
        for item in value:
            yield from iter_nodes(item)


def node_types(node: dict[str, Any]) -> set[str]:
    """``@type`` names without a vocabulary prefix (``schema:Organization`` -> ``Organization``)."""
    raw = node.get("@type")
    names = raw if isinstance(raw, list) else [raw]
    return {re.split(r"[/:#]", name)[-1] for name in names if isinstance(name, str) and name}


def _is_organization(node: dict[str, Any]) -> bool:
    return any(
        name in _ORGANIZATION_TYPES or (name.endswith(_ORGANIZATION_TYPE_SUFFIXES) and name != "Service")
        for name in node_types(node)
    )


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((item for item in value if item), None)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("@id")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def _first_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        match = _FIRST_INT.search(value)
        return int(match.group(0).replace(",", "")) if match else None
    return None


def _employee_count(value: Any) -> int | None:
    if isinstance(value, list):
        value = next((item for item in value if item), None)
    if isinstance(value, dict):
        # A range ("11-50") is reported by its lower bound: the size the company vouches for.
        for key in ("value", "minValue", "maxValue"):
            count = _first_int(value.get(key))
            if count is not None:
                return count
        return None
    return _first_int(value)


def _employee_range_top(value: Any) -> int | None:
    """The top of a stated range ({"minValue": 11, "maxValue": 50}), so a range is not read as a number."""
    if isinstance(value, list):
        value = next((item for item in value if item), None)
    if isinstance(value, dict) and _first_int(value.get("value")) is None:
        return _first_int(value.get("maxValue"))
    return None


def _flatten_address(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, list):
        value = next((item for item in value if item), None)
    if isinstance(value, str):
        address = " ".join(value.split()) or None
        match = _SG_POSTAL_CODE.search(address or "")
        return address, match.group(1) if match else None
    if not isinstance(value, dict):
        return None, None
    parts: list[str] = []
    for key in _ADDRESS_PARTS:
        part = _text(value.get(key))
        if part and part.lower() not in (existing.lower() for existing in parts):
            parts.append(part)
    return (", ".join(parts) or None), _text(value.get("postalCode"))


def _same_as(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    urls = (item.strip() for item in items if isinstance(item, str))
    return [url for url in urls if url.startswith(("http://", "https://"))]


def _organization_fields(node: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in ("name", "url", "telephone", "foundingDate"):
        text = _text(node.get(key))
        if text:
            fields[key] = text
    email = _text(node.get("email"))
    if email:
        fields["email"] = email.removeprefix("mailto:").strip().lower()
    address, postal_code = _flatten_address(node.get("address"))
    if address:
        fields["address"] = address
    if postal_code:
        fields["postalCode"] = postal_code
    employees = _employee_count(node.get("numberOfEmployees"))
    if employees is not None:
        fields["numberOfEmployees"] = employees
        top = _employee_range_top(node.get("numberOfEmployees"))
        if top is not None and top > employees:
            fields["numberOfEmployeesMax"] = top
    same_as = _same_as(node.get("sameAs"))
    if same_as:
        fields["sameAs"] = same_as
    return fields


def organization_from_values(values: list[Any]) -> dict[str, Any]:
    best: dict[str, Any] = {}
    for node in (node for value in values for node in iter_nodes(value)):
        if not _is_organization(node):
            continue
        fields = _organization_fields(node)
        if sum(key in fields for key in _ORGANIZATION_FIELDS) > sum(key in best for key in _ORGANIZATION_FIELDS):
            best = fields
    return best


def extract_jsonld_organization(html: str) -> dict[str, Any]:
    """The richest schema.org organisation (Organization, LocalBusiness, …) on the page.

    Keys (present only when found): ``name``, ``url``, ``email``, ``telephone``, ``address``
    (one flattened line), ``postalCode``, ``numberOfEmployees`` (int; a QuantitativeValue
    range gives its lower bound, and ``numberOfEmployeesMax`` its top), ``foundingDate``,
    ``sameAs`` (list of URLs).
    """
    return organization_from_values(jsonld_values(parse_html(html)))


def job_posting_count(values: list[Any]) -> int:
    """Distinct ``JobPosting`` nodes (by title and URL) in the decoded JSON-LD values."""
    postings = {
        (_text(node.get("title")) or "", _text(node.get("url")) or "", _text(node.get("identifier")) or "")
        for value in values
        for node in iter_nodes(value)
        if "JobPosting" in node_types(node)
    }
    return len(postings)


def _string_values(values: list[Any], key: str) -> list[str]:
    found: list[str] = []
    for node in (node for value in values for node in iter_nodes(value)):
        raw = node.get(key)
        for item in raw if isinstance(raw, list) else [raw]:
            if isinstance(item, str) and item.strip():
                found.append(item.strip())
    return found


def jsonld_emails(values: list[Any]) -> list[str]:
    """Every ``email`` value anywhere in the JSON-LD, ``mailto:`` prefixes removed."""
    return [email.removeprefix("mailto:") for email in _string_values(values, "email")]


def jsonld_telephones(values: list[Any]) -> list[str]:
    """Every ``telephone`` value anywhere in the JSON-LD."""
    return _string_values(values, "telephone")
