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


class NodeEmbedding(nn.Module):
    """Tokens of several modalities as one set of nodes for the reasoning fusions.

    Each modality's tokens are projected to ``hidden_dim``, plus a learned modality-type
    embedding and a learned position embedding (up to ``max_tokens`` per modality, so a
    patch's place in the image is explicit as in Relation Networks' appended coordinates),
    then concatenated along the token axis. Masked tokens stay masked.
    """

    def __init__(self, dims: dict[str, int], hidden_dim: int, max_tokens: int) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in sorted(dims.items())})
        self.type_embed = nn.ParameterDict({m: nn.Parameter(torch.randn(hidden_dim) * 0.02) for m in dims})
        self.pos_embed = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(max_tokens, hidden_dim) * 0.02) for m in dims}
        )

    def forward(self, tokens: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], owner: str):
        """tokens m -> (B, T_m, D_m), masks m -> (B, T_m) -> ((B, N, H), (B, N) bool), N = sum T_m."""
        seqs, valid = [], []
        for m in self.proj:
            t = tokens[m].shape[1]
            if t > self.max_tokens:
                raise ValueError(
                    f"{owner}: {m} has {t} tokens but max_tokens={self.max_tokens}; raise max_tokens"
                )
            seqs.append(self.proj[m](tokens[m]) + self.type_embed[m] + self.pos_embed[m][:t])  # (B, T_m, H)
            valid.append(masks[m])
        return torch.cat(seqs, dim=1), torch.cat(valid, dim=1)  # (B, N, H), (B, N)


def mlp(dims: list[int], dropout: float = 0.0, last_act: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (and after the last if ``last_act``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_act:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)
