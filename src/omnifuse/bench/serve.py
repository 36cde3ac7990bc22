"""`omnifuse bench serve`: requests/s and latency of the batching server under concurrent load,
next to a naive server (one request per forward pass: the same server with max_batch=1) and the
offline batched throughput of the same runtime, all in one run.

Each server runs as an `omnifuse serve` subprocess on loopback; the load comes from async clients
in this process (closed loop: each client sends its next request when the last one is
answered; plain HTTP/1.1 keep-alive connections on asyncio streams, so the load generator stays
cheap), for a fixed time per concurrency level after a warm-up. Every request embeds one
distinct image (the embedding cache is off), so the model does the work, not the cache.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class LoadRow:
    server: str
    concurrency: int
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float = float("nan")
    """Mean items per forward pass during the level (from the server's /metrics)."""


def _batch_totals(url: str) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram."""
    import httpx

    total = count = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("omnifuse_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("omnifuse_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


def default_bench_model(out_dir: str | os.PathLike, image_size: int = 32, preset: str = "small") -> Path:
    """A random DualEncoder whose image tower is a ViT `preset` (small: width 256, 4 layers, 4
    heads) on `image_size` px images with 8 px patches (32 px: 16 patches + CLS), and a tiny text tower."""
    import torch

    from omnifuse.data.processors import ImageProcessor, Processor, TextProcessor, build_word_tokenizer
    from omnifuse.models.dual_encoder import DualEncoderConfig
    from omnifuse.models.factory import build_model
    from omnifuse.utils.config import from_dict

    torch.manual_seed(0)
    processor = Processor(
        {
            "text": TextProcessor(build_word_tokenizer(["a red circle", "a blue square"]), max_length=16),
            "image": ImageProcessor(size=image_size),
        }
    )
    towers = {
        "text": {"arch": "bert", "preset": "tiny"},
        "image": {"arch": "vit", "preset": preset, "pooling": "cls", "overrides": {"patch_size": 8}},
    }
    model = build_model(
        from_dict(DualEncoderConfig, {"embed_dim": 128, "encoders": towers}), processor
    ).eval()
    out = Path(out_dir)
    model.save_pretrained(out)
    return out


def make_images(n: int, size: int, seed: int = 0) -> list[bytes]:
    """n distinct random PNG images of size x size pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
        images.append(buf.getvalue())
    return images


def offline_throughput(
    model_dir: Path, images: list[bytes], batch: int, seconds: float, threads: int | None
) -> float:
    """Images/s of `predictor.embed` on batches of `batch` encoded images (decode included)."""
    from omnifuse import runtime

    predictor = runtime.load(model_dir, batch_size=batch, threads=threads)
    predictor.embed("image", images[:batch])  # warm-up
    done, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        chunk = [images[(i + j) % len(images)] for j in range(batch)]
        predictor.embed("image", chunk)
        done, i = done + batch, i + batch
    return done / (time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`omnifuse serve` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, model_dir: Path, *args: str, ready_timeout_s: float = 120.0):
        import httpx

        self.url = f"http://127.0.0.1:{_free_port()}"
        port = self.url.rsplit(":", 1)[1]
        cmd = [sys.executable, "-m", "omnifuse.cli.main", "serve", str(model_dir), "--port", port,
               "--log-level", "warning", "--cache-size", "0", *args]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-1000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not ready after {ready_timeout_s} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stderr.close()


class _Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator must cost far
    less CPU than the server it measures (httpx's pool does not, at 32+ connections on 2 cores)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        header = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(header.split(" ", 2)[1])
        length = 0
        for line in header.split("\r\n"):
            if line.startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        await self.reader.readexactly(length)
        if "connection: close" in header:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def drive(
    url: str, bodies: list[bytes], concurrency: int, seconds: float, warmup_s: float
) -> dict[str, Any]:
    """Closed-loop load: `concurrency` keep-alive clients posting bodies for warm-up + `seconds`."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    latencies: list[float] = []
    errors = 0
    t0 = time.perf_counter()
    measure_from, stop_at = t0 + warmup_s, t0 + warmup_s + seconds

    async def worker(k: int) -> None:
        nonlocal errors
        conn = _Connection(host, int(port))
        i = k
        try:
            while True:
                start = time.perf_counter()
                if start >= stop_at:
                    return
                status = await conn.post("/v1/embed", bodies[i % len(bodies)])
                end = time.perf_counter()
                if start >= measure_from and end <= stop_at:
                    if status == 200:
                        latencies.append(end - start)
                    else:
                        errors += 1
                i += concurrency
        finally:
            await conn.close()

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def bench_serve(
    model_dir: str | os.PathLike | None = None,
    concurrencies: tuple[int, ...] = (1, 8, 32, 64),
    seconds: float = 5.0,
    warmup_s: float = 1.0,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    threads: int | None = None,
    image_size: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the load at each concurrency against the batching server and the naive baseline."""
    import logging

    import torch

    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(model_dir) if model_dir else default_bench_model(Path(tmp) / "model", image_size)
        config = json.loads((model_dir / "processor.json").read_text())
        size = int(config.get("image", {}).get("size", image_size))
        images = make_images(256, size)
        bodies = [json.dumps({"images": [base64.b64encode(b).decode()]}).encode() for b in images]
        # half the cores for the model: the load generator needs the rest (OpenMP threads that
        # compete for busy cores spin and slow down many-fold)
        threads = threads or max(1, (os.cpu_count() or 2) // 2)
        torch.set_num_threads(threads)
        offline_runs = [offline_throughput(model_dir, images, max_batch, seconds, threads)]
        offline_single = offline_throughput(model_dir, images, 1, seconds, threads)
        if progress:
            print(
                f"offline: {offline_runs[0]:.1f} images/s at batch {max_batch}, {offline_single:.1f} at batch 1"
            )
        servers = {
            "batched": ("--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)),
            "baseline (max_batch=1)": ("--max-batch", "1", "--max-wait-ms", "0"),
        }
        rows: list[LoadRow] = []
        for name, args in servers.items():
            server = ServerProcess(model_dir, *args, "--threads", str(threads), "--queue-size", "1024")
            try:
                for c in concurrencies:
                    before = _batch_totals(server.url)
                    row = LoadRow(name, c, **asyncio.run(drive(server.url, bodies, c, seconds, warmup_s)))
                    after = _batch_totals(server.url)
                    row.mean_batch = (after[0] - before[0]) / max(after[1] - before[1], 1)
                    rows.append(row)
                    if progress:
                        print(f"{name:>24} c={c:<3} {row.requests_per_s:8.1f} req/s  p50 {row.p50_ms:7.1f} ms  "
                              f"p99 {row.p99_ms:7.1f} ms  batch {row.mean_batch:5.1f}  errors {row.errors}", flush=True)  # fmt: skip
            finally:
                server.stop()
        offline_runs.append(offline_throughput(model_dir, images, max_batch, seconds, threads))
        offline = max(offline_runs)  # the better of before and after: a conservative reference
    by = {(r.server, r.concurrency): r for r in rows}
    ref = 32 if 32 in concurrencies else max(concurrencies)
    batched, baseline = by[("batched", ref)], by[("baseline (max_batch=1)", ref)]
    return {
        "rows": [asdict(r) for r in rows],
        "offline_images_per_s": offline,
        "offline_runs_images_per_s": offline_runs,
        "offline_batch1_images_per_s": offline_single,
        "reference_concurrency": ref,
        "speedup_vs_baseline": batched.requests_per_s / max(baseline.requests_per_s, 1e-9),
        "fraction_of_offline": batched.requests_per_s / offline,
        # what batching buys the model itself: an upper bound of the speed-up over the baseline
        "offline_batch_gain": offline / offline_single,
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        "threads": threads,
        "seconds_per_level": seconds,
        "image_size": size,
        "cpu_count": os.cpu_count(),
    }
