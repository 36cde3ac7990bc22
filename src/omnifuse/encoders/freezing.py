"""Freezing a tower: all of it, or all but its top N transformer layers; gradient checkpointing."""

from __future__ import annotations

from torch import nn


def transformer_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Find the stack of transformer blocks: the longest ModuleList of identical block types."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(m) for m in module}) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    if best is None:
        raise ValueError(f"{type(model).__name__} has no stack of transformer layers to unfreeze")
    return best


def freeze(module: nn.Module, trainable_top_layers: int = 0) -> None:
    """Freeze every parameter, then unfreeze the top `trainable_top_layers` blocks.

    When some top layers stay trainable, so do the norms/poolers that follow the stack
    (parameters outside both the embeddings and the block stack), since they read the
    top layers' output.
    """
    for p in module.parameters():
        p.requires_grad_(False)
    if trainable_top_layers <= 0:
        return
    stack_name, layers = transformer_layers(module)
    if trainable_top_layers > len(layers):
        raise ValueError(f"cannot unfreeze {trainable_top_layers} layers: the tower has {len(layers)}")
    for block in list(layers)[-trainable_top_layers:]:
        for p in block.parameters():
            p.requires_grad_(True)
    for name, p in module.named_parameters():
        if not name.startswith(stack_name + ".") and "embed" not in name:
            p.requires_grad_(True)


def set_gradient_checkpointing(module: nn.Module, enabled: bool) -> None:
    """Switch HF gradient checkpointing on every HF model inside `module`."""
    from transformers import PreTrainedModel

    for m in module.modules():
        if isinstance(m, PreTrainedModel) and m.supports_gradient_checkpointing:
            if enabled:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            else:
                m.gradient_checkpointing_disable()
