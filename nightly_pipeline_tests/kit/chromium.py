"""Headless Chromium (Debian's ``chromium`` package) for rendering the shortlist page in tests, with
a loopback listener standing in for the network: every request the page makes would reach it."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# CI installs Debian's chromium (.ci/run) and sets this, so a missing browser fails there.
REQUIRE_VARIABLE = "REQUIRE_CHROMIUM"
TIMEOUT_S = 120


def chromium_or_skip() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    if os.environ.get(REQUIRE_VARIABLE):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"Debian's chromium is not installed ({CHROMIUM}); apt-get install -y chromium")


@dataclasses.dataclass
class Listener:
    """A TCP port that counts every connection made to it (the proxy all browser traffic must use)."""

    port: int
    connections: int = 0


@contextlib.contextmanager
def network_listener() -> Iterator[Listener]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    listener = Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            listener.connections += 1
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join()
        server.close()


def _flags(profile: Path, proxy_port: int) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--disable-default-apps", "--metrics-recording-only", "--no-default-browser-check",
            f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{proxy_port}",
            "--proxy-bypass-list=<-loopback>", "--host-resolver-rules=MAP * ~NOTFOUND"]


def render(page: Path, work: Path, listener: Listener, *, width: int = 1280, height: int = 2400) -> tuple[str, Path]:
    """The DOM Chromium built from ``page`` and a screenshot of it (``work/page.png``)."""
    browser = chromium_or_skip()
    screenshot = work / "page.png"
    common = _flags(work / "profile", listener.port) + [f"--window-size={width},{height}"]
    dom = subprocess.run([browser, *common, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=TIMEOUT_S, check=True).stdout
    subprocess.run([browser, *common, f"--screenshot={screenshot}", "--hide-scrollbars", page.as_uri()],
                   capture_output=True, timeout=TIMEOUT_S, check=True)
    return dom, screenshot
