"""One resource per external system; each stays thin and typed."""
from nightly_pipeline.resources.database import DatabaseResource
from nightly_pipeline.resources.settings import PipelineSettings

__all__ = ["DatabaseResource", "PipelineSettings"]
