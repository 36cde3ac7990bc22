"""Transformer pieces shared by the token-level fusions."""

from __future__ import annotations

import torch
from torch import nn


class CrossAttentionBlock(nn.Module):
    """Post-LN cross-attention layer (BERT-style): x = LN(x + MHA(x, kv, kv)); x = LN(x + FFN(x)).

    ``kv_mask`` (B, Tk) bool, True = real key. A row with no real key (every key masked, e.g.
    the other modality is missing) would give NaN in the softmax; there the mask is lifted and
    the attention output is multiplied by 0, so the layer reduces to LN(x) + FFN (no NaN and no
    influence from the placeholder keys).
    """

    def __init__(self, hidden_dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(hidden_dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, hidden_dim)
        )
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, Tq, H), kv (B, Tk, H), kv_mask (B, Tk) -> (new x (B, Tq, H), weights (B, Tq, Tk))."""
        has_keys = kv_mask.any(dim=1)  # (B,)
        ignore = ~(kv_mask | ~has_keys[:, None])  # (B, Tk) True = ignore; keyless rows ignore nothing
        a, w = self.attn(x, kv, kv, key_padding_mask=ignore, need_weights=True)  # (B, Tq, H), (B, Tq, Tk)
        keep = has_keys.to(a.dtype)[:, None, None]  # (B, 1, 1)
        x = self.norm1(x + self.drop(a * keep))
        x = self.norm2(x + self.drop(self.ffn(x)))
        return x, w * keep
