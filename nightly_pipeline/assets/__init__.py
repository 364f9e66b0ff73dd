"""One module per pipeline stage, in graph order."""
from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.crawl_corpus import crawl_corpus
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.icp_candidates import icp_candidates

NIGHTLY_GROUP = "nightly"
all_assets = [companies, icp_candidates, daily_targets, crawl_corpus]

__all__ = ["all_assets", "companies", "crawl_corpus", "daily_targets", "icp_candidates", "NIGHTLY_GROUP"]
