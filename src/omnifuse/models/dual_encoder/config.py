"""The dual encoder's recipe config (`model.type: dual_encoder`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omnifuse.encoders.config import TowerConfig


@dataclass
class DualEncoderConfig:
    """A DualEncoder assembled from towers, or imported from an HF CLIP/SigLIP checkpoint."""

    type: Literal["dual_encoder"] = "dual_encoder"
    """The model kind; selects this config in a recipe."""
    encoders: dict[str, TowerConfig] = field(default_factory=dict)
    """Modality -> encoder (the towers of the dual encoder). Ignored when `from_hf` is set."""
    embed_dim: int = 64
    """Size of the shared embedding space every tower is projected into."""
    projection: Literal["linear", "mlp", "none"] = "linear"
    """Projection head from each tower's hidden size to `embed_dim` (`none`: the sizes must match)."""
    loss: Literal["clip", "siglip", "triplet", "npair", "circle"] = "clip"
    """Alignment loss (a name of `omnifuse.losses.LOSSES`)."""
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments of the loss (e.g. `margin: 0.2` for triplet)."""
    init_temperature: float = 0.07
    """Initial softmax temperature; the learned logit scale starts at 1 / init_temperature."""
    init_bias: float = -10.0
    """Initial SigLIP bias (only used by the siglip loss)."""
    learn_temperature: bool = True
    """Train the temperature (logit scale) with the towers; false keeps it fixed."""
    anchor: str | None = None
    """Align every modality with this one only (ImageBind-style); null aligns every pair."""
    from_hf: str | None = None
    """HF CLIPModel/SiglipModel directory or hub name to start from."""

    def __post_init__(self) -> None:
        if self.from_hf is None and len(self.encoders) < 2:
            raise ValueError(f"a dual encoder needs at least two encoders; got {sorted(self.encoders)}")
        if self.embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive; got {self.embed_dim}")
        if not 0 < self.init_temperature < 10:
            raise ValueError(f"init_temperature must be in (0, 10); got {self.init_temperature}")
        if self.anchor is not None and self.encoders and self.anchor not in self.encoders:
            raise ValueError(f"anchor '{self.anchor}' is not one of the encoders {sorted(self.encoders)}")

    def modalities(self) -> list[str]:
        """The modalities the model consumes (a CLIP/SigLIP import: text and image)."""
        return sorted(self.encoders) or ["image", "text"]
