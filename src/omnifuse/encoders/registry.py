"""Encoder kinds by the `type` key of their `to_config()`, so artifacts rebuild any tower.

New encoder families (audio, video, ...) register here: `ENCODER_KINDS["video"] = VideoEncoder`.
"""

from __future__ import annotations

from typing import Any

from omnifuse.encoders.base import Encoder
from omnifuse.encoders.hf import HFEncoder
from omnifuse.encoders.video import VideoEncoder

ENCODER_KINDS: dict[str, type[Encoder]] = {"hf": HFEncoder}
ENCODER_KINDS["video"] = VideoEncoder


def encoder_from_config(cfg: dict[str, Any]) -> Encoder:
    """Rebuild an encoder (random weights) from its `to_config()` output."""
    kind = cfg.get("type", "hf")
    if kind not in ENCODER_KINDS:
        raise ValueError(f"unknown encoder type '{kind}' in the config; known: {sorted(ENCODER_KINDS)}")
    return ENCODER_KINDS[kind].from_config(cfg)
