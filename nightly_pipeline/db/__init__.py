"""The database layer: it owns SQL and migrations; assets and the CLI call its functions."""
from nightly_pipeline.db.database import Database, DatabaseError, DatabaseTarget, TenantNotSet, open_database

__all__ = ["Database", "DatabaseError", "DatabaseTarget", "TenantNotSet", "open_database"]
