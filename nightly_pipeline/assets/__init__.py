"""One module per pipeline stage, in graph order."""
from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.icp_candidates import icp_candidates

NIGHTLY_GROUP = "nightly"
all_assets = [companies, icp_candidates, daily_targets]

__all__ = ["all_assets", "companies", "daily_targets", "icp_candidates", "NIGHTLY_GROUP"]
