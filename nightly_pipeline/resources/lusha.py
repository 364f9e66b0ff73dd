"""Lusha, the contact fallback for companies whose website names nobody; none without a key."""
from __future__ import annotations

import dagster as dg
from pydantic import Field

from nightly_pipeline.enrich.lusha_client import (
    DEFAULT_BASE_URL,
    MAX_IN_FLIGHT,
    LushaClient,
)
from nightly_pipeline.settings import Settings


class LushaResource(dg.ConfigurableResource):
    """Builds :class:`LushaClient`; without a key the contacts stage keeps site contacts only.

    Fields left unset are filled from the run's settings (``LUSHA_API_KEY``, ``LUSHA_BASE_URL``) by
    :meth:`with_settings` when the run starts, so the key never appears in run config or the UI.
    """

    # Kept out of repr so that logging the resource never prints the key.
    api_key: str | None = Field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 30.0
    max_in_flight: int = MAX_IN_FLIGHT

    def with_settings(self, settings: Settings) -> "LushaResource":
        """This resource with its unset key and default URL taken from ``settings``."""
        return LushaResource(api_key=self.api_key or settings.secret("lusha_api_key"),
                             base_url=settings.lusha_base_url if self.base_url == DEFAULT_BASE_URL else self.base_url,
                             timeout_s=self.timeout_s, max_in_flight=self.max_in_flight)

    @property
    def has_key(self) -> bool:
        return bool((self.api_key or "").strip())

    def client(self) -> LushaClient | None:
        """A client for the running event loop (use it as ``async with``), or None without a key."""
        if not self.has_key:
            return None
        return LushaClient(self.api_key or "", base_url=self.base_url, timeout_s=self.timeout_s,
                           max_in_flight=self.max_in_flight)
