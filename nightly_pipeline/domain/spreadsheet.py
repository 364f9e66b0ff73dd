"""Cells for CSV files that people open in a spreadsheet.

Company names, page titles, rationales and contact titles come from crawled pages, vendors and
model output. A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, DDE payloads), so such text
cells get a leading single quote, which shows the text as typed (OWASP's CSV injection advice).
Numbers are written as they are: a negative score is a number, not a formula.
"""
from __future__ import annotations

from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """``value`` safe to write into a CSV cell: text a spreadsheet would run is quoted; numbers stay
    numbers (a negative one included) and dates and None render harmlessly."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def neutralise_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: neutralise_cell(value) for key, value in row.items()}
