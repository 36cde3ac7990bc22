"""Tower config -> built encoder (from scratch or from pretrained HF weights)."""

from __future__ import annotations

from typing import Any

from omnifuse.encoders.artifact import load_artifact_encoder
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.config import TowerConfig
from omnifuse.encoders.freezing import freeze, set_gradient_checkpointing
from omnifuse.encoders.hf import load_hf_encoder
from omnifuse.encoders.presets import ARCHS, build_scratch_encoder
from omnifuse.encoders.video import build_video_tower


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
