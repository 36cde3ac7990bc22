"""A multi-task model's tasks, and where each task's labels sit in a batch."""

from __future__ import annotations

from dataclasses import dataclass


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


def label_batch_key(task: str) -> str:
    """The batch key holding task `task`'s targets."""
    return f"labels/{task}"
