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

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """A JSON-able description from which `omnifuse.encoders.build_encoder` rebuilds it."""
        raise NotImplementedError
