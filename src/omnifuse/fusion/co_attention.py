"""Bi-directional co-attention (ViLBERT co-attentional transformer layers)."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion._blocks import CrossAttentionBlock
from omnifuse.fusion.base import Fusion, FusionOutput, masked_mean, register_fusion


@register_fusion
class CoAttentionFusion(Fusion):
    """Co-attentional transformer layers of ViLBERT, Lu et al. 2019, "ViLBERT: Pretraining
    Task-Agnostic Visiolinguistic Representations for Vision-and-Language Tasks"
    (https://arxiv.org/abs/1908.02265; github.com/facebookresearch/vilbert-multi-task).

    Two streams (sorted modality order), each projected to ``hidden_dim``. In every one of
    ``layers`` co-TRM layers each stream's tokens query the other stream's tokens (keys and
    values from the other stream's output of the previous layer), then residual + LayerNorm +
    FFN, both streams updated simultaneously. Output: concat of the two streams' masked-mean
    pooled vectors (2 * hidden_dim). Fuses exactly 2 modalities.

    Missing modalities: a missing stream's keys are fully masked, so the other stream uses only
    itself (the all-masked softmax is guarded, see :class:`CrossAttentionBlock`), and its half
    of the output is a learned ``missing.<modality>`` vector (learns only from batches with
    missing samples). ``tokens``: each stream's co-attended tokens (B, T, hidden_dim).
    """

    name = "co_attention"
    needs_tokens = True
    min_modalities = 2
    max_modalities = 2
    missing_only_params = ("missing.",)

    def __init__(
        self,
        dims: dict[str, int],
        hidden_dim: int = 256,
        heads: int = 4,
        layers: int = 1,
        ffn_dim: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dims, hidden_dim=hidden_dim, heads=heads)
        self.hidden_dim, self.heads, self.layers, self.ffn_dim, self.dropout = (
            hidden_dim,
            heads,
            layers,
            ffn_dim,
            dropout,
        )
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in self.dims.items()})
        f = ffn_dim or 4 * hidden_dim
        self.blocks = nn.ModuleList(
            nn.ModuleDict({m: CrossAttentionBlock(hidden_dim, heads, f, dropout) for m in self.dims})
            for _ in range(layers)
        )
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.randn(hidden_dim) * 0.02) for m in self.dims})
        self.output_dim = 2 * hidden_dim
        self.token_outputs = {m: hidden_dim for m in self.dims}

    @classmethod
    def check_dims(cls, dims: dict[str, int], hidden_dim: int = 256, heads: int = 4, **kwargs) -> None:
        if isinstance(dims, dict) and len(dims) != 2:
            raise ValueError(
                f"co_attention fuses exactly 2 modalities (two co-attending streams), got {len(dims)}: "
                f"{sorted(dims)}; use 'cross_attention' or 'single_stream' for other counts"
            )
        super().check_dims(dims)
        if hidden_dim % heads:
            raise ValueError(f"co_attention: hidden_dim={hidden_dim} must be divisible by heads={heads}")

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        a, b = self.modalities
        xa, xb = self.proj[a](inputs[a].tokens), self.proj[b](inputs[b].tokens)  # (B, Ta, H), (B, Tb, H)
        ma, mb = inputs[a].mask, inputs[b].mask  # (B, Ta), (B, Tb)
        for block in self.blocks:
            (xa, _), (xb, _) = block[a](xa, xb, mb), block[b](xb, xa, ma)
        parts = [
            torch.where(
                inputs[m].present[:, None],
                masked_mean(x, inputs[m].mask, dim=1),
                self.missing[m].to(x.dtype)[None, :],
            )
            for m, x in ((a, xa), (b, xb))
        ]  # 2 x (B, H)
        return FusionOutput(
            fused=torch.cat(parts, dim=-1), tokens={a: xa, b: xb}
        )  # (B, 2H); tokens (B, T, H)
