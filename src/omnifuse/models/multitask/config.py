"""The multi-task model's recipe config (`model.type: multitask`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnifuse.models.multimodal_config import FusionModelConfig, TaskConfig


@dataclass
class MultiTaskConfig(FusionModelConfig):
    """Encoders + a fusion strategy + one head per task, with hard or soft parameter sharing."""

    type: Literal["multitask"] = "multitask"
    """The model kind; selects this config in a recipe."""
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    """Task name -> its label, kind and classes."""
    sharing: Literal["hard", "soft"] = "hard"
    """hard: one trunk (encoders + fusion) shared by every task; soft: a trunk per task, L2-tied."""
    loss_weighting: Literal["fixed", "uncertainty"] = "fixed"
    """fixed: each task's `weight`; uncertainty: learned per-task weights (Kendall et al. 2018)."""
    soft_l2: float = 1e-3
    """Strength of the L2 tie between task towers (soft sharing)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tasks:
            raise ValueError("a multitask model needs 'tasks' (name -> label, kind, ...)")
