"""Token counts for the OpenAI sandbox without a BPE vocabulary (tiktoken cannot download one here).

The text is first split the way GPT pre-tokenisers split it (words with their leading space,
digit groups of at most three, punctuation runs, whitespace runs); each piece then costs:

* a word: one token per started 6 characters, leading space included (``" the"`` 1, ``" company"`` 2),
  or one per character for non-Latin scripts, where BPE vocabularies are thin;
* a group of up to three digits: 1;
* a punctuation run: one token per started 3 characters (``'{"'`` 1, ``'"},'`` 1);
* a whitespace run: 1.

On English prose this lands near OpenAI's rule of thumb of one token per 4 characters. Chat
requests add what OpenAI adds: 3 tokens per message (+1 when it has a ``name``), 3 to prime the
reply, and the tool or response-format JSON schema, which the service also bills as prompt.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

_PIECES = re.compile(r"'(?:s|t|re|ve|m|ll|d)\b| ?[^\W\d_]+| ?\d{1,3}| ?(?:[^\s\w]|_)+|\s+", re.IGNORECASE)


def count_tokens(text: str) -> int:
    return sum(_piece_tokens(piece) for piece in _PIECES.findall(text))


def _piece_tokens(piece: str) -> int:
    core = piece.strip()
    if not core:
        return 1
    if core.isdigit():
        return 1
    if core[0].isalpha() or core[0] == "'":
        return math.ceil(len(piece) / 6) if core.isascii() else len(core)
    return math.ceil(len(piece) / 3)


def message_text(content: Any) -> str:
    """The text of a chat message's ``content``: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content
                         if isinstance(part, Mapping) and part.get("type") == "text")
    return ""


def count_chat_prompt(messages: Iterable[Mapping[str, Any]], *, tools: Any = None,
                      response_schema: Any = None) -> int:
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_tokens(str(message.get("role", "")))
        total += count_tokens(message_text(message.get("content")))
        if message.get("name"):
            total += TOKENS_PER_NAME + count_tokens(str(message["name"]))
        if message.get("tool_calls"):
            total += count_tokens(json.dumps(message["tool_calls"]))
    for definition in (tools, response_schema):
        if definition:
            total += count_tokens(json.dumps(definition))
    return total
