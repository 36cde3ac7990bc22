"""Attention-weighted sum over modalities."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion.base import Fusion, FusionOutput, masked_softmax, register_fusion


@register_fusion
class AttentionFusion(Fusion):
    """Modality attention: project each pooled vector to ``hidden_dim`` (h_m = W_m x_m), score it
    with additive attention s_m = v^T tanh(W_s h_m + b) and return sum_m softmax(s)_m h_m.

    The attention pooling of Yang et al. 2016 ("Hierarchical Attention Networks", NAACL) applied
    across modalities, as in Hori et al. 2017 ("Attention-Based Multimodal Fusion for Video
    Description", https://arxiv.org/abs/1701.03126).

    Missing modalities: their scores are masked out of the softmax (weights renormalised over
    the present ones). ``aux["weights"]``: (B, M) modality weights.
    """

    name = "attention"

    def __init__(
        self, dims: dict[str, int], hidden_dim: int = 256, attn_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__(dims)
        self.hidden_dim, self.attn_dim, self.dropout = hidden_dim, attn_dim, dropout
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in self.dims.items()})
        a = attn_dim or hidden_dim
        self.score = nn.Sequential(nn.Linear(hidden_dim, a), nn.Tanh(), nn.Linear(a, 1, bias=False))
        self.drop = nn.Dropout(dropout)
        self.output_dim = hidden_dim

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        h = torch.stack([self.proj[m](x.pooled) for m, x in inputs.items()], dim=1)  # (B, M, H)
        valid = torch.stack([x.present for x in inputs.values()], dim=1)  # (B, M)
        w = masked_softmax(self.score(h).squeeze(-1), valid, dim=1)  # (B, M)
        fused = self.drop((w[:, :, None] * h).sum(1))  # (B, H)
        return FusionOutput(fused=fused, aux={"weights": w})
