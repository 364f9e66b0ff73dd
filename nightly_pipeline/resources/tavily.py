"""The Tavily API client, or none when no key is configured (the fallback then makes no calls)."""
from __future__ import annotations

import dagster as dg
from pydantic import Field
from tavily import TavilyClient

from nightly_pipeline.settings import Settings


class TavilyResource(dg.ConfigurableResource):
    """Builds the ``TavilyClient``.

    Fields left unset are filled from the run's settings (``TAVILY_API_KEY``, ``TAVILY_BASE_URL``)
    by :meth:`with_settings` when the run starts: the key comes from the environment, never from run
    config or the UI, and may be absent (``dg.EnvVar`` would fail the run instead of degrading it).
    """

    # Kept out of repr so that logging the resource never prints the key.
    api_key: str | None = Field(default=None, repr=False)
    base_url: str | None = None

    def with_settings(self, settings: Settings) -> "TavilyResource":
        """This resource with its unset fields filled from ``settings``."""
        return TavilyResource(api_key=self.api_key or settings.secret("tavily_api_key"),
                              base_url=self.base_url or settings.tavily_base_url)

    def client(self) -> TavilyClient | None:
        """A client, or None without a key.

        Never a keyless client: tavily-python would otherwise read ``TAVILY_API_KEY`` from the
        process environment or fall back to its anonymous mode, behind the run's configuration.
        The caller closes the client.
        """
        key = (self.api_key or "").strip()
        if not key:
            return None
        return TavilyClient(api_key=key, api_base_url=(self.base_url or "https://api.tavily.com").rstrip("/"))
