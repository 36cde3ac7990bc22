"""The PyTorch backend: an omnifuse artifact loaded with `load_model`, run under no_grad."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.runtime.base import Predictor


def runtime_config(model: nn.Module, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a predictor reads from a model: the architecture (`source`, e.g. an artifact's
    config.json with its `compression` record, else `model.to_config()`), the clamped
    temperature as a log and the class names."""
    config = {k: v for k, v in source.items() if k != "format_version"} if source else model.to_config()
    if hasattr(model, "scale"):
        config["logit_scale"] = math.log(float(model.scale().detach()))
    if getattr(model, "class_names", None):
        config["class_names"] = list(model.class_names)
    return config


class TorchPredictor(Predictor):
    backend = "torch"

    def __init__(self, model: nn.Module, batch_size: int = 32, dtype: torch.dtype | None = None):
        super().__init__(runtime_config(model), model.processor, batch_size)
        self.model = model.eval()
        self.dtype = dtype  # e.g. torch.bfloat16: autocast on CPUs with AMX / AVX512-BF16

    def _autocast(self):
        return torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None)

    @torch.inference_mode()
    def _embed_batch(self, modality: str, batch: dict[str, torch.Tensor]) -> np.ndarray:
        with self._autocast():
            emb = self.model.encode(modality, batch)  # (B, E), normalised
        return emb.float().numpy()

    @torch.inference_mode()
    def _classify_batch(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        if not hasattr(self.model, "predict_proba"):
            return super()._classify_batch(batch)
        with self._autocast():
            return self.model.predict_proba(batch).float().numpy()  # (B, C)
