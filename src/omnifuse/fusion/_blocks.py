"""Transformer pieces shared by the token-level fusions.

Attention is written out (rather than ``nn.MultiheadAttention``) so an ONNX export keeps the
batch and both sequence lengths dynamic: the TorchScript exporter bakes the key length of
``nn.MultiheadAttention`` into a Reshape.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from omnifuse.fusion.base import masked_softmax


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017) with a key padding mask.

    Rows whose keys are all masked get zero attention weights (no NaN).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} must be divisible by heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, d)

    def forward(
        self, x: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, Tq, H), kv (B, Tk, H), kv_mask (B, Tk) bool True = real key -> ((B, Tq, H), weights (B, Tq, Tk))."""
        q, k, v = self._split(self.q(x)), self._split(self.k(kv)), self._split(self.v(kv))  # (B, h, T, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, h, Tq, Tk)
        w = masked_softmax(scores, kv_mask[:, None, None, :].expand_as(scores), dim=-1)  # (B, h, Tq, Tk)
        out = (self.drop(w) @ v).transpose(1, 2)  # (B, Tq, h, d)
        out = out.reshape(out.shape[0], out.shape[1], -1)  # (B, Tq, H)
        return self.out(out), w.mean(1)


class CrossAttentionBlock(nn.Module):
    """Post-LN cross-attention layer (BERT-style): x = LN(x + MHA(x, kv, kv)); x = LN(x + FFN(x)).

    ``kv_mask`` (B, Tk) bool, True = real key. For a row with no real key (e.g. the other
    modality is missing) the attention output is multiplied by 0, so the layer reduces to
    LN(x) then the FFN: no NaN and no influence from the placeholder keys.
    """

    def __init__(self, hidden_dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(hidden_dim, heads, dropout)
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
        a, w = self.attn(x, kv, kv_mask)  # (B, Tq, H), (B, Tq, Tk)
        keep = kv_mask.any(dim=1).to(a.dtype)[:, None, None]  # (B, 1, 1): 0 where no key is real
        x = self.norm1(x + self.drop(a * keep))
        x = self.norm2(x + self.drop(self.ffn(x)))
        return x, w


class TransformerLayer(nn.Module):
    """Pre-LN self-attention layer (ViT/ViLT-style): x += MHA(LN(x)); x += FFN(LN(x)).

    ``mask`` (B, T) bool, True = real token; padding tokens are never attended to.
    """

    def __init__(self, hidden_dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.attn = MultiHeadAttention(hidden_dim, heads, dropout)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, hidden_dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, H), mask (B, T) -> (B, T, H)."""
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, mask)[0])
        return x + self.drop(self.ffn(self.norm2(x)))
