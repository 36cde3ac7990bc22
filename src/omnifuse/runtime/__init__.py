"""Inference runtime: `load(dir)` returns a predictor with the same API for every backend.

predictor = omnifuse.runtime.load("runs/shapes-clip/best")
predictor.embed("text", ["a red circle"])            # (1, E) float32
predictor.classify({"image": ["cat.png"]}, labels=["red circle", "blue square"])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from omnifuse.runtime.base import DEFAULT_TEMPLATES, LabelScore, Predictor
from omnifuse.runtime.torch_backend import TorchPredictor
from omnifuse.utils.io import recover_dir

__all__ = ["BACKENDS", "DEFAULT_TEMPLATES", "LabelScore", "Predictor", "TorchPredictor", "load"]


def _load_torch(directory: str | os.PathLike, batch_size: int, **kwargs) -> Predictor:
    from omnifuse.models.artifact import read_config
    from omnifuse.models.factory import load_model

    config = read_config(Path(directory))
    # a compressed model (int8, low-rank layers) cannot describe itself: its config.json does
    source = config if "compression" in config else None
    return TorchPredictor(load_model(directory), batch_size=batch_size, source=source, **kwargs)


def _load_onnx(directory: str | os.PathLike, batch_size: int, **kwargs) -> Predictor:
    from omnifuse.runtime.onnx_backend import load_onnx

    # `load(threads=N)` has set torch's thread count: ONNX Runtime uses the same
    kwargs.setdefault("threads", torch.get_num_threads())
    return load_onnx(directory, batch_size=batch_size, **kwargs)


BACKENDS: dict[str, Callable[..., Predictor]] = {"torch": _load_torch, "onnx": _load_onnx}
"""Backend name -> loader(directory, batch_size, **options). Export modules register more."""


def detect_backend(directory: str | os.PathLike) -> str:
    """An exported ONNX artifact carries `onnx/`; anything else is a PyTorch artifact."""
    return "onnx" if os.path.isdir(os.path.join(directory, "onnx")) and "onnx" in BACKENDS else "torch"


def load(
    directory: str | os.PathLike,
    backend: str = "auto",
    batch_size: int = 32,
    threads: int | None = None,
    **options,
) -> Predictor:
    """Load an artifact directory as a predictor; `backend` 'auto' picks from the files present."""
    if threads:
        torch.set_num_threads(threads)
    if not os.path.exists(directory):  # a crash mid-replace may have left the artifact aside
        directory = recover_dir(directory)
    name = detect_backend(directory) if backend == "auto" else backend
    if name not in BACKENDS:
        raise ValueError(f"unknown runtime backend '{name}'; known: {sorted(BACKENDS)}")
    return BACKENDS[name](directory, batch_size=batch_size, **options)
