"""OpenAI chat completions through langchain-openai, for AI extraction and lead rationales.

:class:`OpenAIChat` is built once per run by :class:`OpenAIResource` and opened once per event loop
(``async with chat:``): langchain-openai otherwise shares one async connection pool per base URL
across the process, and a pool whose connections were opened on an earlier, closed event loop fails
every later call. Each session builds its own ``ChatOpenAI`` with its own pool and closes it.

Usage accounting lives here, next to the client: :func:`estimate_tokens` is the one estimate a
reservation is made from, and :func:`tokens_billed_for` the one rule for what a failed call cost.
"""
import contextvars
import json
import math
import re
from collections.abc import Sequence
from typing import Any, Self, TypeVar

import dagster as dg
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, PrivateAttr, SecretStr

from nightly_pipeline.settings_resource import PipelineSettings
from nightly_pipeline.vendors.paid_call import Answer, Billed, NullClient
from nightly_pipeline.vendors.rate_limits import UNLIMITED, CallLimiter, key_fingerprint

ENDPOINT = "chat.completions"
VENDOR = "openai"
# The key's requests and tokens per minute; a request counts its prompt estimate plus max_tokens.
REQUESTS_BUCKET = "openai.requests"
TOKENS_BUCKET = "openai.tokens"
DEFAULT_MODEL = "gpt-4o-mini"
NO_KEY = "no OPENAI_API_KEY"

# What OpenAI adds around the messages: framing and role per message, and the priming of the reply.
TOKENS_PER_MESSAGE = 4
REPLY_PRIMING_TOKENS = 3
# The response-format wrapper around a JSON schema (its name, type and strict flag).
RESPONSE_FORMAT_TOKENS = 16

M = TypeVar("M", bound=BaseModel)

# The SDK retries a refused or failed request itself; each retry is one more request, and its tokens,
# against the key's limits. The weight of the call on this task lets the retry take its own turn.
_call_tokens: contextvars.ContextVar[int] = contextvars.ContextVar("openai_call_tokens", default=0)
# The SDK numbers its attempts in this request header: 0 for the first.
RETRY_COUNT_HEADER = "x-stainless-retry-count"

_DIGIT_RUN = re.compile(r"[0-9]+")
# Everything but ASCII letters and the ASCII characters str.isspace() accepts: deleting it counts the
# letters in C, where a loop over a 20,000-character corpus held the event loop for milliseconds.
_NOT_ASCII_LETTER_OR_SPACE = re.compile(r"[^A-Za-z\t\n\x0b\x0c\r\x1c-\x1f ]+")


# -- usage accounting ---------------------------------------------------------------------------------------
def estimate_tokens(text: str) -> int:
    """An upper-end token count of ``text``, for reservations.

    Letters and spaces run about four to a token in English; a run of digits goes in groups of at most three;
    punctuation and symbols rarely merge with their neighbours, so each counts one token (JSON is
    dense in them); characters of other scripts (CJK, Tamil …) count one each. Erring high keeps
    concurrent reservations from spending past the cap before they settle.
    """
    digit_runs = _DIGIT_RUN.findall(text)
    digit_groups = sum(math.ceil(len(run) / 3) for run in digit_runs)
    digits = sum(map(len, digit_runs))
    letters = len(_NOT_ASCII_LETTER_OR_SPACE.sub("", text))
    singles = len(text) - digits - letters
    return math.ceil(letters / 4) + digit_groups + singles


def estimate_prompt_tokens(messages: Sequence[BaseMessage], response_schema: str | None = None) -> int:
    """The prompt tokens a chat request will be billed: messages, their framing and the JSON schema
    of a structured reply (``response_schema``, which OpenAI bills as prompt)."""
    tokens = REPLY_PRIMING_TOKENS + sum(TOKENS_PER_MESSAGE + estimate_tokens(str(m.content)) for m in messages)
    if response_schema is not None:
        tokens += RESPONSE_FORMAT_TOKENS + estimate_tokens(response_schema)
    return tokens


def reported_tokens(message: Any) -> int:
    """The total tokens OpenAI reported for a reply (``AIMessage.usage_metadata``)."""
    usage = getattr(message, "usage_metadata", None) or {}
    return int(usage.get("total_tokens") or 0)


def _reported_usage(error: Exception) -> int | None:
    completion = getattr(error, "completion", None)  # openai's finish-reason errors keep the completion
    if completion is not None and getattr(completion, "usage", None) is not None:
        return int(completion.usage.total_tokens)
    response = getattr(error, "response", None)  # langchain-openai attaches a reply it could not parse
    try:
        return int(response.json()["usage"]["total_tokens"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def tokens_billed_for(error: Exception, reserved: int) -> int:
    """What a failed call cost: the usage OpenAI reported when a reply came back unusable (cut at
    max_tokens, filtered, not valid JSON); nothing when OpenAI refused the call with an error status
    or could not be reached; and the whole reservation when a reply may have been billed but its
    usage is unknown (a timeout, an answer lost on the way back, an error of the model wrapper)."""
    reported = _reported_usage(error)
    if reported is not None:
        return reported
    if isinstance(error, openai.APIStatusError):
        return 0
    if isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError):
        return 0
    return reserved


def failure_reason(error: Exception) -> str:
    """The error's class and HTTP status only: messages can quote request details."""
    status = getattr(error, "status_code", None) if isinstance(error, openai.APIStatusError) else None
    detail = f"{type(error).__name__}, HTTP {status}" if status is not None else type(error).__name__
    return f"OpenAI call failed ({detail})"


def billed_for_error(error: Exception, reserved: int) -> Billed:
    """The ledger entry of a failed call (see :func:`tokens_billed_for`)."""
    return Billed(tokens_billed_for(error, reserved), "error")


def bounded(chat_model: BaseChatModel, max_output_tokens: int) -> BaseChatModel:
    """``chat_model`` with replies capped at ``max_output_tokens``, which every reservation counts on."""
    if max_output_tokens < 1:
        raise ValueError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
    if "max_tokens" not in type(chat_model).model_fields:
        raise TypeError(f"{type(chat_model).__name__} has no max_tokens setting, so the token budget "
                        "could not bound its replies")
    return chat_model.model_copy(update={"max_tokens": max_output_tokens})


# -- clients ------------------------------------------------------------------------------------------------
class OpenAIChat:
    """Chat completions for one run with one key; ``async with chat:`` once per event loop."""

    def __init__(self, api_key: str, *, model: str = DEFAULT_MODEL, base_url: str | None = None,
                 timeout_s: float = 60.0, max_retries: int = 2) -> None:
        if not api_key.strip():
            raise ValueError("an OpenAI API key is required")
        self._key = SecretStr(api_key.strip())
        self.model_name = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._session: ChatOpenAI | None = None
        # Paces requests and tokens to the key's limits across processes (set by the run).
        self.limiter: CallLimiter = UNLIMITED
        self.key_fingerprint = key_fingerprint(VENDOR, api_key)

    def __repr__(self) -> str:
        return f"OpenAIChat(model={self.model_name!r}, base_url={self.base_url!r})"

    def chat_model(self) -> ChatOpenAI:
        """A new ``ChatOpenAI`` with its own async connection pool (the caller closes it)."""
        return ChatOpenAI(
            model=self.model_name,
            api_key=self._key,
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
            http_async_client=openai.DefaultAsyncHttpxClient(timeout=self.timeout_s,
                                                             event_hooks={"request": [self._pace_retry]}),
            # Chat Completions only: langchain-openai picks the Responses API by model name for some models.
            use_responses_api=False,
            # Our own async client already; the socket-option transport would only override proxies.
            http_socket_options=(),
        )

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("this OpenAIChat is already open on an event loop")
        self._session = self.chat_model()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.root_async_client.close()

    def _model(self, max_output_tokens: int) -> BaseChatModel:
        if self._session is None:
            raise RuntimeError("open the client on this event loop first: `async with chat:`")
        return bounded(self._session, max_output_tokens)

    async def _acquire(self, messages: Sequence[BaseMessage], max_output_tokens: int,
                       schema: type[BaseModel] | None = None) -> None:
        prompt = estimate_prompt_tokens(messages, json.dumps(schema.model_json_schema()) if schema else None)
        _call_tokens.set(prompt + max_output_tokens)
        await self.limiter.acquire(REQUESTS_BUCKET)
        await self.limiter.acquire(TOKENS_BUCKET, prompt + max_output_tokens)

    async def _pace_retry(self, request: Any) -> None:
        if request.headers.get(RETRY_COUNT_HEADER, "0") in ("", "0"):
            return  # the first attempt took its turn in _acquire
        await self.limiter.acquire(REQUESTS_BUCKET)
        tokens = _call_tokens.get()
        if tokens > 0:
            await self.limiter.acquire(TOKENS_BUCKET, tokens)

    async def complete(self, messages: Sequence[BaseMessage], *, max_output_tokens: int) -> Answer[str]:
        """The reply's text and the tokens OpenAI reported for it."""
        await self._acquire(messages, max_output_tokens)
        reply = await self._model(max_output_tokens).ainvoke(list(messages))
        text = reply.content if isinstance(reply.content, str) else ""
        tokens = reported_tokens(reply)
        return Answer(text, Billed(tokens, "ok"))

    async def structured(self, messages: Sequence[BaseMessage], schema: type[M], *,
                         max_output_tokens: int) -> Answer[M]:
        """The reply parsed as ``schema`` (JSON-schema structured output); an answer that does not
        parse is billed what OpenAI reported and comes back without a value."""
        structured = self._model(max_output_tokens).with_structured_output(schema, include_raw=True)
        await self._acquire(messages, max_output_tokens, schema)
        reply = await structured.ainvoke(list(messages))
        tokens = reported_tokens(reply.get("raw"))
        parsed, parsing_error = reply.get("parsed"), reply.get("parsing_error")
        if not isinstance(parsed, schema):
            detail = type(parsing_error).__name__ if parsing_error else f"no {schema.__name__}"
            return Answer(None, Billed(tokens, "invalid_output"), f"OpenAI reply unusable ({detail})")
        return Answer(parsed, Billed(tokens, "ok"))


class NullOpenAIChat(NullClient):
    """No OpenAI tonight: extraction and rationales fall back; ``model_name`` still keys the caches."""

    def __init__(self, reason: str, *, model: str = DEFAULT_MODEL) -> None:
        super().__init__(reason)
        self.model_name = model


ChatClient = OpenAIChat | NullOpenAIChat


# -- resource -----------------------------------------------------------------------------------------------
class OpenAIResource(dg.ConfigurableResource):
    """Builds the run's :class:`OpenAIChat` once, when the run starts.

    The key is never a field: it comes from the run's settings (``OPENAI_API_KEY``), so it cannot
    appear in run config, the UI or this resource's repr, and a missing key gives a
    :class:`NullOpenAIChat` that degrades the run instead of failing it (``dg.EnvVar`` would fail
    the run at start-up). Fields left unset take ``OPENAI_BASE_URL`` and ``LANGCHAIN_MODEL``.
    """

    settings: PipelineSettings
    base_url: str | None = None
    model: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2

    _client: ChatClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = self.settings.settings
        model = self.model or settings.langchain_model or DEFAULT_MODEL
        key = (settings.secret("openai_api_key") or "").strip()
        if not key:
            self._client = NullOpenAIChat(NO_KEY, model=model)
            return
        self._client = OpenAIChat(key, model=model, base_url=self.base_url or settings.openai_base_url,
                                  timeout_s=self.timeout_s, max_retries=self.max_retries)

    def get_client(self) -> ChatClient:
        if self._client is None:
            raise RuntimeError("OpenAIResource is used outside a run; Dagster builds its client at run start")
        return self._client
