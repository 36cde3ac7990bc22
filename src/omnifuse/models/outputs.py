"""Typed model outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class DualEncoderOutput:
    """embeddings: modality -> (B, E) L2-normalised; loss: scalar when pairs were given."""

    embeddings: dict[str, torch.Tensor]
    logit_scale: torch.Tensor
    logit_bias: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    pair_losses: dict[str, torch.Tensor] = field(default_factory=dict)
