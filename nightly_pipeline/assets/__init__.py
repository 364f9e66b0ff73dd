"""One module per pipeline stage, in graph order."""
from nightly_pipeline.assets.companies import companies
from nightly_pipeline.assets.contacts import contacts
from nightly_pipeline.assets.crawl_corpus import crawl_corpus
from nightly_pipeline.assets.daily_targets import daily_targets
from nightly_pipeline.assets.icp_candidates import icp_candidates
from nightly_pipeline.assets.lead_scores import lead_scores
from nightly_pipeline.assets.odoo_sync import odoo_sync
from nightly_pipeline.assets.verified_emails import verified_emails

NIGHTLY_GROUP = "nightly"
all_assets = [companies, icp_candidates, daily_targets, crawl_corpus, contacts, verified_emails, lead_scores,
              odoo_sync]

__all__ = ["NIGHTLY_GROUP", "all_assets", "companies", "contacts", "crawl_corpus", "daily_targets",
           "icp_candidates", "lead_scores", "odoo_sync", "verified_emails"]
