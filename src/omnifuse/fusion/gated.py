"""Gated Multimodal Unit fusion."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion.base import Fusion, FusionOutput, masked_softmax, register_fusion


@register_fusion
class GatedFusion(Fusion):
    """Gated Multimodal Unit (GMU), Arevalo et al. 2017, "Gated Multimodal Units for Information
    Fusion" (https://arxiv.org/abs/1702.01992; reference code github.com/johnarevalo/gmu-mmimdb).

    h_m = tanh(W_m x_m); gates from all inputs, z = W_z [x_1; ...; x_N].
    Two modalities: z = sigmoid(W_z [x_1; x_2]) (H,), h = z * h_1 + (1 - z) * h_2 (sorted order:
    z weights the first modality). N > 2: per-dimension softmax over modalities of the gate
    logits (B, N, H), h = sum_m z_m * h_m. The sigmoid is computed as softmax([g, 0]), which is
    identical, so both cases share the masking.

    Missing modalities: their input to the gate network is zeroed and their gate logits are
    masked out of the softmax (weights renormalised over the present modalities), so a sample
    with one modality present gets h = h_present.
    ``aux["gates"]``: (B, M, H) gate values.
    """

    name = "gated"
    min_modalities = 2

    def __init__(self, dims: dict[str, int], hidden_dim: int = 256, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.hidden_dim, self.dropout = hidden_dim, dropout
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in self.dims.items()})
        n = len(self.dims)
        self.gate = nn.Linear(sum(self.dims.values()), hidden_dim if n == 2 else n * hidden_dim)
        self.drop = nn.Dropout(dropout)
        self.output_dim = hidden_dim

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        h = torch.stack([torch.tanh(self.proj[m](x.pooled)) for m, x in inputs.items()], dim=1)  # (B, M, H)
        g = self.gate(torch.cat([x.pooled for x in inputs.values()], dim=-1))  # (B, H) or (B, M*H)
        if len(inputs) == 2:
            g = torch.stack([g, torch.zeros_like(g)], dim=1)  # (B, 2, H): softmax([g, 0]) = sigmoid(g)
        else:
            g = g.view(g.shape[0], len(inputs), self.hidden_dim)  # (B, M, H)
        valid = torch.stack([x.present for x in inputs.values()], dim=1)[:, :, None]  # (B, M, 1)
        z = masked_softmax(g, valid.expand_as(g), dim=1)  # (B, M, H)
        fused = self.drop((z * h).sum(1))  # (B, H)
        return FusionOutput(fused=fused, aux={"gates": z})
