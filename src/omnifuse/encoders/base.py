"""The encoder contract: a batch dict in, token features and a pooled vector out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class EncoderOutput:
    """What every encoder returns.

    tokens: (B, T, D) token features (for images: patches, plus CLS where the model has one).
    mask: (B, T) 1 for real tokens, 0 for padding.
    pooled: (B, D) one vector per item.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


class Encoder(nn.Module):
    """Base class: `modality`, `hidden_size`, `forward(batch) -> EncoderOutput`, `to_config()`."""

    modality: str
    hidden_size: int

    def train(self, mode: bool = True) -> Encoder:
        """Frozen parts stay in eval mode when the rest trains: a wholly frozen tower runs as at
        inference (no dropout), and a frozen BatchNorm keeps its running statistics, which are
        weights too (train mode would update them on every batch)."""
        super().train(mode)
        if not mode:
            return self
        if not any(p.requires_grad for p in self.parameters()):
            return super().train(False)
        for module in self.modules():
            own = list(module.parameters(recurse=False))
            if (
                isinstance(module, nn.modules.batchnorm._BatchNorm)
                and own
                and not any(p.requires_grad for p in own)
            ):
                module.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """A JSON-able description from which `omnifuse.encoders.build_encoder` rebuilds it."""
        raise NotImplementedError
