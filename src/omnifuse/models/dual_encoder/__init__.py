"""The dual encoder kind (CLIP / SigLIP / ImageBind-style alignment of N towers)."""

from omnifuse.models.dual_encoder.config import DualEncoderConfig
from omnifuse.models.dual_encoder.model import DualEncoder

__all__ = ["DualEncoder", "DualEncoderConfig"]
