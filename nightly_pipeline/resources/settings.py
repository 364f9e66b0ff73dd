"""The pipeline's settings as a resource, so a run reads the environment when it starts."""
from __future__ import annotations

import os

import dagster as dg

from nightly_pipeline.settings import Settings, load_settings


class PipelineSettings(dg.ConfigurableResource):
    """Settings from the environment; ``overrides`` (non-secret values only) win over it."""

    overrides: dict[str, str] = {}

    def get(self) -> Settings:
        return load_settings({**os.environ, **self.overrides})
