"""Values from the web or a model made safe to store, before they reach PostgreSQL.

A website or a model can put anything in a string or a number: NUL (which ``text`` and ``jsonb``
refuse), other control characters, megabytes of text, a headcount of 10^15 (beyond ``int``),
JSON nested a thousand levels deep. These pure functions bound every such value to what its
column holds, so that one hostile page can never make a company's result unstorable:

- strings: NUL and other control characters (except tab, newline, carriage return) and lone
  surrogates removed, then cut to a length;
- integers: kept inside the column's range or dropped (None), never wrapped or clipped into a
  different, plausible-looking fact;
- floats: NaN and infinities dropped (JSON and ``real`` columns cannot mean them);
- nested JSON: keys and strings cleaned as above, depth, list length and key count capped.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1
INT8_MIN, INT8_MAX = -(2**63), 2**63 - 1

DEFAULT_MAX_CHARS = 10_000
DEFAULT_MAX_DEPTH = 12
DEFAULT_MAX_ITEMS = 500
# A key is a name, not content: longer ones are cut harder than values.
MAX_KEY_CHARS = 200

# C0 controls except \t \n \r, DEL, C1 controls, and UTF-16 surrogates (unencodable in UTF-8).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """``value`` without NUL, control characters or lone surrogates, at most ``max_chars`` long."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0, got {max_chars}")
    return _UNSTORABLE.sub("", value)[:max_chars]


def clean_optional_text(value: Any, max_chars: int = DEFAULT_MAX_CHARS) -> str | None:
    """:func:`clean_text` of a string; None for anything else (and for what cleans to nothing)."""
    if not isinstance(value, str):
        return None
    return clean_text(value, max_chars) or None


def bounded_int(value: Any, low: int = INT4_MIN, high: int = INT4_MAX) -> int | None:
    """``value`` when it is an integer (not a bool) within ``low..high``; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if low <= value <= high else None


def finite_float(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def clean_json(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, max_items: int = DEFAULT_MAX_ITEMS,
               max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """A copy of ``value`` that ``jsonb`` stores: strings cleaned, integers within ``bigint``
    (others dropped to None), non-finite floats None, containers beyond ``max_depth`` levels
    dropped (None), lists and objects cut to ``max_items`` entries, unknown types as their text."""
    return _clean(value, max_depth, max_items, max_chars)


def _clean(value: Any, depth: int, max_items: int, max_chars: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value, max_chars)
    if isinstance(value, int):
        return bounded_int(value, INT8_MIN, INT8_MAX)
    if isinstance(value, float):
        return finite_float(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if depth <= 0:
            return None
        if isinstance(value, Mapping):
            cleaned: dict[str, Any] = {}
            for key, item in list(value.items())[:max_items]:
                cleaned[clean_text(str(key), MAX_KEY_CHARS)] = _clean(item, depth - 1, max_items, max_chars)
            return cleaned
        return [_clean(item, depth - 1, max_items, max_chars) for item in list(value)[:max_items]]
    return clean_text(str(value), max_chars)
