"""One module per pipeline stage, in graph order: companies, icp_candidates, daily_targets,
crawl_corpus, contacts, verified_emails, lead_scores, odoo_sync. ``definitions`` loads them all
into :data:`NIGHTLY_GROUP`, which the nightly job selects."""

NIGHTLY_GROUP = "nightly"
