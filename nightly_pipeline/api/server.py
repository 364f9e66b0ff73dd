"""``nightly-pipeline api serve``: the admin API under uvicorn, with the pipeline's settings."""
from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from nightly_pipeline.api.app import ApiServices, create_app
from nightly_pipeline.db import open_database
from nightly_pipeline.instance import ensure_dagster_home
from nightly_pipeline.launch import NightLauncher
from nightly_pipeline.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _stop_signals_return() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the handler
    it found; with the default one the process would die there, before the code server, the pool
    and the embedded database are released. Found with this handler, serving simply returns."""
    noted = lambda signum, frame: log.info("admin API stopped by signal %d", signum)  # noqa: E731
    previous = {sig: signal.signal(sig, noted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; then the code server, the pool and the instance are released."""
    ensure_dagster_home(settings)
    import dagster as dg

    logging.getLogger("nightly_pipeline").setLevel(logging.INFO)
    with open_database(settings, max_size=8) as db, dg.DagsterInstance.get() as instance:
        log.info("admin API: app database %s, Dagster instance %s", db.target.describe(), settings.dagster_home)
        with NightLauncher(instance) as launcher, _stop_signals_return():
            app = create_app(ApiServices(settings=settings, db=db, instance=instance, launcher=launcher))
            uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, proxy_headers=False)
