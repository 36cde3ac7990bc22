"""Per-modality encoders: HF adapters, from-scratch presets, freezing."""

from omnifuse.encoders.base import Encoder, EncoderOutput
from omnifuse.encoders.factory import build_encoder
from omnifuse.encoders.freezing import freeze, set_gradient_checkpointing
from omnifuse.encoders.hf import HFEncoder, load_hf_encoder
from omnifuse.encoders.presets import build_scratch_encoder, preset_config

__all__ = [
    "Encoder",
    "EncoderOutput",
    "HFEncoder",
    "build_encoder",
    "build_scratch_encoder",
    "freeze",
    "load_hf_encoder",
    "preset_config",
    "set_gradient_checkpointing",
]
