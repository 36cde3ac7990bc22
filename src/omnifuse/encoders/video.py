"""Video encoders: an image encoder per frame, then temporal pooling or a temporal transformer.

`VideoEncoder` runs any image `Encoder` (a from-scratch ViT preset or a pretrained HF vision
tower) on every real frame of a `(B, F, 3, H, W)` clip and combines the per-frame vectors:

- `temporal="mean"`: masked mean over frames (TSN's segmental consensus, Wang et al. 2016,
  arXiv:1608.00859). Order-blind: it cannot tell "moves up" from "moves down".
- `temporal="transformer"`: learned temporal position embeddings and a small pre-LN
  transformer over the frame vectors, then a masked mean: the factorised space-then-time
  design of ViViT's "factorised encoder" (Arnab et al. 2021, arXiv:2103.15691). The
  transformer reads each frame's difference from the clip's mean vector (what changes, as in
  TSN's RGB-difference input), which its pre-LN scales up, and the mean (what stays) is added
  back to its output. Frame vectors of a clip differ little at first; without the centring a
  small model sat at chance on motion direction for hundreds of steps (moving shapes, 4
  frames), with it it learned direction in under 100 steps.

Its tokens are frame-level, `(B, F, D)`, masked by `video_mask`. Whole-clip HF video models
(VideoMAE, Tong et al. 2022, arXiv:2203.12602) are used directly through `HFEncoder`, which
feeds them `pixel_values (B, F, 3, H, W)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import Encoder, EncoderOutput
from omnifuse.encoders.config import TowerConfig
from omnifuse.encoders.hf import load_hf_encoder
from omnifuse.encoders.presets import build_scratch_encoder
from omnifuse.encoders.registry import encoder_from_config, register_encoder_kind
from omnifuse.utils.paths import resolve_model_path

TEMPORAL = ("mean", "transformer")

#: HF `model_type`s that encode a whole clip themselves (else an HF tower is applied per frame).
HF_VIDEO_MODEL_TYPES: tuple[str, ...] = ("videomae", "vivit", "timesformer")


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B, D): mean over the real tokens."""
    m = mask.to(tokens.dtype).unsqueeze(-1)  # (B, T, 1)
    return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)


@register_encoder_kind("video")
class VideoEncoder(Encoder):
    """Per-frame image encoder + temporal mean pooling or temporal transformer (see module docs).

    frame_encoder: an image `Encoder`; its `pooled` output is the frame vector.
    temporal: "mean" or "transformer".
    max_frames: length of the learned temporal position table (the processor's `num_frames`).
    temporal_layers / temporal_heads: size of the temporal transformer (heads default: D / 32, at least 1).
    """

    modality = "video"

    def __init__(
        self,
        frame_encoder: Encoder,
        temporal: str = "transformer",
        max_frames: int = 8,
        temporal_layers: int = 1,
        temporal_heads: int | None = None,
    ):
        super().__init__()
        if getattr(frame_encoder, "modality", None) != "image":
            raise ValueError(
                f"a VideoEncoder's frame encoder must encode images; got {type(frame_encoder).__name__} "
                f"for '{getattr(frame_encoder, 'modality', None)}'"
            )
        if temporal not in TEMPORAL:
            raise ValueError(f"temporal must be one of {TEMPORAL}, got '{temporal}'")
        if max_frames <= 0 or temporal_layers <= 0:
            raise ValueError(
                f"max_frames and temporal_layers must be positive; got {max_frames}, {temporal_layers}"
            )
        d = frame_encoder.hidden_size
        heads = temporal_heads or max(1, d // 32)
        if d % heads:
            raise ValueError(f"temporal_heads {heads} must divide the frame encoder width {d}")
        self.frame_encoder = frame_encoder
        self.hidden_size = d
        self.temporal = temporal
        self.max_frames = max_frames
        self.temporal_layers = temporal_layers
        self.temporal_heads = heads
        if temporal == "transformer":
            self.temporal_position = nn.Parameter(torch.zeros(1, max_frames, d))
            nn.init.trunc_normal_(self.temporal_position, std=0.02)
            layer = nn.TransformerEncoderLayer(
                d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            self.temporal_transformer = nn.TransformerEncoder(
                layer, temporal_layers, enable_nested_tensor=False
            )
            self.temporal_norm = nn.LayerNorm(d)

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        video = batch["video"]  # (B, F, 3, H, W)
        b, f = video.shape[:2]
        if f > self.max_frames:
            raise ValueError(f"the clip has {f} frames; this encoder takes at most {self.max_frames}")
        mask = batch.get("video_mask")
        mask = video.new_ones(b, f) if mask is None else mask.to(video.dtype)  # (B, F)
        real = mask.reshape(-1).bool()  # (B*F,)
        frames = video.flatten(0, 1)[real]  # (N, 3, H, W): padded frames are never encoded
        vectors = self.frame_encoder({"image": frames}).pooled  # (N, D)
        tokens = vectors.new_zeros(b * f, vectors.shape[-1]).index_put((real.nonzero().squeeze(1),), vectors)
        tokens = tokens.view(b, f, -1)  # (B, F, D)
        if self.temporal == "transformer":
            appearance = masked_mean(tokens, mask).unsqueeze(1)  # (B, 1, D): what stays
            change = (tokens - appearance) * mask.unsqueeze(-1)  # (B, F, D): what moves
            change = self.temporal_transformer(
                change + self.temporal_position[:, :f], src_key_padding_mask=~mask.bool()
            )  # (B, F, D)
            tokens = appearance + self.temporal_norm(change) * mask.unsqueeze(-1)  # (B, F, D)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=masked_mean(tokens, mask))  # pooled: (B, D)

    def to_config(self) -> dict[str, Any]:
        return {
            "type": "video",
            "modality": "video",
            "frame_encoder": self.frame_encoder.to_config(),
            "temporal": self.temporal,
            "max_frames": self.max_frames,
            "temporal_layers": self.temporal_layers,
            "temporal_heads": self.temporal_heads,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> VideoEncoder:
        """Rebuild the architecture (random weights) from `to_config()` output: no hub access."""
        return cls(
            encoder_from_config(cfg["frame_encoder"]),
            cfg["temporal"],
            int(cfg["max_frames"]),
            int(cfg["temporal_layers"]),
            cfg.get("temporal_heads"),
        )


def build_frame_vit(
    preset: str = "tiny",
    pooling: str = "cls",
    stem: str = "patch",
    temporal: str = "transformer",
    temporal_layers: int = 1,
    num_frames: int = 8,
    **overrides: Any,
) -> VideoEncoder:
    """A from-scratch ViT preset per frame + temporal pooling or transformer (`overrides`: ViT config)."""
    frame = build_scratch_encoder("vit", preset, pooling, stem, **overrides)
    return VideoEncoder(frame, temporal, num_frames, temporal_layers)


def load_hf_video_encoder(
    name_or_path: str,
    pooling: str = "cls",
    temporal: str = "transformer",
    temporal_layers: int = 1,
    max_frames: int = 8,
) -> Encoder:
    """Pretrained weights by hub name or local dir: a clip model (VideoMAE ...) as is, an image tower per frame."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model_path(name_or_path))
    if config.model_type in HF_VIDEO_MODEL_TYPES:
        if pooling == "cls":
            raise ValueError(f"{config.model_type} has no CLS token; use pooling 'mean' for {name_or_path}")
        return load_hf_encoder(name_or_path, "video", pooling)
    return VideoEncoder(
        load_hf_encoder(name_or_path, "image", pooling), temporal, max_frames, temporal_layers
    )


def build_video_tower(cfg: TowerConfig, data_overrides: dict[str, Any] | None = None) -> Encoder:
    """A video tower from a `TowerConfig`: `frame_vit` or `videomae` from scratch, or pretrained (`hf`)."""
    data = dict(data_overrides or {})
    num_frames = int(data.get("num_frames", 8))
    if cfg.source == "hf":
        return load_hf_video_encoder(
            cfg.name_or_path, cfg.pooling, cfg.temporal, cfg.temporal_layers, num_frames
        )
    if cfg.arch == "frame_vit":
        overrides = {**{k: v for k, v in data.items() if k != "num_frames"}, **cfg.overrides}
        return build_frame_vit(
            cfg.preset, cfg.pooling, cfg.stem, cfg.temporal, cfg.temporal_layers, num_frames, **overrides
        )
    if cfg.arch == "videomae":
        if cfg.pooling == "cls":
            raise ValueError("videomae has no CLS token; set the video tower's pooling to 'mean'")
        return build_scratch_encoder(
            "videomae", cfg.preset, cfg.pooling, cfg.stem, **{**data, **cfg.overrides}
        )
    raise ValueError(f"arch '{cfg.arch}' does not encode video; use 'frame_vit' or 'videomae'")
