"""Sharded data parallel training on any device, CPU included: FSDP2 (`fully_shard`).

PyTorch's FSDP2 (https://pytorch.org/docs/stable/distributed.fsdp.fully_shard.html) turns each
parameter into a `DTensor` sharded along dim 0 over a 1-D device mesh: each of N processes holds
1/N of every parameter, gradient and optimizer moment; a block's parameters are all-gathered
just before its forward (and backward) and freed after, and gradients are reduce-scattered
(averaged over the processes, as DDP averages them).

The Trainer shards the model itself instead of handing it to Accelerate's `prepare`: Accelerate
(1.16) on CPU reads an FSDP launch configuration as `MULTI_CPU` and wraps the model in DDP
without a word, so its state cannot tell that FSDP was asked for. The launcher's environment
can (`accelerate launch` with `distributed_type: FSDP` exports `ACCELERATE_USE_FSDP=true`);
`train.distributed` picks the mode explicitly.

Checkpoints stay in the single-process format: the full (unsharded) model and optimizer state
are gathered to CPU (`get_model_state_dict` / `get_optimizer_state_dict` with
`full_state_dict=True, cpu_offload=True`), rank 0 writes them as one process would, and a
checkpoint of either kind loads into a sharded model (`set_model_state_dict` /
`set_optimizer_state_dict` with `full_state_dict=True`) or into a plain one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

# Class-name suffixes of the repeated blocks that become their own FSDP unit (GPT2Block,
# CLIPEncoderLayer, GatedCrossAttentionBlock ...): only modules held in an nn.ModuleList.
BLOCK_SUFFIXES = ("Block", "Layer")


def fsdp_requested(mode: str, distributed_type: Any, num_processes: int) -> bool:
    """Whether to shard: `mode` is `train.distributed` (auto, ddp, fsdp); under `auto` the
    launcher decides (an FSDP configuration, seen in Accelerate's state or its environment)."""
    if num_processes <= 1 or mode == "ddp":
        return False
    if mode == "fsdp":
        return True
    launched = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    return launched or str(distributed_type).endswith("FSDP")


def shardable_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks inside `nn.ModuleList`s whose class name ends with one of
    `BLOCK_SUFFIXES`, innermost first (a block nested in another is sharded before it)."""
    found = []
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            found += [m for m in module if type(m).__name__.endswith(BLOCK_SUFFIXES)]
    ids = {id(m) for m in found}
    order = [m for m in reversed(list(model.modules())) if id(m) in ids]
    return order


def shard(model: nn.Module, device_type: str) -> int:
    """`fully_shard` each block, then the root (which takes every parameter left over), over a
    1-D mesh of all processes; returns the number of blocks sharded on their own."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    world = torch.distributed.get_world_size()
    mesh = init_device_mesh(device_type, (world,))
    blocks = shardable_blocks(model)
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return len(blocks)


def is_sharded(model: nn.Module) -> bool:
    """Whether the model's parameters really are sharded DTensors (a `Shard` placement)."""
    from torch.distributed.tensor import DTensor

    return any(
        isinstance(p, DTensor) and any(pl.is_shard() for pl in p.placements) for p in model.parameters()
    )


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def _optimizer_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    """Each param group's parameter names, in the optimizer's order."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def _flat(groups: list[list[str]]) -> Iterator[tuple[int, str]]:
    return enumerate(name for group in groups for name in group)


def full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Gather the full model and optimizer state on CPU (a collective: every rank calls it; the
    state is complete on rank 0, empty elsewhere). The optimizer state comes back in
    `optimizer.state_dict()`'s own layout (parameters numbered in group order), so the
    checkpoint is the one a single process writes."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    options = _options(cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    named = get_optimizer_state_dict(model, optimizer, options=options)
    if not named:  # not rank 0
        return model_state, {}
    groups = _optimizer_names(model, optimizer)
    if [list(g["params"]) for g in named["param_groups"]] != groups:
        raise RuntimeError("the gathered optimizer state names its parameters in another order")
    index = {name: i for i, name in _flat(groups)}
    state = {index[name]: value for name, value in named["state"].items()}
    param_groups = []
    for group in named["param_groups"]:
        param_groups.append({**group, "params": [index[n] for n in group["params"]]})
    return model_state, {"state": state, "param_groups": param_groups}


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
) -> None:
    """Load a full (single-process layout) state into the sharded model and optimizer; every
    rank calls it with the same full state, each keeps its shard."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, model_state, options=_options())
    groups = _optimizer_names(model, optimizer)
    saved = [len(g["params"]) for g in optimizer_state["param_groups"]]
    if saved != [len(g) for g in groups]:
        raise ValueError(
            f"the checkpoint's optimizer has param groups of sizes {saved}; this model's {[len(g) for g in groups]}"
        )
    name = dict(_flat(groups))
    named = {
        "state": {name[int(i)]: value for i, value in optimizer_state["state"].items()},
        "param_groups": [
            {**g, "params": list(names)}
            for g, names in zip(optimizer_state["param_groups"], groups, strict=True)
        ],
    }
    set_optimizer_state_dict(model, optimizer, named, options=_options())
