"""Prediction heads and task losses shared by the classifier and multi-task models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.targets import IGNORE_INDEX

TASK_KINDS = ("single_label", "multi_label", "regression")


@dataclass
class TaskSpec:
    """One task: its kind, classes (not for regression), label key and fixed loss weight."""

    kind: str = "single_label"
    """single_label, multi_label or regression."""
    class_names: list[str] | None = None
    """The classes, in head-output order (None for regression)."""
    label_key: str = "label"
    """The sample label this task predicts."""
    weight: float = 1.0
    """The task's loss weight under fixed weighting."""


def build_head(in_dim: int, num_outputs: int, hidden: int | None = None, dropout: float = 0.0) -> nn.Module:
    """Dropout + Linear, or a one-hidden-layer MLP branch when `hidden` is set."""
    if hidden:
        return nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_outputs),
        )  # fmt: skip
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_outputs))


def task_loss(
    kind: str, logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy (single label), BCE (multi-label) or MSE (regression), skipping ignored targets."""
    logits = logits.float()
    if kind == "single_label":
        if (targets == IGNORE_INDEX).all():
            return logits.sum() * 0.0  # nothing to learn from; keeps the graph for DDP
        return F.cross_entropy(logits, targets, weight=class_weights, ignore_index=IGNORE_INDEX)
    keep = ~torch.isnan(targets)  # (B, C) or (B,)
    if kind == "multi_label":
        loss = F.binary_cross_entropy_with_logits(
            logits, targets.nan_to_num(0.0), pos_weight=class_weights, reduction="none"
        )
    elif kind == "regression":
        loss = (logits.squeeze(-1) - targets.nan_to_num(0.0)) ** 2
    else:
        raise ValueError(f"unknown task kind '{kind}'; known: {TASK_KINDS}")
    return (loss * keep).sum() / keep.sum().clamp_min(1)


def probabilities(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """Softmax (single label), sigmoid (multi-label) or the value itself (regression)."""
    if kind == "single_label":
        return logits.float().softmax(-1)
    if kind == "multi_label":
        return logits.float().sigmoid()
    return logits.float()


def check_task(kind: str, class_names: list[str] | None) -> int:
    """Validate a task and return its number of outputs."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind '{kind}'; known: {TASK_KINDS}")
    if kind == "regression":
        return 1
    if not class_names or len(class_names) < 2:
        raise ValueError(f"a {kind} task needs at least 2 class names; got {class_names}")
    return len(class_names)


def head_config(head: nn.Module) -> dict[str, Any]:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    dropout = next((m.p for m in head.modules() if isinstance(m, nn.Dropout)), 0.0)
    hidden = linears[0].out_features if len(linears) == 2 else None
    return {"in_dim": linears[0].in_features, "num_outputs": linears[-1].out_features, "hidden": hidden,
            "dropout": dropout}  # fmt: skip
