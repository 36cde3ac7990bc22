"""Single-stream fusion: one transformer over all modalities' tokens."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion._blocks import TransformerLayer
from omnifuse.fusion.base import Fusion, FusionOutput, register_fusion


@register_fusion
class SingleStreamFusion(Fusion):
    """Single-stream transformer fusion as in VisualBERT (Li et al. 2019,
    https://arxiv.org/abs/1908.03557) and ViLT (Kim et al. 2021, https://arxiv.org/abs/2102.03334).

    Each modality's tokens are projected to ``hidden_dim``, plus a learned modality-type
    embedding and learned position embeddings (up to ``max_tokens`` per modality); a learned
    [CLS] is prepended, a pre-LN transformer encoder (``layers``, ``heads``) runs over the
    joint sequence, and the final-LayerNorm'd [CLS] is the output (hidden_dim); ``tokens``
    holds each modality's slice of the final sequence (B, T_m, hidden_dim).

    Missing modalities: their tokens (and padding tokens) are masked out as attention keys;
    the [CLS] is always a valid key, so the attention never sees an all-masked row.
    """

    name = "single_stream"
    needs_tokens = True

    def __init__(
        self,
        dims: dict[str, int],
        hidden_dim: int = 256,
        heads: int = 4,
        layers: int = 2,
        ffn_dim: int | None = None,
        dropout: float = 0.1,
        max_tokens: int = 512,
    ) -> None:
        super().__init__(dims, hidden_dim=hidden_dim, heads=heads)
        self.hidden_dim, self.heads, self.layers, self.ffn_dim = hidden_dim, heads, layers, ffn_dim
        self.dropout, self.max_tokens = dropout, max_tokens
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in self.dims.items()})
        self.type_embed = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(hidden_dim) * 0.02) for m in self.dims}
        )
        self.pos_embed = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(max_tokens, hidden_dim) * 0.02) for m in self.dims}
        )
        self.cls = nn.Parameter(torch.randn(hidden_dim) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerLayer(hidden_dim, heads, ffn_dim or 4 * hidden_dim, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden_dim)
        self.output_dim = hidden_dim
        self.token_outputs = {m: hidden_dim for m in self.dims}

    @classmethod
    def check_dims(cls, dims: dict[str, int], hidden_dim: int = 256, heads: int = 4, **kwargs) -> None:
        super().check_dims(dims)
        if hidden_dim % heads:
            raise ValueError(f"single_stream: hidden_dim={hidden_dim} must be divisible by heads={heads}")

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        ref = next(iter(inputs.values())).pooled
        seqs = [self.cls.to(ref.dtype)[None, None, :].expand(ref.shape[0], 1, -1)]  # (B, 1, H)
        masks = [torch.ones_like(ref[:, :1], dtype=torch.bool)]  # (B, 1)
        for m, x in inputs.items():
            t = x.tokens.shape[1]
            if t > self.max_tokens:
                raise ValueError(
                    f"single_stream: {m} has {t} tokens but max_tokens={self.max_tokens}; raise max_tokens"
                )
            seqs.append(self.proj[m](x.tokens) + self.type_embed[m] + self.pos_embed[m][:t])  # (B, T_m, H)
            masks.append(x.mask)
        h = torch.cat(seqs, dim=1)  # (B, 1 + sum T_m, H)
        mask = torch.cat(masks, dim=1)  # (B, 1 + sum T_m) False = padding / missing
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        tokens, start = {}, 1
        for m, x in inputs.items():  # each modality's slice of the joint sequence, (B, T_m, H)
            tokens[m] = h[:, start : start + x.tokens.shape[1]]
            start += x.tokens.shape[1]
        return FusionOutput(fused=h[:, 0], tokens=tokens)  # (B, H)
