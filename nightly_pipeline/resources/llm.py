"""The OpenAI chat model used for AI extraction, or none when no key is configured."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import dagster as dg
import openai
from langchain_openai import ChatOpenAI
from pydantic import Field, SecretStr

from nightly_pipeline.settings import Settings

DEFAULT_MODEL = "gpt-4o-mini"


class LLMResource(dg.ConfigurableResource):
    """Builds the ``ChatOpenAI`` client; without a key extraction runs deterministically.

    Fields left unset are taken from the run's settings (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
    ``LANGCHAIN_MODEL``) by :meth:`with_settings` when the run starts, so the key is read from the
    environment, never shown in run config or the UI, and may be absent (``dg.EnvVar`` would fail
    the run instead of letting it degrade).
    """

    # Kept out of repr so that logging the resource never prints the key.
    api_key: str | None = Field(default=None, repr=False)
    base_url: str | None = None
    model: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2

    def with_settings(self, settings: Settings) -> "LLMResource":
        """This resource with its unset fields filled from ``settings``."""
        return LLMResource(api_key=self.api_key or settings.secret("openai_api_key"),
                           base_url=self.base_url or settings.openai_base_url,
                           model=self.model or settings.langchain_model,
                           timeout_s=self.timeout_s, max_retries=self.max_retries)

    @property
    def has_key(self) -> bool:
        return bool(self._key())

    def _key(self) -> str:
        return (self.api_key or "").strip()

    def chat_model(self) -> ChatOpenAI | None:
        """A client for :attr:`model`, or None without a key (callers then degrade, never fail).

        Each client gets its own async connection pool: langchain-openai otherwise shares one pool
        per base URL across the process, and a pool whose connections were opened on an earlier,
        closed event loop fails every later call. Build one per event loop, preferably through
        :meth:`chat_session`, which also closes the pool.
        """
        key = self._key()
        if not key:
            return None
        return ChatOpenAI(
            model=self.model or DEFAULT_MODEL,
            api_key=SecretStr(key),
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
            http_async_client=openai.DefaultAsyncHttpxClient(timeout=self.timeout_s),
            # Chat Completions only: langchain-openai picks the Responses API by model name for some models.
            use_responses_api=False,
            # Our own async client already; the socket-option transport would only override proxies.
            http_socket_options=(),
        )

    @contextlib.asynccontextmanager
    async def chat_session(self) -> AsyncIterator[ChatOpenAI | None]:
        """:meth:`chat_model` for the running event loop, its connections closed on exit."""
        model = self.chat_model()
        try:
            yield model
        finally:
            if model is not None:
                await model.root_async_client.close()
