"""One- or two-sentence rationales for lead scores, written by the model from the score's reasons only.

A rationale is cached per tenant by the score's features hash, so a company that looks the same
tonight as last week costs no tokens. A call takes the paid-call path: its worst-case tokens
reserved against the tenant's daily OpenAI cap (shared with extraction), settled with what OpenAI
reports, the text cached. Without a key, without budget, or when the call fails, a template
sentence built from the same reasons is used; template rationales are not cached, so the model
writes one once it can.

The model is given the reasons as the same plain phrases the template uses, and its answer is
checked: a rationale that mentions a number, technology, title, name or claim the reasons do not
state is rejected (``Rationale.rejected`` says what) and the template stands in.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.domain.reason_text import join_phrases
from nightly_pipeline.scoring.rationale_check import unsupported_claims
from nightly_pipeline.scoring.score import Score
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

        rejected: list[str] = []

        async def send(_: int) -> Answer[str]:
            reply = await chat.complete(messages, max_output_tokens=self.max_output_tokens)
            text = _first_sentences(reply.value or "")
            if not text:
                return Answer(None, Billed(reply.billed.units, "invalid_output"), "empty reply")
            claims = unsupported_claims(text, company_name, score)
            if claims:
                # Checked before the cache: a rationale stating what the reasons do not is never kept.
                rejected[:] = claims
                log.warning("rationale for tenant %s rejected, it asserts what the reasons do not: %s",
                            self.night.tenant_id, "; ".join(claims))
                return Answer(None, Billed(reply.billed.units, "rejected"), "unsupported claims")
            return Answer(text, reply.billed)

        paid = await self.meter.call(
            openai_vendor.ENDPOINT, self.reservation_tokens(company_name, score), send,
            billed_for_error=openai_vendor.billed_for_error,
            store=lambda text, tokens: self._store(score.features_hash, text, tokens))
        if paid.error is not None:
            # A rationale is a nicety: whatever goes wrong with the model, the template stands in.
            log.warning("rationale for tenant %s fell back to the template: %s", self.night.tenant_id,
                        openai_vendor.failure_reason(paid.error))
        if rejected:
            return Rationale(template.text, "template", paid.charged, rejected=tuple(rejected))
        if paid.value is None:
            return template
        return Rationale(paid.value, "llm", paid.charged)

    def _cached(self, features_hash: str) -> str | None:
        with self.night.transaction() as conn:
            return scores_db.get_rationale(conn, features_hash)

    def _store(self, features_hash: str, text: str, tokens: int) -> None:
        with self.night.transaction() as conn:
            scores_db.put_rationale(conn, features_hash, text, "llm", tokens)
