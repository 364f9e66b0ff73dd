"""OpenAI Chat Completions sandbox (``POST /v1/chat/completions``) for ``langchain_openai.ChatOpenAI``.

Answers are deterministic and built from the prompt (see :mod:`llm_answers`): structured output
(``response_format`` json_schema or a forced tool call) validates against the requested schema and
reflects the facts in the messages; plain chat restates them in one sentence. Usage is counted as
described in :mod:`llm_tokens`, and an optional per-key tokens-per-minute limit answers 429 the
way OpenAI does: a request is refused when its prompt does not fit beside the prompt and completion
tokens that key used in the last 60 s. Streaming is not served: the product never streams, and a request asking for it
gets a 400 that says so. ``unfaithful_rationales`` makes plain-chat rationales assert facts the reasons
do not state, as a careless model would.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from nightly_pipeline_sandbox.base import FaultConfig, LatencyModel, SandboxServer
from nightly_pipeline_sandbox.llm_answers import SchemaFiller, conversation_evidence, facts_object, text_reply
from nightly_pipeline_sandbox.llm_tokens import count_chat_prompt, count_tokens, message_text
from nightly_pipeline_sandbox.vendors_common import RollingWindow, stable_int


class _BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class OpenAIServer(SandboxServer):
    name = "openai"

    def __init__(self, *, seed: int = 7, api_keys: set[str] | None = None,
                 model_tokens_per_minute: int | None = None, clock: Callable[[], float] = time.monotonic,
                 latency: LatencyModel | None = None, faults: FaultConfig | None = None,
                 unfaithful_rationales: bool = False) -> None:
        super().__init__(seed=seed, latency=latency, faults=faults)
        self.api_keys = api_keys
        self.unfaithful_rationales = unfaithful_rationales
        self.tokens_per_minute = model_tokens_per_minute
        self.clock = clock
        self._state_lock = threading.Lock()
        self._reset_state()

    # -- SandboxServer ---------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat_completions)

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._state_lock:
            stats.update({
                "calls": sum(self._calls_by_key.values()),
                "calls_by_key": dict(self._calls_by_key),
                "calls_by_mode": dict(self._calls_by_mode),
                "tokens_by_mode": dict(self._tokens_by_mode),
                "prompt_tokens_by_key": dict(self._prompt_tokens),
                "completion_tokens_by_key": dict(self._completion_tokens),
                "prompt_tokens": sum(self._prompt_tokens.values()),
                "completion_tokens": sum(self._completion_tokens.values()),
                "rate_limited": self._refusals["rate_limited"],
                "unauthorized": self._refusals["unauthorized"],
                "max_tokens_in_60s": max((w.peak for w in self._token_windows.values()), default=0),
            })
        return stats

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self._calls_by_key: Counter[str] = Counter()
        self._calls_by_mode: Counter[str] = Counter()
        self._tokens_by_mode: Counter[str] = Counter()
        self._prompt_tokens: Counter[str] = Counter()
        self._completion_tokens: Counter[str] = Counter()
        self._refusals: Counter[str] = Counter()
        self._token_windows: dict[str, RollingWindow] = {}
        self._completion_serial = 0

    # -- endpoint --------------------------------------------------------------------------------
    async def _chat_completions(self, request: web.Request) -> web.Response:
        key = _bearer_key(request)
        if not key or (self.api_keys is not None and key not in self.api_keys):
            with self._state_lock:
                self._refusals["unauthorized"] += 1
            return _auth_error(key)
        try:
            body = await request.json()
        except ValueError:
            body = None
        try:
            completion_request = _CompletionRequest.parse(body)
        except _BadRequest as exc:
            return _openai_error(400, str(exc), "invalid_request_error", param=exc.param)
        prompt_tokens = completion_request.prompt_tokens()
        if (refusal := self._tokens_refusal(key, completion_request.model, prompt_tokens)) is not None:
            return refusal
        try:
            message, finish_reason, completion_tokens = completion_request.answer(
                unfaithful=self.unfaithful_rationales)
        except (KeyError, TypeError, ValueError) as exc:  # a $ref that points nowhere, a non-object schema …
            return _openai_error(400, f"Invalid schema for the requested output: {exc!r}", "invalid_request_error",
                                 param="response_format")
        return web.json_response(self._record_completion(key, completion_request, message, finish_reason,
                                                         prompt_tokens, completion_tokens),
                                 headers=self._limit_headers(key))

    def _tokens_refusal(self, key: str, model: str, requested: int) -> web.Response | None:
        if self.tokens_per_minute is None:
            return None
        now = self.clock()
        with self._state_lock:
            window = self._token_windows.setdefault(key, RollingWindow(60.0))
            used = window.total(now)
            if used + requested <= self.tokens_per_minute:
                return None
            self._refusals["rate_limited"] += 1
            wait = window.seconds_until_room(now, self.tokens_per_minute, requested)
        message = (f"Rate limit reached for {model} in organization org-sandbox on tokens per min (TPM): "
                   f"Limit {self.tokens_per_minute}, Used {used}, Requested {requested}. "
                   f"Please try again in {wait}s.")
        response = _openai_error(429, message, "tokens", code="rate_limit_exceeded")
        response.headers.update(self._limit_headers(key, reset_s=wait))
        return response

    def _limit_headers(self, key: str, reset_s: int = 0) -> dict[str, str]:
        if self.tokens_per_minute is None:
            return {}
        with self._state_lock:
            window = self._token_windows.setdefault(key, RollingWindow(60.0))
            remaining = max(0, self.tokens_per_minute - window.total(self.clock()))
        return {"x-ratelimit-limit-tokens": str(self.tokens_per_minute),
                "x-ratelimit-remaining-tokens": str(remaining), "x-ratelimit-reset-tokens": f"{reset_s}s"}

    def _record_completion(self, key: str, completion_request: _CompletionRequest, message: dict[str, Any],
                           finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        with self._state_lock:
            self._completion_serial += 1
            serial = self._completion_serial
            self._calls_by_key[key] += 1
            self._calls_by_mode[completion_request.mode] += 1
            self._tokens_by_mode[completion_request.mode] += prompt_tokens + completion_tokens
            self._prompt_tokens[key] += prompt_tokens
            self._completion_tokens[key] += completion_tokens
            self._token_windows.setdefault(key, RollingWindow(60.0)).add(
                self.clock(), prompt_tokens + completion_tokens)
        choices = [{"index": i, "finish_reason": finish_reason, "logprobs": None, "message": message}
                   for i in range(completion_request.choices)]
        return {
            "id": f"chatcmpl-sandbox{self.seed:03d}{serial:09d}", "object": "chat.completion",
            "created": int(time.time()), "model": completion_request.model, "system_fingerprint": None,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
        }


class _CompletionRequest:
    """A validated chat-completions body and the reply the sandbox gives to it."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.model: str = body["model"]
        self.messages: list[Mapping[str, Any]] = body["messages"]
        self.choices: int = body.get("n") or 1
        self.max_tokens: int | None = body.get("max_completion_tokens") or body.get("max_tokens")
        self.response_format: Mapping[str, Any] = body.get("response_format") or {}
        self.tool = self._forced_tool()

    @classmethod
    def parse(cls, body: Any) -> _CompletionRequest:
        if not isinstance(body, dict):
            raise _BadRequest("We could not parse the JSON body of your request.")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _BadRequest("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise _BadRequest("'messages' must be a non-empty array of objects with a 'role'", "messages")
        if body.get("stream"):
            raise _BadRequest("This sandbox does not stream; send stream=false", "stream")
        response_format = body.get("response_format") or {}
        if not isinstance(response_format, dict):
            raise _BadRequest("response_format must be an object", "response_format")
        if response_format.get("type") == "json_schema" and not isinstance(
                (response_format.get("json_schema") or {}).get("schema"), dict):
            raise _BadRequest("response_format.json_schema.schema must be an object", "response_format")
        n = body.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= 8:
            raise _BadRequest("n must be an integer between 1 and 8", "n")
        for limit in ("max_tokens", "max_completion_tokens"):
            if limit in body and body[limit] is not None and (not isinstance(body[limit], int) or body[limit] < 1):
                raise _BadRequest(f"{limit} must be a positive integer", limit)
        tools = body.get("tools") or []
        if not isinstance(tools, list) or not all(
                isinstance(t, dict) and isinstance((t.get("function") or {}).get("name"), str) for t in tools):
            raise _BadRequest("tools must be a list of {type: function, function: {name, parameters}}", "tools")
        return cls(body)

    def _forced_tool(self) -> Mapping[str, Any] | None:
        """The function the reply must call: the named one, or the first when calls are required or
        left to the model (answering with text only once a tool result is already in the thread)."""
        tools = [t["function"] for t in self.body.get("tools") or []]
        choice = self.body.get("tool_choice", "auto")
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict):
            wanted = (choice.get("function") or {}).get("name")
            named = next((t for t in tools if t.get("name") == wanted), None)
            if named is None:
                raise _BadRequest(f"tool_choice names an unknown function {wanted!r}", "tool_choice")
            return named
        if choice == "auto" and self.messages[-1].get("role") == "tool":
            return None
        return tools[0]

    @property
    def mode(self) -> str:
        if self.tool is not None:
            return "tool_call"
        return str(self.response_format.get("type", "text"))

    def prompt_tokens(self) -> int:
        schema = (self.response_format.get("json_schema") if self.response_format.get("type") == "json_schema"
                  else None)
        return count_chat_prompt(self.messages, tools=self.body.get("tools"), response_schema=schema)

    def answer(self, *, unfaithful: bool = False) -> tuple[dict[str, Any], str, int]:
        """The assistant message, its finish reason and its completion token count."""
        evidence = conversation_evidence(self.messages)
        if self.tool is not None:
            arguments = json.dumps(SchemaFiller(evidence, self.tool.get("parameters") or {}).fill())
            tokens = count_tokens(self.tool["name"]) + count_tokens(arguments)
            call = {"id": f"call_{stable_int('openai-call', arguments, modulo=10**12):012d}", "type": "function",
                    "function": {"name": self.tool["name"], "arguments": arguments}}
            return ({"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]},
                    "tool_calls", tokens)
        kind = self.response_format.get("type")
        if kind == "json_schema":
            content = json.dumps(SchemaFiller(evidence, self.response_format["json_schema"]["schema"]).fill())
        elif kind == "json_object":
            content = json.dumps(facts_object(evidence))
        else:
            last_user = next((message_text(m.get("content")) for m in reversed(self.messages)
                              if m.get("role") == "user"), "")
            content = text_reply(evidence, last_user, unfaithful=unfaithful)
        content, finish_reason = self._within_max_tokens(content)
        message = {"role": "assistant", "content": content, "refusal": None, "tool_calls": None}
        return message, finish_reason, count_tokens(content)

    def _within_max_tokens(self, content: str) -> tuple[str, str]:
        if self.max_tokens is None or count_tokens(content) <= self.max_tokens:
            return content, "stop"
        words = content.split(" ")
        while words and count_tokens(" ".join(words)) > self.max_tokens:
            words.pop()
        return " ".join(words), "length"


def _bearer_key(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _auth_error(key: str) -> web.Response:
    if not key:
        message = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
                   "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        return _openai_error(401, message, "invalid_request_error")
    masked = f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else "*" * len(key)
    return _openai_error(401, f"Incorrect API key provided: {masked}.", "invalid_request_error",
                         code="invalid_api_key")


def _openai_error(status: int, message: str, error_type: str, *, param: str | None = None,
                  code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": error_type, "param": param, "code": code}},
                             status=status)
