"""AI extraction results per tenant, keyed by corpus hash and model (``extraction_cache``), in the
tenant's transaction (``Database.tenant``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def get_cached(conn: psycopg.Connection, corpus_hash: str, model: str) -> dict[str, Any] | None:
    """The stored profile for this corpus and model, or None when it was never extracted."""
    row = conn.execute(
        """SELECT profile FROM extraction_cache
           WHERE tenant_id = current_tenant_id() AND corpus_hash = %s AND model = %s""",
        (corpus_hash, model)).fetchone()
    return row["profile"] if row is not None else None


def put_cached(conn: psycopg.Connection, corpus_hash: str, model: str, profile: Mapping[str, Any],
               tokens_used: int) -> None:
    """Store (or replace) the profile extracted from this corpus with this model."""
    conn.execute(
        """INSERT INTO extraction_cache (corpus_hash, model, profile, tokens_used)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (tenant_id, corpus_hash, model) DO UPDATE
               SET profile = excluded.profile, tokens_used = excluded.tokens_used, created_at = now()""",
        (corpus_hash, model, Jsonb(dict(profile)), tokens_used))
