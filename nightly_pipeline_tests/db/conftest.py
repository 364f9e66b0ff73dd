"""Throw-away PostgreSQL roles for the security tests, dropped again so a shared server keeps the
roles it had."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from nightly_pipeline.db import DatabaseTarget


def url_as(url: str, user: str) -> str:
    """``url`` with another user (test servers trust local connections, so no password)."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["user"] = user
    params.pop("password", None)
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture
def scratch_role(pg_server_url: str, db_target: DatabaseTarget) -> Iterator[Callable[..., str]]:
    """``scratch_role(options, member_of=[...])`` creates a uniquely named role and returns its name."""
    created: list[str] = []
    with psycopg.connect(pg_server_url, autocommit=True) as server:
        def create(options: str = "LOGIN", member_of: tuple[str, ...] | list[str] = ()) -> str:
            name = f"np_scratch_{uuid.uuid4().hex[:10]}"
            server.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))
            created.append(name)
            for role in member_of:
                server.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(name)))
            return name

        try:
            yield create
        finally:
            with psycopg.connect(db_target.admin_url, autocommit=True) as database:
                for name in created:
                    # Privileges a test granted inside the test database hold the role there.
                    database.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            for name in reversed(created):
                server.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
            left = server.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (created,)).fetchall()
            assert not left, f"roles left behind: {left}"
