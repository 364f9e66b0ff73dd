"""ZeroBounce, the email verifier; none without a key (contacts then stay unverified)."""
from __future__ import annotations

import dagster as dg
from pydantic import Field

from nightly_pipeline.enrich.zerobounce_client import (
    DEFAULT_BASE_URL,
    DEFAULT_BULK_BASE_URL,
    ZeroBounceClient,
)
from nightly_pipeline.settings import Settings


class ZeroBounceResource(dg.ConfigurableResource):
    """Builds :class:`ZeroBounceClient`; without a key contacts stay unverified.

    ``base_url`` serves ``validate`` and ``getcredits``, ``bulk_base_url`` serves ``validatebatch``
    (the sandbox answers both under one URL). Fields left unset are filled from the run's settings by
    :meth:`with_settings` when the run starts, so the key never appears in run config or the UI.
    """

    # Kept out of repr so that logging the resource never prints the key.
    api_key: str | None = Field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    bulk_base_url: str = DEFAULT_BULK_BASE_URL
    timeout_s: float = 30.0
    batch_timeout_s: float = 150.0

    def with_settings(self, settings: Settings) -> "ZeroBounceResource":
        """This resource with its unset key and default URLs taken from ``settings``."""
        return ZeroBounceResource(
            api_key=self.api_key or settings.secret("zerobounce_api_key"),
            base_url=settings.zerobounce_base_url if self.base_url == DEFAULT_BASE_URL else self.base_url,
            bulk_base_url=(settings.zerobounce_bulk_base_url if self.bulk_base_url == DEFAULT_BULK_BASE_URL
                           else self.bulk_base_url),
            timeout_s=self.timeout_s, batch_timeout_s=self.batch_timeout_s)

    @property
    def has_key(self) -> bool:
        return bool((self.api_key or "").strip())

    def client(self) -> ZeroBounceClient | None:
        """A client for the running event loop (use it as ``async with``), or None without a key."""
        if not self.has_key:
            return None
        return ZeroBounceClient(self.api_key or "", base_url=self.base_url, bulk_base_url=self.bulk_base_url,
                                timeout_s=self.timeout_s, batch_timeout_s=self.batch_timeout_s)
