"""The pipeline's settings as a Dagster resource: read from the environment once, when a run starts.

Assets and vendor resources take the loaded :class:`~nightly_pipeline.settings.Settings` from here
instead of reading the environment themselves; a malformed variable stops the run at start-up with
the one-line :class:`~nightly_pipeline.settings.SettingsError` naming it.
"""
from __future__ import annotations

import os
import typing

import dagster as dg
from pydantic import PrivateAttr, SecretStr, field_validator

from nightly_pipeline.settings import Settings, load_settings

# Overrides land in run config and the UI, so they may only carry values that are safe to show.
_SECRET_FIELDS = frozenset(name for name, field in Settings.model_fields.items()
                           if SecretStr in (field.annotation, *typing.get_args(field.annotation)))


class PipelineSettings(dg.ConfigurableResource):
    """Settings from the environment; ``overrides`` (non-secret values, by variable name) win over it."""

    overrides: dict[str, str] = {}

    _settings: Settings | None = PrivateAttr(default=None)

    @field_validator("overrides")
    @classmethod
    def _no_secrets(cls, overrides: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in overrides if name.lower() in _SECRET_FIELDS)
        if secret:
            raise ValueError(f"overrides must not carry secrets ({', '.join(secret)}): set them in the environment")
        return overrides

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = load_settings({**os.environ, **self.overrides})

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("PipelineSettings is read outside a run; Dagster loads it with setup_for_execution")
        return self._settings
