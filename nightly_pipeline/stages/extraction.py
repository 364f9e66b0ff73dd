"""AI extraction of a company profile from its website corpus, within the tenant's token budget.

:class:`Extractor` answers from the fleet's store (``public_extractions``) when the same corpus was
already read by the same model, for any tenant: the model's reading of public pages is a public fact,
and the reuse costs nothing (the ledger records it with 0 units, status ``reused``). Two runs that
meet the same corpus at once do not both pay: the first claims it, the second waits for its profile.
Otherwise the call takes the paid-call path: the call's worst-case tokens reserved
first (so concurrent extractions can never together spend past the daily cap), settled with the
tokens OpenAI reports, the profile cached. It falls back to :func:`deterministic_profile` whenever
the model cannot be used. Failures degrade one company's profile; they never raise.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from nightly_pipeline.crawl.signals import SiteSignals
from nightly_pipeline.db import public_facts as facts_db
from nightly_pipeline.stages.extraction_fallback import deterministic_profile
from nightly_pipeline.stages.extraction_profile import CompanyProfile
from nightly_pipeline.stages.night import TenantNight
from nightly_pipeline.stages.public_facts import fetch_once
from nightly_pipeline.vendors import openai as openai_vendor
from nightly_pipeline.vendors.openai import ChatClient, NullOpenAIChat

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

DEFAULT_MAX_CORPUS_CHARS = 24_000
# Room for a full profile with ten products and a 400-character summary; it is also what each call reserves.
DEFAULT_MAX_OUTPUT_TOKENS = 1_000

SYSTEM_PROMPT = """\
You read the website text of one company registered in Singapore and fill in its firmographics.
Use only what the registry facts and the website text state or clearly imply; never add outside \
knowledge about the company, its industry or its size.
When the text does not support a field, leave it null ("unknown" for revenue_bucket and \
business_model, an empty list for products_services) and set that field's confidence to 0.
Revenue is annual revenue in Singapore dollars. Write every text field in plain English."""

SCHEMA_JSON = json.dumps(CompanyProfile.model_json_schema(), sort_keys=True)
# Any change to the schema or the instructions gives new hashes, so stale cached profiles are never reused.
SCHEMA_VERSION = hashlib.sha256(f"{SCHEMA_JSON}\n{SYSTEM_PROMPT}".encode()).hexdigest()[:16]

Source = Literal["llm", "cache", "deterministic"]
# The ledger's status of a profile this tenant took from the fleet's store instead of paying for it.
REUSED = "reused"


def normalize_corpus(corpus: str) -> str:
    """The corpus with Unicode compatibility forms folded and whitespace runs collapsed."""
    return " ".join(unicodedata.normalize("NFKC", corpus).split())


def corpus_hash(corpus: str, model: str) -> str:
    """The cache key of a corpus read by ``model`` under the current schema and prompt."""
    payload = f"{SCHEMA_VERSION}\n{model}\n{normalize_corpus(corpus)}"
    return hashlib.sha256(payload.encode()).hexdigest()


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


class Extractor:
    """Extracts :class:`CompanyProfile` for one tenant night; safe to await for many companies at once.

    ``chat`` must be open on the running event loop (``async with chat:``).
    """

    def __init__(self, chat: ChatClient, night: TenantNight, *,
                 max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
                 max_corpus_chars: int = DEFAULT_MAX_CORPUS_CHARS) -> None:
        if max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
        self.chat = chat
        self.night = night
        self.meter = night.meter("openai")
        self.max_output_tokens = max_output_tokens
        self.max_corpus_chars = max_corpus_chars

    @property
    def model_name(self) -> str:
        return self.chat.model_name

    def prompt_corpus(self, corpus: str) -> str:
        """The part of the corpus the model reads (pages come home page first, so the head matters most)."""
        return corpus.strip()[:self.max_corpus_chars]

    def reservation_tokens(self, company: Mapping[str, Any], corpus: str) -> int:
        """The tokens held for one call: the estimated prompt with the schema, plus the longest allowed reply."""
        messages = build_messages(company, self.prompt_corpus(corpus))
        return openai_vendor.estimate_prompt_tokens(messages, SCHEMA_JSON) + self.max_output_tokens

    async def extract(self, company: Mapping[str, Any], corpus: str,
                      signals: SiteSignals | None) -> ExtractionResult:
        key = corpus_hash(corpus, self.model_name)

        def fallback(reason: str) -> ExtractionResult:
            profile = deterministic_profile(signals, company, corpus=corpus)
            return ExtractionResult(profile, "deterministic", True, reason, 0, key)

        if not corpus.strip():
            return fallback("no corpus")
        started = time.monotonic()
        reuse = self.night.settings.public_facts_reuse
        if isinstance(self.chat, NullOpenAIChat):
            cached = await asyncio.to_thread(self._cached_profile, key) if reuse else None
            if cached is None:
                return fallback(self.chat.reason)
            await self.meter.record_free(openai_vendor.ENDPOINT, REUSED, started)
            return ExtractionResult(cached, "cache", False, None, 0, key)

        async def pay() -> ExtractionResult:
            return await self._pay(company, corpus, key, fallback)

        fetched = await fetch_once(self.night.db, "extraction", f"{self.model_name}:{key}",
                                   lookup=lambda: self._cached_profile(key), fetch=pay,
                                   store=lambda result: result.source == "llm", reuse=reuse)
        if fetched.reused:
            await self.meter.record_free(openai_vendor.ENDPOINT, REUSED, started)
            return ExtractionResult(fetched.value, "cache", False, None, 0, key)
        return fetched.value

    async def _pay(self, company: Mapping[str, Any], corpus: str, key: str,
                   fallback: Callable[[str], ExtractionResult]) -> ExtractionResult:
        """The paid call; its profile is stored (by the paid-call path) before the claim is released."""
        chat = self.chat
        messages = build_messages(company, self.prompt_corpus(corpus))

        async def send(_: int) -> Any:
            return await chat.structured(messages, CompanyProfile, max_output_tokens=self.max_output_tokens)

        paid = await self.meter.call(
            openai_vendor.ENDPOINT, self.reservation_tokens(company, corpus), send,
            billed_for_error=openai_vendor.billed_for_error,
            store=lambda profile, tokens: self._store_profile(key, profile, tokens))
        if paid.exhausted is not None:
            return fallback(f"OpenAI token budget exhausted ({paid.exhausted.remaining} of {paid.exhausted.cap} left)")
        if paid.error is not None:
            reason = openai_vendor.failure_reason(paid.error)
            log.warning("extraction for tenant %s degraded: %s", self.night.tenant_id, reason)
            return fallback(reason)
        if paid.value is None:
            return fallback(paid.problem or "OpenAI reply unusable")
        return ExtractionResult(paid.value, "llm", False, None, paid.charged, key)

    def _cached_profile(self, key: str) -> CompanyProfile | None:
        with self.night.db.shared() as conn:
            stored = facts_db.get_extraction(conn, key, self.model_name)
        if stored is None:
            return None
        try:
            return CompanyProfile.model_validate(stored)
        except ValidationError:
            # Written by a build whose schema validated differently; extracting again replaces it.
            return None

    def _store_profile(self, key: str, profile: CompanyProfile, tokens: int) -> None:
        with self.night.db.shared() as conn:
            facts_db.put_extraction(conn, key, self.model_name, profile.model_dump(mode="json"), tokens)
