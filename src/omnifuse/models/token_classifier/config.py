"""The token classifier's recipe config (`model.type: token_classifier`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omnifuse.models.multimodal_config import FusionModelConfig


@dataclass
class TokenClassifierConfig(FusionModelConfig):
    """One label per text word, conditioned on the other modalities through the fusion module.

    The encoders, fusion, inputs, head and LoRA fields are those of the fusion classifier. A
    token-level fusion (cross_attention, co_attention, single_stream) gives each text token
    its own fused state; any other strategy's fused vector is appended to every text token.
    """

    type: Literal["token_classifier"] = "token_classifier"
    """The model kind; selects this config in a recipe."""
    label: str = "tags"
    """The label column: one tag per whitespace-separated word of the text (a list, or one
    space-separated string), e.g. IOB2 tags ``O B-wrong I-wrong``."""
    label_names: list[str] | None = None
    """The tag set, in order; null: every tag found in the training data (``O`` first)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.label:
            raise ValueError("model.label must name the label column holding one tag per word")
        if self.label_names is not None and len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"model.label_names has duplicates: {self.label_names}")
        if self.label_names is not None and len(self.label_names) < 2:
            raise ValueError(f"model.label_names needs at least 2 tags; got {self.label_names}")
