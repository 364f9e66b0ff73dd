"""Pushing scored companies to the tenants' CRMs (Odoo)."""
from nightly_pipeline.odoo_sync.sync import (
    OdooLoginError,
    OdooSync,
    OdooSyncError,
    OdooUnavailable,
    RecordOutcome,
    SyncContact,
    SyncRecord,
    SyncReport,
    sync_and_record,
)

__all__ = ["OdooLoginError", "OdooSync", "OdooSyncError", "OdooUnavailable", "RecordOutcome", "SyncContact",
           "SyncRecord", "SyncReport", "sync_and_record"]
