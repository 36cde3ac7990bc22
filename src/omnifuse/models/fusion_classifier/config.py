"""The fusion classifier's recipe config (`model.type: fusion_classifier`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnifuse.models.multimodal_config import FusionModelConfig, TaskConfig


@dataclass
class FusionClassifierConfig(FusionModelConfig):
    """Encoders + a fusion strategy + one head predicting one task."""

    type: Literal["fusion_classifier"] = "fusion_classifier"
    """The model kind; selects this config in a recipe."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """The label to predict and how."""
