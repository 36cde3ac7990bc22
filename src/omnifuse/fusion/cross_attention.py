"""Cross-attention fusion: one modality's tokens query the others'."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion._blocks import CrossAttentionBlock
from omnifuse.fusion.base import Fusion, FusionOutput, masked_mean, register_fusion

POOLS = ("mean", "cls")
COMBINES = ("concat", "sum")


@register_fusion
class CrossAttentionFusion(Fusion):
    """Cross-attention fusion: the ``query`` modality's tokens attend (multi-head scaled
    dot-product attention, Vaswani et al. 2017) to the concatenated token sequences of the
    other modalities, with a key padding mask, through ``layers`` post-LN blocks (residual +
    LayerNorm + FFN). This is the dot-product-attention fusion of BERT+ViT text-image
    classifiers (text tokens as queries over image patches), as in the cross-modal layers of
    LXMERT (Tan & Bansal 2019, https://arxiv.org/abs/1908.07490).

    Output: the attended query pooled (``pool``: masked mean of the query tokens, or the first
    token, e.g. BERT's [CLS]) combined with the projected query pooled vector (``combine``:
    ``concat`` -> 2 * hidden_dim, ``sum`` -> hidden_dim). All tokens are first projected to
    ``hidden_dim`` by a per-modality Linear (also applied to the pooled vectors).

    Missing modalities: missing key modalities are masked out of the attention (a sample with
    no key at all keeps its query tokens, see :class:`CrossAttentionBlock`). If the query
    modality is missing for a sample, its output falls back to the masked mean of the other
    present modalities' projected pooled vectors, mapped by ``fallback`` (Linear hidden_dim ->
    output_dim; it learns only from batches where the query is missing).
    ``aux["attn_weights"]``: (B, Tq, Tk) head-averaged weights of the last layer;
    ``tokens[query]``: (B, Tq, hidden_dim) the attended query tokens.
    """

    name = "cross_attention"
    needs_tokens = True
    min_modalities = 2
    missing_only_params = ("fallback.",)

    def __init__(
        self,
        dims: dict[str, int],
        query: str = "text",
        hidden_dim: int = 256,
        heads: int = 4,
        layers: int = 1,
        ffn_dim: int | None = None,
        dropout: float = 0.1,
        pool: str = "mean",
        combine: str = "concat",
    ) -> None:
        super().__init__(dims, query=query, hidden_dim=hidden_dim, heads=heads, pool=pool, combine=combine)
        self.query, self.hidden_dim, self.heads, self.layers = query, hidden_dim, heads, layers
        self.ffn_dim, self.dropout, self.pool, self.combine = ffn_dim, dropout, pool, combine
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in self.dims.items()})
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(hidden_dim, heads, ffn_dim or 4 * hidden_dim, dropout) for _ in range(layers)
        )
        self.output_dim = 2 * hidden_dim if combine == "concat" else hidden_dim
        self.fallback = nn.Linear(hidden_dim, self.output_dim)
        self.token_outputs = {query: hidden_dim}

    @classmethod
    def check_dims(
        cls,
        dims: dict[str, int],
        query: str = "text",
        hidden_dim: int = 256,
        heads: int = 4,
        pool: str = "mean",
        combine: str = "concat",
        **kwargs,
    ) -> None:
        super().check_dims(dims)
        if query not in dims:
            raise ValueError(
                f"cross_attention: query modality '{query}' is not among the modalities {sorted(dims)}; "
                f"set query to one of them"
            )
        if hidden_dim % heads:
            raise ValueError(f"cross_attention: hidden_dim={hidden_dim} must be divisible by heads={heads}")
        if pool not in POOLS:
            raise ValueError(f"cross_attention: unknown pool '{pool}'; choose one of {POOLS}")
        if combine not in COMBINES:
            raise ValueError(f"cross_attention: unknown combine '{combine}'; choose one of {COMBINES}")

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        q = inputs[self.query]
        others = [m for m in inputs if m != self.query]
        x = self.proj[self.query](q.tokens)  # (B, Tq, H)
        kv = torch.cat([self.proj[m](inputs[m].tokens) for m in others], dim=1)  # (B, Tk, H)
        kv_mask = torch.cat([inputs[m].mask for m in others], dim=1)  # (B, Tk)
        w = None
        for block in self.blocks:
            x, w = block(x, kv, kv_mask)
        attended = x[:, 0] if self.pool == "cls" else masked_mean(x, q.mask, dim=1)  # (B, H)
        qp = self.proj[self.query](q.pooled)  # (B, H)
        fused = torch.cat([attended, qp], dim=-1) if self.combine == "concat" else attended + qp  # (B, out)
        # fallback when the query modality is missing: mean of the others' projected pooled vectors
        ctx = torch.stack([self.proj[m](inputs[m].pooled) for m in others], dim=1)  # (B, M-1, H)
        valid = torch.stack([inputs[m].present for m in others], dim=1)  # (B, M-1)
        fb = self.fallback(masked_mean(ctx, valid, dim=1))  # (B, out)
        fused = torch.where(q.present[:, None], fused, fb)
        aux = {"attn_weights": w} if w is not None else {}
        return FusionOutput(fused=fused, aux=aux, tokens={self.query: x})  # tokens: (B, Tq, H)
