"""Crawled text in Dagster's markdown metadata stays text: it cannot break the table, link, embed
HTML or format itself."""
from __future__ import annotations

import re

import pytest

from nightly_pipeline.assets._metadata import escape_markdown_cell, preview


@pytest.mark.parametrize("value, shown", [
    ("Acme Pte. Ltd.", "Acme Pte. Ltd."),
    ("A | B", "A \\| B"),
    ("line one\nline two", "line one line two"),
    ("carriage\r\nreturn", "carriage return"),
    ("tab\there", "tab here"),
    ("`code`", "\\`code\\`"),
    ("[click](javascript:alert(1))", "\\[click\\](javascript:alert(1))"),
    ("![x](http://evil.example/pixel.png)", "!\\[x\\](http://evil.example/pixel.png)"),
    ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
    ("<https://evil.example>", "&lt;https://evil.example&gt;"),
    ("**bold** _it_ ~~gone~~", "\\*\\*bold\\*\\* \\_it\\_ \\~\\~gone\\~\\~"),
    ("&lt;b&gt;", "&amp;lt;b&amp;gt;"),
    ("back\\slash", "back\\\\slash"),
    ("   padded  ", "padded"),
    ("\x1b[31mred\x00", "\\[31mred"),
    (0.512, 0.512),
    (7, 7),
    (None, None),
])
def test_escape_markdown_cell(value, shown):
    assert escape_markdown_cell(value) == shown


def test_a_hostile_row_stays_one_row_of_text():
    rows = [{"company": "Evil | Co\n| injected | row |", "title": "[x](javascript:alert(1)) <script>", "score": 0.9},
            {"company": "Fine Pte. Ltd.", "title": "CEO", "score": 0.5}]
    text = preview(rows, ["company", "title", "score"]).value
    lines = text.splitlines()
    assert len(lines) == 4, text  # header, separator, two rows
    assert all(line.count("|") - line.count("\\|") == 4 for line in lines), text
    assert "<script>" not in text
    assert re.search(r"(?<!\\)\]\(", text) is None, text  # no unescaped "](": no link
    assert "0.9" in lines[2] and "Fine Pte. Ltd." in lines[3]
