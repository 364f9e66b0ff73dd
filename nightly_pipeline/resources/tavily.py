"""The Tavily API client, or none when no key is configured (the fallback then makes no calls)."""
from __future__ import annotations

import dagster as dg
from pydantic import Field
from tavily import TavilyClient

from nightly_pipeline.settings import Settings

DEFAULT_BASE_URL = "https://api.tavily.com"


class TavilyResource(dg.ConfigurableResource):
    """Builds the ``TavilyClient``; values left unset here come from the settings passed to :meth:`client`.

    Wire ``api_key`` with ``dg.EnvVar("TAVILY_API_KEY")``, or leave it unset and pass the run's
    settings, so the key stays out of run config and the UI. ``base_url`` points the client at a
    compatible server (the sandbox in tests).
    """

    # Kept out of repr so that logging the resource never prints the key.
    api_key: str | None = Field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL

    def client(self, settings: Settings | None = None) -> TavilyClient | None:
        """A client, or None without a key.

        Never a keyless client: tavily-python would otherwise read ``TAVILY_API_KEY`` from the
        process environment or fall back to its anonymous mode, behind the run's configuration.
        The caller closes the client.
        """
        key = (self.api_key or "").strip() or _settings_key(settings)
        if not key:
            return None
        base_url = self.base_url
        if base_url == DEFAULT_BASE_URL and settings is not None:
            base_url = settings.tavily_base_url
        return TavilyClient(api_key=key, api_base_url=base_url.rstrip("/"))


def _settings_key(settings: Settings | None) -> str | None:
    if settings is None:
        return None
    return (settings.secret("tavily_api_key") or "").strip() or None
