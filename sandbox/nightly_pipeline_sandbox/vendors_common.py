"""Helpers shared by the vendor sandbox servers (Lusha, ZeroBounce, OpenAI): rolling-window
counters for rate limits, stable hashing for seeded decisions and domain normalisation."""
from __future__ import annotations

import collections
import functools
import hashlib
import math
from urllib.parse import urlsplit

import tldextract

FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.com.sg", "hotmail.com", "outlook.com", "live.com",
    "icloud.com", "singnet.com.sg", "pacific.net.sg", "protonmail.com",
})


class RollingWindow:
    """Weighted events inside the last ``window_s`` seconds (a sliding-log limiter).

    ``peak`` is the largest total ever seen inside one window, i.e. the busiest ``window_s``
    seconds so far; benchmarks read it to check that a client stayed under a vendor's limit.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self._total = 0
        self.peak = 0

    def total(self, now: float) -> int:
        self._evict(now)
        return self._total

    def add(self, now: float, weight: int = 1) -> int:
        self._evict(now)
        self._events.append((now, weight))
        self._total += weight
        self.peak = max(self.peak, self._total)
        return self._total

    def seconds_until_room(self, now: float, limit: int, weight: int = 1) -> int:
        """Whole seconds until ``weight`` more fits under ``limit`` (at least 1 when it does not fit now)."""
        self._evict(now)
        excess = self._total + weight - limit
        if excess <= 0:
            return 0
        freed = 0
        for at, event_weight in self._events:
            freed += event_weight
            if freed >= excess:
                return max(1, math.ceil(at + self.window_s - now))
        return max(1, math.ceil(self.window_s))

    def _evict(self, now: float) -> None:
        horizon = now - self.window_s
        while self._events and self._events[0][0] <= horizon:
            _, weight = self._events.popleft()
            self._total -= weight


def stable_fraction(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts``; unlike ``hash()`` it survives interpreter restarts."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def stable_int(*parts: object, modulo: int) -> int:
    return int(stable_fraction(*parts) * modulo)


@functools.cache
def public_suffixes() -> tldextract.TLDExtract:
    """The simulated world's own reading of domains; it never borrows the pipeline's, which it tests."""
    # The bundled public-suffix snapshot only: the sandbox must never reach the network.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def normalise_domain(value: str) -> str:
    """``"https://WWW.Acme.com.sg/about"`` and ``"acme.com.sg"`` both become ``"acme.com.sg"``."""
    text = value.strip().lower()
    if "//" not in text:
        text = "//" + text
    host = (urlsplit(text).hostname or "").rstrip(".")
    return host[4:] if host.startswith("www.") else host


def registrable_label(domain: str) -> str:
    """The name part of the registrable domain: ``"shop.pearlapps.com.sg"`` → ``"pearlapps"``."""
    return public_suffixes()(domain).domain
