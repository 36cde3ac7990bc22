"""A linear layer factorised into two thinner ones: ``W (out, in) ≈ U (out, r) @ V (r, in)``.

Truncated SVD keeps the best rank-r approximation in Frobenius norm (Eckart-Young); applied to
network weights as in Denton et al. 2014, "Exploiting Linear Structure Within Convolutional
Networks for Efficient Evaluation", arXiv:1404.0736. Parameters drop from ``out * in`` to
``r * (out + in)``, so it pays only when ``r < out * in / (out + in)``.
"""

from __future__ import annotations

import torch
from torch import nn


def low_rank_pays(in_features: int, out_features: int, rank: int) -> bool:
    return rank * (in_features + out_features) < in_features * out_features


def energy_rank(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest r whose top-r singular values hold `energy` of the sum of squares."""
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    s2 = singular_values.double() ** 2
    cum = torch.cumsum(s2, 0) / s2.sum().clamp_min(1e-30)
    return int(torch.searchsorted(cum, torch.tensor(energy, dtype=cum.dtype) - 1e-12).item()) + 1


class LowRankLinear(nn.Module):
    """``second(first(x))``: first is (in -> rank, no bias), second is (rank -> out, with the bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError(f"rank must be in [1, {min(in_features, out_features)}], got {rank}")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int) -> LowRankLinear:
        """Truncated SVD of `linear.weight`, the singular values split evenly between the factors."""
        w = linear.weight.detach().float()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)  # (out, k), (k,), (k, in)
        root = s[:rank].sqrt()
        layer = cls(linear.in_features, linear.out_features, rank, linear.bias is not None)
        with torch.no_grad():
            layer.first.weight.copy_(root[:, None] * vh[:rank])  # (r, in)
            layer.second.weight.copy_(u[:, :rank] * root[None, :])  # (out, r)
            if linear.bias is not None:
                layer.second.bias.copy_(linear.bias.detach())
        return layer.to(device=linear.weight.device, dtype=linear.weight.dtype)

    def spec(self) -> dict:
        return {
            "kind": "low_rank_linear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "rank": self.rank,
            "bias": self.second.bias is not None,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))  # (..., in) -> (..., r) -> (..., out)
