"""One resource per external system; each stays thin and typed."""
from typing import Any

from nightly_pipeline.resources.database import DatabaseResource
from nightly_pipeline.resources.llm import LLMResource
from nightly_pipeline.resources.lusha import LushaResource
from nightly_pipeline.resources.settings import PipelineSettings
from nightly_pipeline.resources.tavily import TavilyResource
from nightly_pipeline.resources.zerobounce import ZeroBounceResource
from nightly_pipeline.vendors.odoo import OdooResource


def default_resources() -> dict[str, Any]:
    """Every resource configured from the environment when a run starts (nothing baked in)."""
    return {"database": DatabaseResource(), "pipeline_settings": PipelineSettings(), "tavily": TavilyResource(),
            "llm": LLMResource(), "lusha": LushaResource(), "zerobounce": ZeroBounceResource(),
            "odoo": OdooResource()}


__all__ = ["DatabaseResource", "LLMResource", "LushaResource", "OdooResource", "PipelineSettings",
           "TavilyResource", "ZeroBounceResource", "default_resources"]
