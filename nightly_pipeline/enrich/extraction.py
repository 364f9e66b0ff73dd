"""AI extraction of a company profile from its website corpus, within the tenant's token budget.

:class:`Extractor` answers from the tenant's cache when the same corpus was already read by the
same model, reserves the call's worst-case tokens before calling (so concurrent extractions can
never together spend past the daily cap), settles the reservation with the tokens OpenAI reports,
and falls back to :func:`deterministic_profile` whenever the model cannot be used. Failures degrade
one company's profile; they never raise.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import math
import time
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from nightly_pipeline.crawl.signals import SiteSignals
from nightly_pipeline.db import extraction_cache
from nightly_pipeline.db.budget import BudgetExhausted, Reservation, Scope, VendorBudget
from nightly_pipeline.db.database import Database
from nightly_pipeline.enrich.extraction_fallback import deterministic_profile
from nightly_pipeline.enrich.extraction_profile import CompanyProfile

__all__ = [
    "SCHEMA_VERSION",
    "CompanyProfile",
    "ExtractionResult",
    "Extractor",
    "build_messages",
    "corpus_hash",
    "deterministic_profile",
]

log = logging.getLogger(__name__)

VENDOR = "openai"
ENDPOINT = "chat.completions"
DEFAULT_MAX_CORPUS_CHARS = 24_000

SYSTEM_PROMPT = """\
You read the website text of one company registered in Singapore and fill in its firmographics.
Use only what the registry facts and the website text state or clearly imply; never add outside \
knowledge about the company, its industry or its size.
When the text does not support a field, leave it null ("unknown" for revenue_bucket and \
business_model, an empty list for products_services) and set that field's confidence to 0.
Revenue is annual revenue in Singapore dollars. Write every text field in plain English."""

# Prose and JSON cost different amounts per character; both ratios err on the generous side
# (OpenAI's own rule of thumb is about 4 characters of English per token), because a low estimate
# would let concurrent calls spend past the cap before they settle.
PROSE_CHARS_PER_TOKEN = 3.5
JSON_CHARS_PER_TOKEN = 2.5
# Per-message framing, the reply priming and the response-format wrapper.
MESSAGE_OVERHEAD_TOKENS = 24

_SCHEMA_JSON = json.dumps(CompanyProfile.model_json_schema(), sort_keys=True)
SCHEMA_TOKENS = math.ceil(len(_SCHEMA_JSON) / JSON_CHARS_PER_TOKEN)
# Any change to the schema or the instructions gives new hashes, so stale cached profiles are never reused.
SCHEMA_VERSION = hashlib.sha256(f"{_SCHEMA_JSON}\n{SYSTEM_PROMPT}".encode()).hexdigest()[:16]

Source = Literal["llm", "cache", "deterministic"]


def normalize_corpus(corpus: str) -> str:
    """The corpus with Unicode compatibility forms folded and whitespace runs collapsed."""
    return " ".join(unicodedata.normalize("NFKC", corpus).split())


def corpus_hash(corpus: str, model: str) -> str:
    """The cache key of a corpus read by ``model`` under the current schema and prompt."""
    payload = f"{SCHEMA_VERSION}\n{model}\n{normalize_corpus(corpus)}"
    return hashlib.sha256(payload.encode()).hexdigest()


def estimate_prompt_tokens(text: str) -> int:
    """An upper-end token estimate: non-ASCII characters (CJK, Tamil …) are counted one token each."""
    non_ascii = sum(not char.isascii() for char in text)
    return math.ceil((len(text) - non_ascii) / PROSE_CHARS_PER_TOKEN) + non_ascii


@dataclasses.dataclass(frozen=True)
class ExtractionResult:
    profile: CompanyProfile
    source: Source
    degraded: bool
    degraded_reason: str | None
    tokens_used: int
    corpus_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile.model_dump(mode="json"),
            "source": self.source,
            "degraded": self.degraded,
            "degraded_reason": self.degraded_reason,
            "tokens_used": self.tokens_used,
            "corpus_hash": self.corpus_hash,
        }


def _registry_facts(company: Mapping[str, Any]) -> str:
    year = company.get("incorporation_year")
    if year is None and company.get("incorporation_date") is not None:
        year = str(company["incorporation_date"])[:4]
    facts = {
        "Name": company.get("name") or company.get("legal_name"),
        "UEN": company.get("uen"),
        "SSIC description": company.get("ssic_description"),
        "Incorporated": year,
    }
    # Plain "label: value" lines; list markers would read to a model like a list of services.
    return "\n".join(f"{label}: {value}" for label, value in facts.items() if value not in (None, ""))


def build_messages(company: Mapping[str, Any], corpus: str) -> list[BaseMessage]:
    """The system instructions and the user message with the registry facts and the corpus."""
    user = (f"Registry facts (ACRA):\n{_registry_facts(company) or 'none'}\n\n"
            f"Website text:\n<<<\n{corpus.strip()}\n>>>")
    return [SystemMessage(SYSTEM_PROMPT), HumanMessage(user)]


def _output_capped(chat_model: BaseChatModel, max_output_tokens: int) -> BaseChatModel:
    # The reservation counts on the reply never being longer than max_output_tokens.
    if "max_tokens" not in type(chat_model).model_fields:
        raise TypeError(f"{type(chat_model).__name__} has no max_tokens setting, so the token budget "
                        "could not bound its replies")
    return chat_model.model_copy(update={"max_tokens": max_output_tokens})


def _total_tokens(message: Any) -> int:
    usage = getattr(message, "usage_metadata", None) or {}
    return int(usage.get("total_tokens") or 0)


def _tokens_billed_for(error: Exception, reserved: int) -> int:
    """What a failed call cost: nothing when OpenAI refused it or never answered, the usage the reply
    reports when it came back unusable (cut at max_tokens, filtered, not valid JSON), and the whole
    reservation when a reply may have been billed but its usage cannot be read."""
    if isinstance(error, openai.APIError):
        return 0
    reported = _reported_usage(error)
    return reported if reported is not None else reserved


def _reported_usage(error: Exception) -> int | None:
    completion = getattr(error, "completion", None)  # openai's finish-reason errors keep the completion
    if completion is not None and getattr(completion, "usage", None) is not None:
        return int(completion.usage.total_tokens)
    response = getattr(error, "response", None)  # langchain-openai attaches a reply it could not parse
    try:
        return int(response.json()["usage"]["total_tokens"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _failure_reason(error: Exception) -> str:
    """The error's class and HTTP status only: messages can quote request details."""
    status = getattr(error, "status_code", None) if isinstance(error, openai.APIStatusError) else None
    detail = f"{type(error).__name__}, HTTP {status}" if status is not None else type(error).__name__
    return f"OpenAI call failed ({detail})"


class Extractor:
    """Extracts :class:`CompanyProfile` for one tenant; safe to await for many companies at once."""

    def __init__(self, chat_model: BaseChatModel | None, model_name: str, db: Database, budget: VendorBudget,
                 tokens_cap: int, max_output_tokens: int = 600, *,
                 max_corpus_chars: int = DEFAULT_MAX_CORPUS_CHARS) -> None:
        if max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
        self.chat_model = _output_capped(chat_model, max_output_tokens) if chat_model is not None else None
        self.model_name = model_name
        self.db = db
        self.budget = budget
        self.tokens_cap = tokens_cap
        self.max_output_tokens = max_output_tokens
        self.max_corpus_chars = max_corpus_chars

    @property
    def tenant_id(self) -> int:
        return self.budget.tenant_id

    def prompt_corpus(self, corpus: str) -> str:
        """The part of the corpus the model reads (pages come home page first, so the head matters most)."""
        return corpus.strip()[:self.max_corpus_chars]

    def reservation_tokens(self, company: Mapping[str, Any], corpus: str) -> int:
        """The tokens held for one call: estimated prompt and schema plus the longest allowed reply."""
        messages = build_messages(company, self.prompt_corpus(corpus))
        prompt = sum(estimate_prompt_tokens(str(message.content)) for message in messages)
        return prompt + SCHEMA_TOKENS + MESSAGE_OVERHEAD_TOKENS + self.max_output_tokens

    async def extract(self, company: Mapping[str, Any], corpus: str,
                      signals: SiteSignals | None) -> ExtractionResult:
        key = corpus_hash(corpus, self.model_name)

        def fallback(reason: str) -> ExtractionResult:
            profile = deterministic_profile(signals, company, corpus=corpus)
            return ExtractionResult(profile, "deterministic", True, reason, 0, key)

        if not corpus.strip():
            return fallback("no corpus")
        cached = await asyncio.to_thread(self._cached_profile, key)
        if cached is not None:
            return ExtractionResult(cached, "cache", False, None, 0, key)
        if self.chat_model is None:
            return fallback("no OPENAI_API_KEY")
        try:
            reservation = await asyncio.to_thread(
                self.budget.reserve, VENDOR, ENDPOINT, self.reservation_tokens(company, corpus),
                self.tokens_cap, Scope.DAY)
        except BudgetExhausted as exhausted:
            return fallback(f"OpenAI token budget exhausted ({exhausted.remaining} of {exhausted.cap} left)")
        outcome = await self._call_model(self.chat_model, company, corpus, reservation)
        if isinstance(outcome, str):
            return fallback(outcome)
        profile, tokens = outcome
        await asyncio.to_thread(self._store_profile, key, profile, tokens)
        return ExtractionResult(profile, "llm", False, None, tokens, key)

    async def _call_model(self, chat_model: BaseChatModel, company: Mapping[str, Any], corpus: str,
                          reservation: Reservation) -> tuple[CompanyProfile, int] | str:
        """The profile and its tokens, or why there is none; the reservation is settled either way."""
        structured = chat_model.with_structured_output(CompanyProfile, include_raw=True)
        started = time.perf_counter()
        try:
            reply = await structured.ainvoke(build_messages(company, self.prompt_corpus(corpus)))
        # The chat model is pluggable and one company's failure must degrade its profile, not the
        # night, so every error class becomes a degraded result.
        except Exception as error:
            await self._settle(reservation, _tokens_billed_for(error, reservation.units), "error", started)
            reason = _failure_reason(error)
            log.warning("extraction for tenant %s degraded: %s", self.tenant_id, reason)
            return reason
        tokens = _total_tokens(reply.get("raw"))
        parsed, parsing_error = reply.get("parsed"), reply.get("parsing_error")
        if not isinstance(parsed, CompanyProfile):
            await self._settle(reservation, tokens, "invalid_output", started)
            return f"OpenAI reply unusable ({type(parsing_error).__name__ if parsing_error else 'no profile'})"
        await self._settle(reservation, tokens, "ok", started)
        return parsed, tokens

    async def _settle(self, reservation: Reservation, charged: int, status: str, started: float) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000)
        await asyncio.to_thread(self.budget.settle, reservation, charged=charged, status=status,
                                latency_ms=latency_ms)

    def _cached_profile(self, key: str) -> CompanyProfile | None:
        with self.db.tenant(self.tenant_id) as conn:
            stored = extraction_cache.get_cached(conn, self.tenant_id, key, self.model_name)
        if stored is None:
            return None
        try:
            return CompanyProfile.model_validate(stored)
        except ValidationError:
            # Written by a build whose schema validated differently; extracting again replaces it.
            return None

    def _store_profile(self, key: str, profile: CompanyProfile, tokens: int) -> None:
        with self.db.tenant(self.tenant_id) as conn:
            extraction_cache.put_cached(conn, self.tenant_id, key, self.model_name,
                                        profile.model_dump(mode="json"), tokens)
