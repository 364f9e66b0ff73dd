"""Pushing scored companies to the tenants' CRMs (Odoo): typed records, pure matching, and the
orchestrated sync; the JSON-RPC client itself lives in :mod:`nightly_pipeline.vendors.odoo`."""
from nightly_pipeline.odoo_sync.records import RecordOutcome, SyncContact, SyncRecord, SyncReport
from nightly_pipeline.odoo_sync.sync import OdooSync, sync_and_record

__all__ = ["OdooSync", "RecordOutcome", "SyncContact", "SyncRecord", "SyncReport", "sync_and_record"]
