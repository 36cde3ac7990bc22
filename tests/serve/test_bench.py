"""The load generator of `omnifuse bench serve` (figures come from the bench, not from tests)."""

from __future__ import annotations

import asyncio
import base64
import json

from omnifuse import runtime
from omnifuse.bench.serve import _batch_totals, drive, make_images
from omnifuse.serve import ServeConfig, create_app


def test_drive_counts_requests_and_reads_batch_sizes(serve_model_dir, thread_server):
    server = thread_server(
        create_app(ServeConfig(model_dir="unused", cache_size=0), predictor=runtime.load(serve_model_dir))
    )
    bodies = [json.dumps({"images": [base64.b64encode(b).decode()]}).encode() for b in make_images(8, 16)]
    result = asyncio.run(drive(server.url, bodies, concurrency=4, seconds=0.5, warmup_s=0.1))
    assert result["requests"] > 0 and result["errors"] == 0 and result["p50_ms"] <= result["p99_ms"]
    total, count = _batch_totals(server.url)
    assert count > 0 and total >= result["requests"]
    bad = asyncio.run(drive(server.url, [b"{"], concurrency=2, seconds=0.3, warmup_s=0.0))
    assert bad["requests"] == 0 and bad["errors"] > 0
