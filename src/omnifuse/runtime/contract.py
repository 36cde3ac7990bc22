"""The contract between an artifact and the runtime, imported by both `deploy/export` (which
writes artifacts) and the runtime backends (which read them); the runtime never imports deploy/.

- `runtime_config(model, source)`: what a predictor reads from a model, and what an exported
  artifact's config.json records: the architecture, the clamped temperature as a log (kinds
  that can `zero_shot` expose it as `model.scale()`), the class names (in the kind's config).
- `session_inputs(session, batch)`: a processed batch -> the feeds an ONNX session takes.
- `placeholder_inputs(modality, processor, n)`: stand-in tensors for a modality a sample lacks,
  fed with its `present_flag(modality)` input False.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.models.graphs import present_flag

__all__ = [
    "ONNX_DIR",
    "REPORT_FILE",
    "placeholder_inputs",
    "present_flag",
    "runtime_config",
    "session_inputs",
]

ONNX_DIR = "onnx"
"""The exported graphs live in `<artifact>/onnx/<graph>.onnx` (+ `<graph>.int8.onnx`)."""
REPORT_FILE = "export_report.json"
"""`<artifact>/onnx/export_report.json`: how the artifact was exported and its parity."""


def runtime_config(model: nn.Module, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a predictor reads from a model: the architecture (`source`, e.g. an artifact's
    config.json with its `compression` record, else `model.to_config()`, which holds the class
    names of classifiers) and, for kinds that can `zero_shot`, the clamped temperature as a log."""
    from omnifuse.models.registry import spec_of

    config = {k: v for k, v in source.items() if k != "format_version"} if source else model.to_config()
    if spec_of(model).can("zero_shot"):
        config["logit_scale"] = math.log(float(model.scale().detach()))
    return config


def session_inputs(session, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The batch tensors a session takes, as numpy in the graph's dtypes."""
    dtypes = {"tensor(int64)": np.int64, "tensor(bool)": np.bool_, "tensor(float)": np.float32}
    feeds = {}
    for inp in session.get_inputs():
        if inp.name not in batch:
            raise ValueError(f"the graph needs input '{inp.name}'; the batch has {sorted(batch)}")
        feeds[inp.name] = np.ascontiguousarray(
            batch[inp.name].numpy().astype(dtypes.get(inp.type, np.float32))
        )
    return feeds


def placeholder_inputs(modality: str, processor, batch_size: int) -> dict[str, torch.Tensor]:
    """Stand-in tensors for a modality a sample lacks (its `present_flag` is then False).

    The text mask is all ones (an all-masked row would make attention NaN, which a zero
    weight downstream cannot undo); the fusion module ignores these rows via the flag.
    """
    if modality == "text":
        pad = getattr(processor["text"].tokenizer, "pad_token_id", None) or 0
        ids = torch.full((batch_size, 1), pad, dtype=torch.long)  # (B, 1)
        return {"text": ids, "text_mask": torch.ones_like(ids)}
    if modality == "image":
        size = processor["image"].settings.size
        return {"image": torch.zeros(batch_size, 3, size, size)}  # (B, 3, H, W)
    make = getattr(processor[modality], "placeholder", None)
    if make is None:
        raise ValueError(f"no placeholder input for a missing '{modality}'; exportable: text, image")
    return make(batch_size)
