"""One- or two-sentence rationales for lead scores, written by the model from the score's reasons only.

A rationale is cached per tenant by the score's features hash, so a company that looks the same
tonight as last week costs no tokens. A call takes the paid-call path: its worst-case tokens
reserved against the tenant's daily OpenAI cap (shared with extraction), settled with what OpenAI
reports, the text cached. Without a key, without budget, or when the call fails, a template
sentence built from the same reasons is used; template rationales are not cached, so the model
writes one once it can.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.scoring.score import FEATURE_LABELS, Score
from nightly_pipeline.vendors import openai as openai_vendor
from nightly_pipeline.vendors.openai import ChatClient, NullOpenAIChat
from nightly_pipeline.vendors.paid_call import Answer, Billed

if TYPE_CHECKING:
    from nightly_pipeline.stages.night import TenantNight

log = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT_TOKENS = 120
MAX_SENTENCES = 2

SYSTEM_PROMPT = """\
You explain B2B lead scores to salespeople. In one or two plain sentences, say why the company got \
its score, using only the reasons given: positive contributions are strengths, negative ones are \
what holds the score back. Do not add facts, figures or advice that the reasons do not state."""

Source = Literal["llm", "cache", "template"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclasses.dataclass(frozen=True)
class Rationale:
    text: str
    source: Source
    tokens_used: int


def build_messages(company_name: str, score: Score) -> list[BaseMessage]:
    """The prompt: the company's name, its score and bucket, and the reasons; nothing else."""
    reasons = "\n".join(json.dumps({"feature": r["feature"], "value": r["value"], "contribution": r["contribution"]},
                                   ensure_ascii=False) for r in score.reasons)
    user = (f"Company: {company_name}\nScore: {score.value:.2f} of 1 ({score.bucket})\n"
            f"Reasons (feature, value, contribution to the score):\n{reasons or 'none'}")
    return [SystemMessage(SYSTEM_PROMPT), HumanMessage(user)]


def _phrase(reason: dict[str, Any]) -> str:
    label = FEATURE_LABELS.get(reason["feature"], str(reason["feature"]).replace("_", " "))
    value = reason.get("value")
    if isinstance(value, bool) or value in (None, "", []):
        return label
    shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"{label} ({shown})"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def template_rationale(company_name: str, score: Score) -> str:
    """A plain sentence from the reasons, for when the model cannot be used."""
    strengths = [_phrase(r) for r in score.strengths]
    weaknesses = [_phrase(r) for r in score.weaknesses]
    text = f"{company_name} is a {score.bucket} lead ({score.value:.2f})"
    if strengths:
        text += f" on the strength of {_join(strengths)}"
    if weaknesses:
        text += f"{';' if strengths else ','} held back by {_join(weaknesses)}"
    return text + "."


def _first_sentences(text: str) -> str:
    sentences = _SENTENCE_END.split(" ".join(text.split()))
    return " ".join(sentences[:MAX_SENTENCES]).strip()


class RationaleWriter:
    """Writes rationales for one tenant night; safe to await for many companies at once.

    ``chat`` must be open on the running event loop (``async with chat:``).
    """

    def __init__(self, chat: ChatClient, night: TenantNight, *,
                 max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS) -> None:
        if max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
        self.chat = chat
        self.night = night
        self.meter = night.meter("openai")
        self.max_output_tokens = max_output_tokens

    def reservation_tokens(self, company_name: str, score: Score) -> int:
        """The tokens held for one call: the estimated prompt plus the longest allowed reply."""
        return openai_vendor.estimate_prompt_tokens(build_messages(company_name, score)) + self.max_output_tokens

    async def write(self, company_name: str, score: Score) -> Rationale:
        cached = await asyncio.to_thread(self._cached, score.features_hash)
        if cached is not None:
            return Rationale(cached, "cache", 0)
        template = Rationale(template_rationale(company_name, score), "template", 0)
        if isinstance(self.chat, NullOpenAIChat):
            return template
        chat = self.chat
        messages = build_messages(company_name, score)

        async def send(_: int) -> Answer[str]:
            reply = await chat.complete(messages, max_output_tokens=self.max_output_tokens)
            text = _first_sentences(reply.value or "")
            if not text:
                return Answer(None, Billed(reply.billed.units, "invalid_output"), "empty reply")
            return Answer(text, reply.billed)

        paid = await self.meter.call(
            openai_vendor.ENDPOINT, self.reservation_tokens(company_name, score), send,
            billed_for_error=openai_vendor.billed_for_error,
            store=lambda text, tokens: self._store(score.features_hash, text, tokens))
        if paid.error is not None:
            # A rationale is a nicety: whatever goes wrong with the model, the template stands in.
            log.warning("rationale for tenant %s fell back to the template: %s", self.night.tenant_id,
                        openai_vendor.failure_reason(paid.error))
        if paid.value is None:
            return template
        return Rationale(paid.value, "llm", paid.charged)

    def _cached(self, features_hash: str) -> str | None:
        with self.night.transaction() as conn:
            return scores_db.get_rationale(conn, features_hash)

    def _store(self, features_hash: str, text: str, tokens: int) -> None:
        with self.night.transaction() as conn:
            scores_db.put_rationale(conn, features_hash, text, "llm", tokens)
