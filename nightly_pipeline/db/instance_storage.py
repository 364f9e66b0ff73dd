"""The PostgreSQL database that holds Dagster's own storage (runs, event logs, schedules)."""
from __future__ import annotations

import psycopg
from psycopg import sql

from nightly_pipeline.settings import redact_url


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg2://…`` as libpq spells it."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {redact_url(sqlalchemy_url)}")
    return f"postgresql://{rest}"


def ensure_database(sqlalchemy_url: str) -> bool:
    """Create the URL's database on its server unless it exists; True when it was created.

    Connects to the server's ``postgres`` maintenance database as the URL's user, who must be
    allowed to create databases for the first start to create it.
    """
    params = psycopg.conninfo.conninfo_to_dict(libpq_url(sqlalchemy_url))
    name = params.get("dbname")
    if not name:
        raise ValueError(f"the URL names no database: {redact_url(sqlalchemy_url)}")
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True
