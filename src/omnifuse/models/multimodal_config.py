"""Recipe config shared by the fusion kinds (fusion_classifier, multitask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omnifuse.encoders.config import TowerConfig
from omnifuse.encoders.lora import LoraSettings


@dataclass
class FusionConfig:
    """Which fusion strategy joins the encoders' features, and its arguments."""

    name: str = "concat"
    """A strategy of `omnifuse.fusion.FUSIONS` (concat, concat_mlp, late, gated, attention,
    cross_attention, co_attention, single_stream, pooling, bilinear, relation, memory)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Its constructor arguments (e.g. `hidden_dim: 128`, `layers: 2`)."""


@dataclass
class TaskConfig:
    """One prediction task: which label, what kind of target, which classes."""

    label: str = "label"
    """The sample label (manifest column listed in `data.labels`) to predict."""
    kind: Literal["single_label", "multi_label", "regression"] = "single_label"
    """single_label: softmax + cross-entropy; multi_label: sigmoid + BCE; regression: one value, MSE."""
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
    """The fusion strategy and its arguments."""
    from_pretrained: str | None = None
    """A pre-trained artifact (e.g. a `vl_pretrain`) whose encoders and fusion module start this
    model, with its preprocessing; `encoders`, `from_dual_encoder`, `fusion` and `lora` then stay unset."""
    inputs: Literal["tokens", "pooled"] = "tokens"
    """What the encoders hand the fusion: token sequences (+ pooled), or pooled vectors only."""
    head_hidden: int | None = None
    """Hidden width of an MLP head; null: a linear head."""
    dropout: float = 0.1
    """Dropout before the head's output layer."""
    lora: LoraSettings | None = None
    """LoRA adapters on the encoders (which are then frozen except for the adapters)."""

    def __post_init__(self) -> None:
        if self.from_pretrained:
            given = [k for k in ("encoders", "from_dual_encoder", "lora") if getattr(self, k)]
            given += ["fusion"] if self.fusion != FusionConfig() else []
            if given:
                raise ValueError(
                    f"from_pretrained takes the encoders and the fusion module from {self.from_pretrained}; "
                    f"drop {given}"
                )
        elif not self.encoders and not self.from_dual_encoder:
            raise ValueError(
                "give 'encoders' (modality -> tower), 'from_dual_encoder' (an artifact dir) or "
                "'from_pretrained' (a pre-trained artifact with encoders and a fusion module)"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
