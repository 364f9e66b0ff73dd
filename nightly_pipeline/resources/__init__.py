"""The Odoo resource, until it joins the other vendors in ``nightly_pipeline.vendors``."""
