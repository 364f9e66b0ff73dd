"""Runs an aiohttp sandbox server on its own event-loop thread so synchronous tests can call it."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from nightly_pipeline_sandbox.base import SandboxServer

Server = TypeVar("Server", bound=SandboxServer)
T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, so synchronous code can drive async servers."""

    def __init__(self, name: str = "sandbox-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Start ``server`` on 127.0.0.1 (a free port) for the duration of the ``with`` block."""
    loop = LoopThread(f"{server.name}-sandbox")
    try:
        loop.run(server.start(), timeout=10)
        yield server
    finally:
        try:
            loop.run(server.stop(), timeout=30)
        finally:
            loop.close()


class FakeClock:
    """A clock the test moves by hand (``clock.now += 61``) instead of sleeping."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
