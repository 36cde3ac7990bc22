"""How to build one modality's encoder: where its weights come from, its architecture, and
how it trains, kept apart (timm's `PretrainedCfg` is the model: the weights' source is not
the architecture).

A recipe writes the three as one flat mapping per modality (`{source: hf, name_or_path: ...,
pooling: mean, trainable_layers: 2}`); `TowerConfig` is that mapping, and `weights()`,
`architecture()` and `training()` give its parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal


@dataclass
class EncoderWeights:
    """Where an encoder's weights come from."""

    source: Literal["scratch", "hf", "omnifuse"] = "scratch"
    """`scratch`: a preset with random init; `hf`: pretrained weights by hub name or local dir;
    `omnifuse`: this modality's tower of an omnifuse artifact (`name_or_path`: its directory), e.g. a
    pre-trained `masked_lm`, with its tokenizer."""
    name_or_path: str | None = None
    """Hub name or local directory, for sources `hf` and `omnifuse`."""


@dataclass
class EncoderArchitecture:
    """The encoder's architecture (from-scratch presets) and how it pools."""

    arch: Literal["bert", "vit", "clip_text", "clip_vision", "frame_vit", "videomae", "ast"] = "bert"
    """From-scratch architecture: bert or clip_text for text, vit or clip_vision for images,
    frame_vit (a ViT per frame + temporal model) or videomae for video, ast (Audio Spectrogram
    Transformer over log-mel patches) for audio."""
    preset: Literal["tiny", "small", "base"] = "tiny"
    """Size of the from-scratch preset (see `omnifuse.encoders.presets`)."""
    pooling: Literal["cls", "mean", "pooler"] = "cls"
    """How token states become one vector: the CLS token, a masked mean, or the model's pooler."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """HF config fields to override for from-scratch presets (e.g. `patch_size: 8`)."""
    stem: Literal["patch", "conv", "conv_bn"] = "patch"
    """ViT patch embedding: one patchify conv (`patch`) or a convolutional stem (Xiao et al. 2021):
    `conv_bn` (conv + BatchNorm + ReLU, the paper's; trains much faster from scratch) or `conv`
    (conv + GELU, no normalisation)."""
    temporal: Literal["mean", "transformer"] = "transformer"
    """Video towers applying an image encoder per frame: masked mean over frames (order-blind) or
    a temporal transformer with learned frame positions."""
    temporal_layers: int = 1
    """Layers of the temporal transformer."""


@dataclass
class EncoderTraining:
    """What of the encoder trains, and how."""

    trainable_layers: int | None = None
    """None: train everything; 0: freeze the tower; N: train only the top N layers."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, more compute)."""


@dataclass
class TowerConfig(EncoderTraining, EncoderArchitecture, EncoderWeights):
    """How to build one modality's encoder: weights source + architecture + training, flat."""

    def __post_init__(self) -> None:
        if self.source in ("hf", "omnifuse") and not self.name_or_path:
            raise ValueError(f"a tower with source '{self.source}' needs 'name_or_path'")
        if self.trainable_layers is not None and self.trainable_layers < 0:
            raise ValueError(f"trainable_layers must be >= 0 or null; got {self.trainable_layers}")
        if self.temporal_layers < 1:
            raise ValueError(f"temporal_layers must be >= 1; got {self.temporal_layers}")

    def _part(self, cls):
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})

    def weights(self) -> EncoderWeights:
        """Where the weights come from."""
        return self._part(EncoderWeights)

    def architecture(self) -> EncoderArchitecture:
        """The architecture and pooling."""
        return self._part(EncoderArchitecture)

    def training(self) -> EncoderTraining:
        """Freezing and gradient checkpointing."""
        return self._part(EncoderTraining)
