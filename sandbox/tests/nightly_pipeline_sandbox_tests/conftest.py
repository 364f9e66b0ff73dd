"""Fixtures of the sandbox's own tests."""
from __future__ import annotations

import pytest

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def loopback_without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real clients (httpx, requests under tavily-python, urllib under odoorpc) honour proxy
    variables; every sandbox server is on loopback and must be reached directly."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
