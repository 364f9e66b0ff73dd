"""Runs an aiohttp sandbox server on its own event-loop thread so synchronous tests can call it."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import TypeVar

from nightly_pipeline_sandbox.base import SandboxServer

Server = TypeVar("Server", bound=SandboxServer)


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Start ``server`` on 127.0.0.1 (a free port) for the duration of the ``with`` block."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"{server.name}-sandbox", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


class FakeClock:
    """A clock the test moves by hand (``clock.now += 61``) instead of sleeping."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
