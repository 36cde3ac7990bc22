"""Pruning: unstructured magnitude pruning, and structured pruning of attention heads and MLP channels.

Magnitude: Han et al. 2015, "Learning both Weights and Connections for Efficient Neural
Networks", arXiv:1506.02626 — zero the smallest |w|, globally or per layer. The weights stay
dense tensors (the file does not shrink); the report gives the real sparsity.

Structured: remove whole attention heads (Michel et al. 2019, "Are Sixteen Heads Really Better
than One?", arXiv:1905.10650) and MLP intermediate channels, ranked by weight norm (Li et al.
2017, "Pruning Filters for Efficient ConvNets", arXiv:1608.08710), building smaller nn.Linear
layers. HF configs cannot express per-layer sizes, so config.json's ``compression.modules``
records every new shape and `load_model` rebuilds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omnifuse.deploy.compress.base import CompressContext, MethodResult, linear_layers, register_method
from omnifuse.deploy.compress.finetune import recover
from omnifuse.layers.surgery import get_module, set_module

# ---- unstructured ------------------------------------------------------------------------------


def magnitude_masks(layers: dict[str, nn.Linear], sparsity: float, scope: str) -> dict[str, torch.Tensor]:
    """Boolean keep-masks (True = keep) zeroing `sparsity` of the weights, per layer or globally."""
    if not 0 < sparsity < 1:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
    if scope == "global":
        scores = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        k = int(sparsity * scores.numel())
        threshold = torch.kthvalue(scores, k).values if k > 0 else scores.min() - 1
        return {n: m.weight.detach().abs() > threshold for n, m in layers.items()}
    masks = {}
    for n, m in layers.items():
        w = m.weight.detach().abs().flatten()
        k = int(sparsity * w.numel())
        threshold = torch.kthvalue(w, k).values if k > 0 else w.min() - 1
        masks[n] = m.weight.detach().abs() > threshold
    return masks


def apply_masks(layers: dict[str, nn.Linear], masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, m in layers.items():
            m.weight.mul_(masks[n])


@register_method("prune-magnitude")
def prune_magnitude(model: nn.Module, ctx: CompressContext) -> MethodResult:
    opts = ctx.options
    layers = linear_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers to prune")
    masks = magnitude_masks(layers, opts.sparsity, opts.scope)
    apply_masks(layers, masks)
    losses = recover(model, ctx, "prune-magnitude", after_step=lambda: apply_masks(layers, masks))
    total = sum(m.weight.numel() for m in layers.values())
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    details = {
        "target_sparsity": opts.sparsity,
        "scope": opts.scope,
        "linear_sparsity": zeros / total,
        "pruned_layers": len(layers),
        "finetune_losses": losses[-1:] if losses else [],
    }
    compression = {"method": "prune-magnitude", "scope": opts.scope, "linear_sparsity": zeros / total}
    return MethodResult(model, compression, details)


# ---- structured --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockPattern:
    """Where a transformer layer of one HF family keeps its attention and MLP linears."""

    family: str
    attn: str
    q: str
    k: str
    v: str
    o: str
    head_dim_attr: str
    heads_attr: str
    fc1: str
    fc2: str


PATTERNS = (
    BlockPattern(
        "bert", "attention.self", "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "attention_head_size", "num_attention_heads", "intermediate.dense",
        "output.dense",
    ),
    BlockPattern(
        "vit", "attention", "attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj",
        "head_dim", "num_attention_heads", "mlp.fc1", "mlp.fc2",
    ),
    BlockPattern(
        "clip", "self_attn", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
        "head_dim", "num_heads", "mlp.fc1", "mlp.fc2",
    ),
)  # fmt: skip


def _linear_at(module: nn.Module, path: str) -> nn.Linear | None:
    try:
        found = module.get_submodule(path)
    except AttributeError:
        return None
    return found if isinstance(found, nn.Linear) else None


def transformer_blocks(model: nn.Module) -> dict[str, BlockPattern]:
    """Dotted path -> pattern, for every module that is a BERT / ViT / CLIP transformer layer."""
    blocks = {}
    for name, module in model.named_modules():
        for p in PATTERNS:
            if all(_linear_at(module, path) is not None for path in (p.q, p.k, p.v, p.o, p.fc1, p.fc2)):
                blocks[name] = p
                break
    return blocks


def _rows(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    new = nn.Linear(linear.in_features, len(keep), bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(linear.weight[keep])
        if linear.bias is not None:
            new.bias.copy_(linear.bias[keep])
    return new.to(linear.weight.device, linear.weight.dtype)


def _cols(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    new = nn.Linear(len(keep), linear.out_features, bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, keep])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new.to(linear.weight.device, linear.weight.dtype)


def _spec(linear: nn.Linear) -> dict:
    return {
        "kind": "linear",
        "in_features": linear.in_features,
        "out_features": linear.out_features,
        "bias": linear.bias is not None,
    }


def _n_keep(n: int, fraction_removed: float) -> int:
    return max(1, n - int(round(fraction_removed * n)))


def prune_block(model: nn.Module, name: str, p: BlockPattern, fraction: float) -> tuple[dict, dict, dict]:
    """Remove the lowest-norm heads and MLP channels of one layer; (module specs, attrs, summary)."""
    block = get_module(model, name)
    attn = block.get_submodule(p.attn)
    head_dim = int(getattr(attn, p.head_dim_attr))
    q, k, v, o = (block.get_submodule(path) for path in (p.q, p.k, p.v, p.o))
    n_heads = q.out_features // head_dim
    # head importance: the norm of its rows in q, k, v and its columns in o
    per_head = lambda w: w.detach().float().reshape(n_heads, head_dim, -1).pow(2).sum((1, 2))  # noqa: E731
    score = per_head(q.weight) + per_head(k.weight) + per_head(v.weight) + per_head(o.weight.T)
    heads = torch.sort(torch.topk(score, _n_keep(n_heads, fraction)).indices).values
    rows = (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).flatten()
    fc1, fc2 = block.get_submodule(p.fc1), block.get_submodule(p.fc2)
    # channel importance: |fc1 row| * |fc2 column|
    channel_score = fc1.weight.detach().float().norm(dim=1) * fc2.weight.detach().float().norm(dim=0)
    channels = torch.sort(torch.topk(channel_score, _n_keep(fc1.out_features, fraction)).indices).values
    new = {
        p.q: _rows(q, rows), p.k: _rows(k, rows), p.v: _rows(v, rows), p.o: _cols(o, rows),
        p.fc1: _rows(fc1, channels), p.fc2: _cols(fc2, channels),
    }  # fmt: skip
    specs = {}
    for path, module in new.items():
        set_module(block, path, module)
        specs[f"{name}.{path}"] = _spec(module)
    setattr(attn, p.heads_attr, len(heads))
    if hasattr(attn, "all_head_size"):
        attn.all_head_size = len(heads) * head_dim
    attrs = {f"{name}.{p.attn}": {p.heads_attr: len(heads)}}
    if hasattr(attn, "all_head_size"):
        attrs[f"{name}.{p.attn}"]["all_head_size"] = len(heads) * head_dim
    summary = {"heads": [n_heads, len(heads)], "mlp": [fc1.out_features, len(channels)]}
    return specs, attrs, summary


@register_method("prune-structured")
def prune_structured(model: nn.Module, ctx: CompressContext) -> MethodResult:
    opts = ctx.options
    blocks = transformer_blocks(model)
    if not blocks:
        raise ValueError(
            f"prune-structured: {type(model).__name__} has no attention layers (BERT / ViT / CLIP "
            "transformer blocks) whose heads and MLP channels could be removed"
        )
    specs, attrs, layers = {}, {}, {}
    for name, pattern in blocks.items():
        s, a, summary = prune_block(model, name, pattern, opts.sparsity)
        specs.update(s)
        attrs.update(a)
        layers[name] = summary
    losses = recover(model, ctx, "prune-structured")
    compression = {"method": "prune-structured", "fraction": opts.sparsity, "modules": specs, "attrs": attrs}
    details = {"fraction_removed": opts.sparsity, "layers": layers, "finetune_losses": losses[-1:]}
    return MethodResult(model, compression, details)


__all__ = ["PATTERNS", "linear_layers", "magnitude_masks", "prune_block", "transformer_blocks"]
