"""Tower config -> built encoder (from scratch or from pretrained HF weights)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omnifuse.encoders.artifact import load_artifact_encoder
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.freezing import freeze, set_gradient_checkpointing
from omnifuse.encoders.hf import load_hf_encoder
from omnifuse.encoders.presets import ARCHS, build_scratch_encoder
from omnifuse.encoders.video import build_video_tower


@dataclass
class TowerConfig:
    """How to build one modality's encoder."""

    source: Literal["scratch", "hf", "omnifuse"] = "scratch"
    """`scratch`: a preset with random init; `hf`: pretrained weights by hub name or local dir;
    `omnifuse`: this modality's tower of an omnifuse artifact (`name_or_path`: its directory), e.g. a
    pre-trained `masked_lm`, with its tokenizer."""
    arch: Literal["bert", "vit", "clip_text", "clip_vision", "frame_vit", "videomae", "ast"] = "bert"
    """From-scratch architecture: bert or clip_text for text, vit or clip_vision for images,
    frame_vit (a ViT per frame + temporal model) or videomae for video, ast (Audio Spectrogram
    Transformer over log-mel patches) for audio."""
    preset: Literal["tiny", "small", "base"] = "tiny"
    name_or_path: str | None = None
    """Hub name or local directory, for source `hf`."""
    pooling: Literal["cls", "mean", "pooler"] = "cls"
    overrides: dict[str, Any] = field(default_factory=dict)
    """HF config fields to override for from-scratch presets (e.g. `patch_size: 8`)."""
    stem: Literal["patch", "conv"] = "patch"
    """ViT patch embedding: one patchify conv (`patch`) or a convolutional stem (`conv`, Xiao et al. 2021)."""
    trainable_layers: int | None = None
    """None: train everything; 0: freeze the tower; N: train only the top N layers."""
    gradient_checkpointing: bool = False
    temporal: Literal["mean", "transformer"] = "transformer"
    """Video towers applying an image encoder per frame: masked mean over frames (order-blind) or
    a temporal transformer with learned frame positions."""
    temporal_layers: int = 1
    """Layers of the temporal transformer."""

    def __post_init__(self) -> None:
        if self.source in ("hf", "omnifuse") and not self.name_or_path:
            raise ValueError(f"a tower with source '{self.source}' needs 'name_or_path'")
        if self.trainable_layers is not None and self.trainable_layers < 0:
            raise ValueError(f"trainable_layers must be >= 0 or null; got {self.trainable_layers}")


def build_encoder(cfg: TowerConfig, modality: str, data_overrides: dict[str, Any] | None = None) -> Encoder:
    """Build a tower; `data_overrides` are sizes from the processor (vocab, lengths, image size)."""
    if modality == "video":  # a clip model, or an image encoder per frame + a temporal model
        if cfg.source == "scratch" and ARCHS[cfg.arch] != modality:
            raise ValueError(f"arch '{cfg.arch}' encodes {ARCHS[cfg.arch]}, not video")
        encoder = build_video_tower(cfg, data_overrides)
    elif cfg.source == "omnifuse":
        if cfg.stem != "patch":
            raise ValueError("a conv stem would discard a pre-trained tower's patch embedding")
        encoder = load_artifact_encoder(cfg.name_or_path, modality, cfg.pooling)
    elif cfg.source == "hf":
        if cfg.stem != "patch":
            raise ValueError(
                "a conv stem would discard a pretrained tower's patch embedding; use it from scratch"
            )
        encoder = load_hf_encoder(cfg.name_or_path, modality, cfg.pooling)
    else:
        if ARCHS[cfg.arch] != modality:
            raise ValueError(f"arch '{cfg.arch}' encodes {ARCHS[cfg.arch]}, not {modality}")
        overrides = {**(data_overrides or {}), **cfg.overrides}
        encoder = build_scratch_encoder(cfg.arch, cfg.preset, cfg.pooling, cfg.stem, **overrides)
    if cfg.trainable_layers is not None:
        freeze(encoder, cfg.trainable_layers)
    if cfg.gradient_checkpointing:
        set_gradient_checkpointing(encoder, True)
    return encoder
