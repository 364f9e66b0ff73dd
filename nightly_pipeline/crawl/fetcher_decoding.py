"""Content-Encoding decoders with a bound on the output of every call.

httpx's own decoders inflate each network chunk completely: one 64 KiB brotli chunk can expand
to gigabytes before any size check runs (the failure behind Scrapy's CVE-2025-6176). These
decoders produce at most ``limit`` bytes per call (brotli: plus less than one
:data:`DECODE_STEP`), so a body cap stops a compression bomb within one step of the cap.
"""
from __future__ import annotations

import zlib
from typing import Protocol

import brotli

DECODE_STEP = 64 * 1024


class UnsupportedEncoding(ValueError):
    """A Content-Encoding the crawler does not decode."""


class BodyDecoder(Protocol):
    decoded_bytes: int

    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``, returning at most ``limit`` bytes (brotli: within one step more).

        When less than ``limit`` comes back, all of ``data`` was consumed; when ``limit`` is
        reached, undecoded input may remain and the caller is expected to stop.
        """
        ...


class IdentityDecoder:
    def __init__(self) -> None:
        self.decoded_bytes = 0

    def decode(self, data: bytes, limit: int) -> bytes:
        output = data[:limit]
        self.decoded_bytes += len(output)
        return output


class ZlibDecoder:
    """gzip (``wbits`` 47 detects a gzip or zlib header) or deflate (zlib, falling back to raw)."""

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        self._started = False
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if gzip else zlib.MAX_WBITS)
        self.decoded_bytes = 0

    def decode(self, data: bytes, limit: int) -> bytes:
        try:
            output = self._bounded(data, limit)
        except zlib.error:
            # "deflate" is sent both zlib-wrapped (RFC 9110) and raw by broken servers.
            if self._gzip or self._started:
                raise
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            output = self._bounded(data, limit)
        self._started = True
        self.decoded_bytes += len(output)
        return output

    def _bounded(self, data: bytes, limit: int) -> bytes:
        parts = [self._inflater.decompress(data, limit)]
        produced = len(parts[0])
        while produced < limit and self._inflater.unconsumed_tail:
            part = self._inflater.decompress(self._inflater.unconsumed_tail, limit - produced)
            if not part:
                break
            parts.append(part)
            produced += len(part)
        return b"".join(parts)


class BrotliDecoder:
    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()
        self.decoded_bytes = 0

    def decode(self, data: bytes, limit: int) -> bytes:
        step = max(1, min(DECODE_STEP, limit))
        parts = [self._decompressor.process(data, output_buffer_limit=step)]
        produced = len(parts[0])
        # Input beyond the step stays buffered inside the decompressor; drain it step by step.
        while produced < limit and not self._decompressor.can_accept_more_data():
            step = max(1, min(DECODE_STEP, limit - produced))
            part = self._decompressor.process(b"", output_buffer_limit=step)
            if not part:
                break
            parts.append(part)
            produced += len(part)
        self.decoded_bytes += produced
        return b"".join(parts)


def make_decoder(content_encoding: str | None) -> BodyDecoder:
    """The decoder for a response's ``Content-Encoding`` header."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return IdentityDecoder()
    if len(codings) > 1:
        raise UnsupportedEncoding(f"stacked content codings {content_encoding!r}")
    coding = codings[0]
    if coding in ("gzip", "x-gzip"):
        return ZlibDecoder(gzip=True)
    if coding == "deflate":
        return ZlibDecoder(gzip=False)
    if coding == "br":
        return BrotliDecoder()
    raise UnsupportedEncoding(f"content coding {coding!r}")
