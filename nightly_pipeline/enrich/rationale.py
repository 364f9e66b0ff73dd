"""One- or two-sentence rationales for lead scores, written by the model from the score's reasons only.

A rationale is cached per tenant by the score's features hash, so a company that looks the same
tonight as last week costs no tokens. Calls reserve their worst-case tokens against the tenant's
daily OpenAI cap first (shared with extraction) and settle with what OpenAI reports. Without a key,
without budget, or when the call fails, a template sentence built from the same reasons is used;
template rationales are not cached, so the model writes one once it can.

The model is given the reasons as the same plain phrases the template uses, and its answer is
checked: a rationale that mentions a number, technology, title, name or claim the reasons do not
state is rejected (``Rationale.rejected`` says what) and the template stands in.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
import time
from typing import Any, Literal

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db.budget import BudgetExhausted, Reservation, Scope, VendorBudget
from nightly_pipeline.db.database import Database
from nightly_pipeline.domain.reason_text import join_phrases
from nightly_pipeline.domain.scoring import Score
from nightly_pipeline.enrich.rationale_check import unsupported_claims

log = logging.getLogger(__name__)

# The same ledger entry as AI extraction, so both spend from one OPENAI_DAILY_TOKENS_CAP.
VENDOR = "openai"
ENDPOINT = "chat.completions"
DEFAULT_MAX_OUTPUT_TOKENS = 120
MAX_SENTENCES = 2
# Generous on purpose (OpenAI's rule of thumb is ~4 characters per token): a low estimate would let
# concurrent calls spend past the cap before they settle.
CHARS_PER_TOKEN = 3.0
# Role markers and the reply priming around each message.
PER_MESSAGE_OVERHEAD_TOKENS = 8

SYSTEM_PROMPT = """\
You explain B2B lead scores to salespeople. In one or two plain sentences, say why the company got \
its score, using only the reasons given: the first list raised the score, the second held it back. \
Do not add facts, figures, names, technologies, titles or advice that the reasons do not state, \
and do not quote the point values."""

Source = Literal["llm", "cache", "template"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclasses.dataclass(frozen=True)
class Rationale:
    text: str
    source: Source
    tokens_used: int
    # What a model's rationale asserted beyond the reasons, when it was rejected for the template.
    rejected: tuple[str, ...] = ()


def reason_lines(score: Score) -> str:
    """The reasons as the model reads them: the same phrases as the template, with their effect."""
    def lines(reasons: list[dict[str, Any]]) -> str:
        return "\n".join(f"- {_phrase(r)} ({float(r['contribution']):+.2f})" for r in reasons) or "- none"

    return (f"Reasons that raised the score, strongest first:\n{lines(score.strengths)}\n\n"
            f"Reasons that held it back, strongest first:\n{lines(score.weaknesses)}")


def build_messages(company_name: str, score: Score) -> list[BaseMessage]:
    """The prompt: the company's name, its score and bucket, and the reasons; nothing else."""
    user = f"Company: {company_name}\nScore: {score.value:.2f} of 1 ({score.bucket})\n\n{reason_lines(score)}"
    return [SystemMessage(SYSTEM_PROMPT), HumanMessage(user)]


def _phrase(reason: dict[str, Any]) -> str:
    text = str(reason.get("text") or "").strip()
    return text or str(reason["feature"]).replace("_", " ")


def template_rationale(company_name: str, score: Score) -> str:
    """A plain sentence from the reasons, for when the model cannot be used."""
    strengths = [_phrase(r) for r in score.strengths]
    weaknesses = [_phrase(r) for r in score.weaknesses]
    text = f"{company_name} is a {score.bucket} lead ({score.value:.2f})"
    if strengths:
        text += f" on the strength of {join_phrases(strengths)}"
    text += "."
    if weaknesses:
        text += f" It is held back by {join_phrases(weaknesses)}."
    return text


def _first_sentences(text: str) -> str:
    sentences = _SENTENCE_END.split(" ".join(text.split()))
    return " ".join(sentences[:MAX_SENTENCES]).strip()


def _estimate_tokens(text: str) -> int:
    # Non-ASCII characters (CJK names …) can cost a token each.
    non_ascii = sum(not char.isascii() for char in text)
    return math.ceil((len(text) - non_ascii) / CHARS_PER_TOKEN) + non_ascii


def _tokens_billed_for(error: Exception, reserved: int) -> int:
    """Nothing when OpenAI refused the call; else the reservation, since the usage is lost with the reply."""
    return 0 if isinstance(error, openai.APIError) else reserved


class RationaleWriter:
    """Writes rationales for one tenant; safe to await for many companies at once."""

    def __init__(self, chat_model: BaseChatModel | None, model_name: str, db: Database, budget: VendorBudget,
                 tokens_cap: int, *, max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS) -> None:
        if max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
        if chat_model is not None and "max_tokens" not in type(chat_model).model_fields:
            raise TypeError(f"{type(chat_model).__name__} has no max_tokens setting, so the token budget "
                            "could not bound its replies")
        # The reservation counts on no reply being longer than max_output_tokens.
        self.chat_model = (chat_model.model_copy(update={"max_tokens": max_output_tokens})
                           if chat_model is not None else None)
        self.model_name = model_name
        self.db = db
        self.budget = budget
        self.tokens_cap = tokens_cap
        self.max_output_tokens = max_output_tokens

    @property
    def tenant_id(self) -> int:
        return self.budget.tenant_id

    def reservation_tokens(self, company_name: str, score: Score) -> int:
        """The tokens held for one call: the estimated prompt plus the longest allowed reply."""
        messages = build_messages(company_name, score)
        prompt = sum(_estimate_tokens(str(m.content)) for m in messages)
        return prompt + PER_MESSAGE_OVERHEAD_TOKENS * len(messages) + self.max_output_tokens

    async def write(self, company_name: str, score: Score) -> Rationale:
        cached = await asyncio.to_thread(self._cached, score.features_hash)
        if cached is not None:
            return Rationale(cached, "cache", 0)
        template = Rationale(template_rationale(company_name, score), "template", 0)
        if self.chat_model is None:
            return template
        try:
            reservation = await asyncio.to_thread(
                self.budget.reserve, VENDOR, ENDPOINT, self.reservation_tokens(company_name, score),
                self.tokens_cap, Scope.DAY)
        except BudgetExhausted:
            return template
        written = await self._call_model(self.chat_model, company_name, score, reservation)
        if written is None:
            return template
        text, tokens = written
        claims = unsupported_claims(text, company_name, score)
        if claims:
            log.warning("rationale for tenant %s rejected, it asserts what the reasons do not: %s", self.tenant_id,
                        "; ".join(claims))
            return Rationale(template.text, "template", tokens, rejected=tuple(claims))
        await asyncio.to_thread(self._store, score.features_hash, text, tokens)
        return Rationale(text, "llm", tokens)

    async def _call_model(self, chat_model: BaseChatModel, company_name: str, score: Score,
                          reservation: Reservation) -> tuple[str, int] | None:
        """The text and its tokens, or None; the reservation is settled either way."""
        started = time.perf_counter()
        try:
            reply = await chat_model.ainvoke(build_messages(company_name, score))
        # A rationale is a nicety: whatever goes wrong with the model, the template stands in.
        except Exception as error:  # noqa: BLE001
            await self._settle(reservation, _tokens_billed_for(error, reservation.units), "error", started)
            status = getattr(error, "status_code", None)
            log.warning("rationale for tenant %s fell back to the template: %s%s", self.tenant_id,
                        type(error).__name__, f", HTTP {status}" if status is not None else "")
            return None
        usage = getattr(reply, "usage_metadata", None) or {}
        tokens = int(usage.get("total_tokens") or 0)
        text = _first_sentences(reply.content if isinstance(reply.content, str) else "")
        await self._settle(reservation, tokens, "ok" if text else "invalid_output", started)
        return (text, tokens) if text else None

    async def _settle(self, reservation: Reservation, charged: int, status: str, started: float) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000)
        await asyncio.to_thread(self.budget.settle, reservation, charged=charged, status=status,
                                latency_ms=latency_ms)

    def _cached(self, features_hash: str) -> str | None:
        with self.db.tenant(self.tenant_id) as conn:
            return scores_db.get_rationale(conn, self.tenant_id, features_hash)

    def _store(self, features_hash: str, text: str, tokens: int) -> None:
        with self.db.tenant(self.tenant_id) as conn:
            scores_db.put_rationale(conn, self.tenant_id, features_hash, text, "llm", tokens)
