"""Low-rank factorisation: truncated SVD of Linear layers into two thinner Linears.

Rank per layer by an energy threshold (`energy`: keep the singular values holding that fraction
of sum(s^2)), or by a global parameter budget (`param_budget`: the largest common energy whose
ranks fit the budget, found by bisection). A layer is factorised only when that reduces its
parameters. Denton et al. 2014, arXiv:1404.0736; Eckart & Young 1936.
"""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.deploy.compress.base import CompressContext, MethodResult, linear_layers, register_method
from omnifuse.deploy.compress.finetune import recover
from omnifuse.layers.low_rank import LowRankLinear, energy_rank, low_rank_pays
from omnifuse.layers.surgery import set_module


def singular_values(layers: dict[str, nn.Linear]) -> dict[str, torch.Tensor]:
    return {n: torch.linalg.svdvals(m.weight.detach().float()) for n, m in layers.items()}


def ranks_for_energy(
    layers: dict[str, nn.Linear], svals: dict[str, torch.Tensor], energy: float
) -> dict[str, int]:
    """Layer -> rank, only for the layers where the energy rank reduces parameters."""
    ranks = {}
    for n, m in layers.items():
        r = energy_rank(svals[n], energy)
        if low_rank_pays(m.in_features, m.out_features, r):
            ranks[n] = r
    return ranks


def _params(layers: dict[str, nn.Linear], ranks: dict[str, int]) -> int:
    return sum(
        ranks[n] * (m.in_features + m.out_features) if n in ranks else m.in_features * m.out_features
        for n, m in layers.items()
    )


def ranks_for_budget(
    layers: dict[str, nn.Linear], svals: dict[str, torch.Tensor], budget: float, iters: int = 30
) -> dict[str, int]:
    """The ranks of the largest common energy whose weight count is at most `budget` of the original."""
    target = budget * _params(layers, {})
    lo, hi = 0.0, 1.0
    best = ranks_for_energy(layers, svals, 1e-6)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ranks = ranks_for_energy(layers, svals, max(mid, 1e-6))
        if _params(layers, ranks) <= target:
            lo, best = mid, ranks
        else:
            hi = mid
    return best


@register_method("low-rank")
def low_rank(model: nn.Module, ctx: CompressContext) -> MethodResult:
    opts = ctx.options
    if (opts.energy is None) == (opts.param_budget is None):
        raise ValueError("low-rank needs exactly one of --energy (e.g. 0.9) or --param-budget (e.g. 0.5)")
    layers = {n: m for n, m in linear_layers(model).items() if min(m.in_features, m.out_features) > 1}
    if not layers:
        raise ValueError(f"low-rank: {type(model).__name__} has no nn.Linear layer to factorise")
    svals = singular_values(layers)
    if opts.energy is not None:
        ranks = ranks_for_energy(layers, svals, opts.energy)
    else:
        ranks = ranks_for_budget(layers, svals, opts.param_budget)
    if not ranks:
        biggest = max(layers.values(), key=lambda m: m.in_features * m.out_features)
        raise ValueError(
            f"low-rank: no Linear layer is big enough to gain from factorising at this setting (the largest "
            f"is {biggest.out_features}x{biggest.in_features}); lower --energy or --param-budget"
        )
    specs = {}
    for n, r in ranks.items():
        layer = LowRankLinear.from_linear(layers[n], r)
        set_module(model, n, layer)
        specs[n] = layer.spec()
    losses = recover(model, ctx, "low-rank")
    before = _params(layers, {})
    after = _params(layers, ranks)
    details = {
        "factorised_layers": len(ranks),
        "kept_dense_layers": len(layers) - len(ranks),
        "linear_weights_before": before,
        "linear_weights_after": after,
        "ranks": {n: [r, min(layers[n].in_features, layers[n].out_features)] for n, r in ranks.items()},
        "finetune_losses": losses[-1:],
    }
    setting = {"energy": opts.energy} if opts.energy is not None else {"param_budget": opts.param_budget}
    return MethodResult(model, {"method": "low-rank", **setting, "modules": specs}, details)
