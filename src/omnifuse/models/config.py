"""Typed model configs, as they appear under `model:` in a recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omnifuse.encoders.factory import TowerConfig
from omnifuse.encoders.lora import LoraSettings


@dataclass
class ModelConfig:
    """A DualEncoder assembled from towers, or imported from an HF CLIP/SigLIP checkpoint."""

    type: Literal["dual_encoder"] = "dual_encoder"
    towers: dict[str, TowerConfig] = field(default_factory=dict)
    """Modality -> tower. Ignored when `from_hf` is set."""
    embed_dim: int = 64
    projection: Literal["linear", "mlp", "none"] = "linear"
    loss: Literal["clip", "siglip", "triplet", "npair", "circle"] = "clip"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    init_temperature: float = 0.07
    init_bias: float = -10.0
    """Initial SigLIP bias (only used by the siglip loss)."""
    learn_temperature: bool = True
    anchor: str | None = None
    """Align every modality with this one only (ImageBind-style); null aligns every pair."""
    from_hf: str | None = None
    """HF CLIPModel/SiglipModel directory or hub name to start from."""

    def __post_init__(self) -> None:
        if self.from_hf is None and len(self.towers) < 2:
            raise ValueError(f"a dual encoder needs at least two towers; got {sorted(self.towers)}")
        if self.embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive; got {self.embed_dim}")
        if not 0 < self.init_temperature < 10:
            raise ValueError(f"init_temperature must be in (0, 10); got {self.init_temperature}")
        if self.anchor is not None and self.towers and self.anchor not in self.towers:
            raise ValueError(f"anchor '{self.anchor}' is not one of the towers {sorted(self.towers)}")


@dataclass
class FusionConfig:
    name: str = "concat"
    """A strategy of `omnifuse.fusion.FUSIONS` (concat, concat_mlp, late, gated, attention,
    cross_attention, co_attention, single_stream, pooling, bilinear, relation, memory)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Its constructor arguments (e.g. `hidden_dim: 128`, `layers: 2`)."""


@dataclass
class TaskConfig:
    label: str = "label"
    """The sample label (manifest column listed in `data.labels`) to predict."""
    kind: Literal["single_label", "multi_label", "regression"] = "single_label"
    class_names: list[str] | None = None
    """Default: the distinct labels of the training data, sorted."""
    class_weights: Literal["balanced"] | list[float] | None = None
    """Loss weight per class; `balanced`: n_samples / (n_classes * count), for imbalanced data."""
    weight: float = 1.0
    """This task's loss weight (multi-task, fixed weighting)."""


@dataclass
class FusionModelConfig:
    """What the fusion classifier and the multi-task model share."""

    encoders: dict[str, TowerConfig] = field(default_factory=dict)
    """Modality -> encoder (hub name, local dir, `pkg:` path or from-scratch preset)."""
    from_dual_encoder: str | None = None
    """A trained DualEncoder artifact whose towers (and processors) become the encoders."""
    dual_encoder_towers: list[str] | None = None
    """Which of its towers to take (default: all); the others come from `encoders`."""
    dual_encoder_trainable_layers: int | None = None
    """Fine-tuning of the taken towers: null trains them fully, 0 freezes them, N trains the top N layers."""
    fusion: FusionConfig = field(default_factory=FusionConfig)
    inputs: Literal["tokens", "pooled"] = "tokens"
    """What the encoders hand the fusion: token sequences (+ pooled), or pooled vectors only."""
    head_hidden: int | None = None
    """Hidden width of an MLP head; null: a linear head."""
    dropout: float = 0.1
    lora: LoraSettings | None = None
    """LoRA adapters on the encoders (which are then frozen except for the adapters)."""

    def __post_init__(self) -> None:
        if not self.encoders and not self.from_dual_encoder:
            raise ValueError("give 'encoders' (modality -> tower) or 'from_dual_encoder' (an artifact dir)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")


@dataclass
class FusionClassifierConfig(FusionModelConfig):
    type: Literal["fusion_classifier"] = "fusion_classifier"
    task: TaskConfig = field(default_factory=TaskConfig)


@dataclass
class MultiTaskConfig(FusionModelConfig):
    type: Literal["multitask"] = "multitask"
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    sharing: Literal["hard", "soft"] = "hard"
    loss_weighting: Literal["fixed", "uncertainty"] = "fixed"
    soft_l2: float = 1e-3
    """Strength of the L2 tie between task towers (soft sharing)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tasks:
            raise ValueError("a multitask model needs 'tasks' (name -> label, kind, ...)")


MODEL_CONFIGS: dict[str, type] = {
    "dual_encoder": ModelConfig,
    "fusion_classifier": FusionClassifierConfig,
    "multitask": MultiTaskConfig,
}
