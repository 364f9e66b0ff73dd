"""The app database: embedded by default, ``DATABASE_URL`` when set."""
from __future__ import annotations

import contextlib
import os

import dagster as dg
from pydantic import PrivateAttr

from nightly_pipeline.db import Database, open_database
from nightly_pipeline.settings import load_settings


class DatabaseResource(dg.ConfigurableResource):
    """Holds the runtime role's connection pool for one run (or one sensor tick).

    Left unset, ``database_url`` comes from ``DATABASE_URL`` when the run starts, so the URL never
    appears in the UI or run config; tests set it to their own server.
    """

    database_url: str | None = None
    dagster_home: str | None = None
    pool_size: int = 8

    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)
    _db: Database | None = PrivateAttr(default=None)

    def _open(self) -> Database:
        env = dict(os.environ)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.dagster_home:
            env["DAGSTER_HOME"] = self.dagster_home
        self._stack = contextlib.ExitStack()
        self._db = self._stack.enter_context(open_database(load_settings(env), max_size=self.pool_size))
        return self._db

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._open()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
            self._db = None

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("DatabaseResource is used outside a run; open it with setup_for_execution")
        return self._db
