"""Fixtures of the serving tests: a saved tiny model, an index over the shapes world, image
bytes, and servers on loopback (in a thread, or as an `omnifuse serve` subprocess)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image


def _root_tiny_model(config):
    """The tiny DualEncoder factory of tests/conftest.py (the `tiny_model` fixture's value)."""
    for plugin in config.pluginmanager.get_plugins():
        factory = getattr(plugin, "_tiny_model", None)
        if callable(factory):
            return factory
    raise RuntimeError("tests/conftest.py's _tiny_model factory not found")


@pytest.fixture(scope="session")
def serve_model_dir(request, tmp_path_factory) -> Path:
    """The `tiny_model` DualEncoder, saved once."""
    out = tmp_path_factory.mktemp("serve_model") / "model"
    _root_tiny_model(request.config)().save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def other_model_dir(request, tmp_path_factory) -> Path:
    """A second tiny model with other preprocessing (so another fingerprint)."""
    import torch

    from omnifuse.data.processors import ImageProcessor

    model = _root_tiny_model(request.config)()
    model.processor.processors["image"] = ImageProcessor(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("serve_other") / "model"
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def shapes_index(serve_model_dir, shapes_dir, tmp_path_factory) -> Path:
    """An index of the shapes world's test split images."""
    from omnifuse.serve.index import build_index

    out = tmp_path_factory.mktemp("serve_index") / "index"
    build_index(serve_model_dir, shapes_dir / "test.jsonl", out, modality="image", progress=False)
    return out


def encode_image(value: int = 100, size: int = 16, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    arr = np.zeros((size, size, 3), dtype=np.uint8)
    arr[..., 0] = value
    arr[: size // 2, :, 1] = 255 - value
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def image_bytes():
    """image_bytes(value=100, size=16, fmt="PNG") -> encoded bytes of a two-tone image."""
    return encode_image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server at {url} not ready after {timeout_s} s")


class SubprocessServer:
    """`omnifuse serve` in a child process on a free loopback port."""

    def __init__(self, model_dir: Path, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable,
            "-m",
            "omnifuse.cli.main",
            "serve",
            str(model_dir),
            "--port",
            str(self.port),
            "--threads",
            "1",
            "--log-level",
            "warning",
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        wait_ready(self.url, proc=self.proc)

    @property
    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture(scope="module")
def subprocess_server():
    """subprocess_server(model_dir, *cli_args) -> a running SubprocessServer (stopped after the module)."""
    servers = []

    def start(model_dir, *args):
        servers.append(SubprocessServer(model_dir, *args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class ThreadServer:
    """uvicorn running an app in a thread of the test process, on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_ready(self.url, timeout_s=30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def thread_server():
    """thread_server(app) -> a running ThreadServer (stopped after the test)."""
    servers = []

    def start(app):
        servers.append(ThreadServer(app))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class SlowPredictor:
    """Wraps a predictor: every embed call sleeps first (to fill the queue deterministically)."""

    def __init__(self, predictor, delay_s: float):
        self._predictor = predictor
        self.delay_s = delay_s
        self.calls = 0
        self.items = 0

    def embed(self, modality, items):
        self.calls += 1
        self.items += len(items)
        time.sleep(self.delay_s)
        return self._predictor.embed(modality, items)

    def __getattr__(self, name):
        return getattr(self._predictor, name)


@pytest.fixture
def slow_predictor(serve_model_dir):
    """slow_predictor(delay_s) -> the tiny model's predictor, sleeping delay_s per forward pass."""
    from omnifuse import runtime

    return lambda delay_s: SlowPredictor(runtime.load(serve_model_dir), delay_s)


@pytest.fixture(scope="session")
def captioner_dir(tmp_path_factory) -> Path:
    """A tiny untrained captioner (gates opened so images matter), saved once."""
    import torch

    from omnifuse.data.processors import ImageProcessor, Processor
    from omnifuse.data.sample import Sample
    from omnifuse.encoders.factory import TowerConfig
    from omnifuse.models.captioner import CaptionerConfig, LanguageModelConfig
    from omnifuse.models.captioner.build import build

    torch.manual_seed(0)
    cfg = CaptionerConfig(
        vision=TowerConfig(
            arch="vit", overrides={"hidden_size": 32, "intermediate_size": 64, "patch_size": 8}
        ),
        lm=LanguageModelConfig(overrides={"n_embd": 32, "n_positions": 96}),
        num_latents=4,
        heads=2,
        head_dim=8,
    )
    words = "a red green blue circle square left of the what color is".split()
    model = build(
        cfg, Processor({"image": ImageProcessor(size=16)}), [Sample(inputs={"text": " ".join(words)})]
    )
    for block in model.xattn:  # open the gates so images matter
        block.attn_gate.data.fill_(1.0)
    out = tmp_path_factory.mktemp("captioner") / "model"
    model.save_pretrained(out)
    return out
