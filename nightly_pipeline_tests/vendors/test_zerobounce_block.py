"""ZeroBounce's block of a key, met by one client, keeps every client of that key from calling."""
from __future__ import annotations

import asyncio

import pytest

from nightly_pipeline.db import Database
from nightly_pipeline.db.rate_limits import FleetRateLimiter
from nightly_pipeline.vendors.rate_limits import Window
from nightly_pipeline.vendors.zerobounce import BATCH_BUCKET, ZeroBounceClient, ZeroBounceThrottled
from nightly_pipeline_sandbox.harness import serving
from nightly_pipeline_sandbox.zerobounce import ZeroBounceServer

pytestmark = pytest.mark.database

KEY = "zb-block-key"


def test_a_block_met_by_one_client_stops_the_others_before_they_call(db: Database) -> None:
    with serving(ZeroBounceServer(api_keys={KEY}, batch_per_minute=1)) as server:
        base = f"{server.url}/v2"

        def client() -> ZeroBounceClient:
            zb = ZeroBounceClient(KEY, base_url=base, bulk_base_url=base)
            # Configured above the vendor's limit, so the vendor is the one to refuse.
            zb.limiter = FleetRateLimiter(db, zb.key_fingerprint, {BATCH_BUCKET: (Window(100, 60.0),)})
            return zb

        async def run() -> tuple[Exception, Exception]:
            async with client() as first, client() as second:
                await first.validate_batch(["valid.a@firm.com.sg"])
                with pytest.raises(ZeroBounceThrottled) as refused:
                    await first.validate_batch(["valid.b@firm.com.sg"])
                with pytest.raises(ZeroBounceThrottled) as held_off:
                    await second.validate_batch(["valid.c@firm.com.sg"])
                return refused.value, held_off.value

        refused, held_off = asyncio.run(run())
        stats = server.stats()

    assert "answered 429" in str(refused)
    assert "blocked by the vendor until" in str(held_off)
    assert stats["calls_by_endpoint"]["validatebatch"] == 2, "the second client never reached ZeroBounce"
    assert stats["batch_refusals"] == 1
