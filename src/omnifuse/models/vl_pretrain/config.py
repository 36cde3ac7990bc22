"""The `vl_pretrain` recipe config (`model:` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omnifuse.encoders.factory import TowerConfig
from omnifuse.models.multimodal_config import FusionConfig

OBJECTIVES = ("itc", "itm", "mlm")
NEGATIVES = ("in_batch", "minimal_pairs")


@dataclass
class VLPretrainConfig:
    """Vision-language pre-training: contrastive (ITC), image-text matching (ITM), MLM on the image."""

    type: Literal["vl_pretrain"] = "vl_pretrain"
    """The model kind; selects this config in a recipe."""
    encoders: dict[str, TowerConfig] = field(default_factory=dict)
    """`text` and one other modality (usually `image`) -> tower (hub name, local dir, artifact, preset)."""
    fusion: FusionConfig = field(default_factory=lambda: FusionConfig(name="single_stream"))
    """A strategy of the fusion zoo that gives a joint representation (single_stream,
    cross_attention, co_attention, ...); decision-level fusion (late) cannot serve ITM or MLM."""
    embed_dim: int = 64
    """Width of the contrastive embedding space."""
    init_temperature: float = 0.07
    """Initial contrastive temperature (learned)."""
    loss_weights: dict[str, float] = field(default_factory=lambda: {"itc": 1.0, "itm": 1.0, "mlm": 1.0})
    """Weight of each objective: `itc` (image-text contrastive), `itm` (matching), `mlm` (masked
    language modelling conditioned on the image); 0 turns one off (`itc` alone: CLIP-only)."""
    itm_negatives: list[Literal["in_batch", "minimal_pairs"]] = field(default_factory=lambda: ["in_batch"])
    """ITM negatives: `in_batch` mines, for every image, the most similar non-matching text of the
    batch by contrastive similarity and, for every text, the most similar non-matching image
    (ALBEF); `minimal_pairs` pairs each image with its sample's false twin caption (label
    `negative_label`, e.g. the shapes world's swapped attributes or relation arguments)."""
    negative_label: str = "negative"
    """Sample label holding a minimal-pair false caption (list the column in `data.labels`)."""
    mlm_probability: float = 0.15
    """Share of text tokens masked for the MLM objective."""
    whole_word_mask: bool = False
    """Mask every sub-word of a chosen word together."""

    @property
    def other(self) -> str:
        return next(m for m in sorted(self.encoders) if m != "text")

    def __post_init__(self) -> None:
        if "text" not in self.encoders or len(self.encoders) != 2:
            raise ValueError(
                f"model.encoders must be 'text' and one other modality (e.g. image); got {sorted(self.encoders)}"
            )
        unknown = sorted(set(self.loss_weights) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"model.loss_weights: unknown objective(s) {unknown}; known: {list(OBJECTIVES)}")
        if any(w < 0 for w in self.loss_weights.values()) or not any(self.loss_weights.values()):
            raise ValueError(
                f"model.loss_weights must be >= 0 with at least one > 0; got {self.loss_weights}"
            )
        bad = sorted(set(self.itm_negatives) - set(NEGATIVES))
        if bad:
            raise ValueError(f"model.itm_negatives: unknown {bad}; allowed: {list(NEGATIVES)}")
        if self.weight("itm") and not self.itm_negatives:
            raise ValueError("model.itm_negatives is empty; ITM needs negatives (in_batch, minimal_pairs)")
        if self.embed_dim <= 0:
            raise ValueError(f"model.embed_dim must be positive; got {self.embed_dim}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"model.mlm_probability must be in (0, 1); got {self.mlm_probability}")

    def weight(self, objective: str) -> float:
        return float(self.loss_weights.get(objective, 0.0))
