"""The PyTorch backend: an omnifuse artifact loaded with `load_model`, run under no_grad."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.layers.quantized import kernels_used
from omnifuse.runtime.base import Predictor
from omnifuse.runtime.contract import runtime_config

__all__ = ["TorchPredictor", "runtime_config"]


class TorchPredictor(Predictor):
    backend = "torch"

    def __init__(
        self,
        model: nn.Module,
        batch_size: int = 32,
        dtype: torch.dtype | None = None,
        source: dict[str, Any] | None = None,
    ):
        """`source`: the artifact's config.json, when the model cannot describe itself (compressed)."""
        super().__init__(runtime_config(model, source), model.processor, batch_size)
        self.model = model.eval()
        # Choose each int8 layer's kernel now, so that a CPU that cannot run the artifact's
        # int8 weights exactly is reported at load time, not at the first request.
        self.int8_kernels = kernels_used(model)
        self.dtype = dtype  # e.g. torch.bfloat16: autocast on CPUs with AMX / AVX512-BF16

    def _autocast(self):
        return torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None)

    @torch.inference_mode()
    def _embed_batch(self, modality: str, batch: dict[str, torch.Tensor]) -> np.ndarray:
        with self._autocast():
            emb = self.model.encode(modality, batch)  # (B, E), normalised
        return emb.float().numpy()

    def generate_images(self, prompts, n: int = 1, settings=None, guidance_scale: float = 1.0, **kwargs):
        """Images from text prompts (models whose spec can `generate_image`): an
        `ImageGenerationOutput` of the model's `generate`."""
        return self.model.generate(prompts, n=n, settings=settings, guidance_scale=guidance_scale, **kwargs)

    @torch.inference_mode()
    def _classify_batch(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        if not self.can("classify"):
            return super()._classify_batch(batch)
        with self._autocast():
            return self.model.predict_proba(batch).float().numpy()  # (B, C)

    # ---- text generation (kinds that can `generate_text`) -------------------------------------
    def caption(self, images, settings=None, few_shot=None, streamer=None, limit: int | None = None):
        """A caption per image (a `GenerationOutput`); see the model's `caption`."""
        self.spec.require("generate_text", "captions")
        return self.model.caption(images, settings, few_shot=few_shot, streamer=streamer, limit=limit)

    def answer(
        self, images, questions, settings=None, few_shot=None, streamer=None, limit: int | None = None
    ):
        """An answer per (image, question) (a `GenerationOutput`); see the model's `answer`."""
        self.spec.require("generate_text", "answers")
        return self.model.answer(
            images, questions, settings, few_shot=few_shot, streamer=streamer, limit=limit
        )

    @property
    def tokenizer(self):
        return self.model.tokenizer
