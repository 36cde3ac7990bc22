"""Per-modality encoders: HF adapters, from-scratch presets, video, freezing; importing this
package registers every built-in encoder kind."""

from omnifuse.encoders.base import Encoder, EncoderOutput
from omnifuse.encoders.config import EncoderArchitecture, EncoderTraining, EncoderWeights, TowerConfig
from omnifuse.encoders.factory import build_encoder
from omnifuse.encoders.freezing import freeze, set_gradient_checkpointing
from omnifuse.encoders.hf import HFEncoder, load_hf_encoder
from omnifuse.encoders.presets import build_scratch_encoder, preset_config
from omnifuse.encoders.registry import ENCODER_KINDS, encoder_from_config, register_encoder_kind
from omnifuse.encoders.video import VideoEncoder

__all__ = [
    "ENCODER_KINDS",
    "Encoder",
    "EncoderArchitecture",
    "EncoderTraining",
    "EncoderWeights",
    "TowerConfig",
    "VideoEncoder",
    "encoder_from_config",
    "register_encoder_kind",
    "EncoderOutput",
    "HFEncoder",
    "build_encoder",
    "build_scratch_encoder",
    "freeze",
    "load_hf_encoder",
    "preset_config",
    "set_gradient_checkpointing",
]
