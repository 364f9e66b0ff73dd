"""Materialization metadata helpers shared by the stage modules."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd

# Characters with a meaning in GitHub-flavoured markdown tables: cell separators, code spans, links
# and images, emphasis, strikethrough and backslash escapes themselves.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\u2028\u2029\x85]+")


def escape_markdown_cell(value: Any) -> Any:
    """Text from pages, vendors or a model shown literally in one markdown table cell.

    Line breaks become spaces (a row is one line), control characters go, ``&``, ``<`` and ``>``
    become entities (no HTML, no autolinks) and markdown punctuation is backslash-escaped, so a
    name like ``[x](javascript:...)`` is shown, never linked. Anything but text is left as it is.
    """
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub("", _LINE_BREAKS.sub(" ", value)).strip()
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def preview(rows: Sequence[dict[str, Any]], columns: Sequence[str], limit: int = 25) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_none_")
    frame = pd.DataFrame([{c: escape_markdown_cell(r.get(c)) for c in columns} for r in rows[:limit]],
                         columns=list(columns))
    text = frame.to_markdown(index=False)
    if len(rows) > limit:
        text += f"\n\n… and {len(rows) - limit} more"
    return dg.MetadataValue.md(text)
