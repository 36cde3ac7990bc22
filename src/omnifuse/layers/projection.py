"""Projection heads from a tower's width into the shared embedding space."""

from __future__ import annotations

from typing import Any

from torch import nn

PROJECTIONS = ("linear", "mlp", "none")


def build_projection(kind: str, in_dim: int, out_dim: int, bias: bool = False) -> nn.Module:
    """`linear` (CLIP), `mlp` (Linear-GELU-Linear) or `none` (identity; needs in_dim == out_dim)."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim, bias=bias)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim, bias=bias))
    if kind == "none":
        if in_dim != out_dim:
            raise ValueError(
                f"projection 'none' needs the tower width ({in_dim}) to equal embed_dim ({out_dim})"
            )
        return nn.Identity()
    raise ValueError(f"unknown projection '{kind}'; known: {PROJECTIONS}")


def projection_config(kind: str, in_dim: int, out_dim: int, bias: bool = False) -> dict[str, Any]:
    return {"kind": kind, "in_dim": in_dim, "out_dim": out_dim, "bias": bias}
