"""The captioner kind: Flamingo-style (gated cross-attention) or LLaVA-style (prefix) image-to-text."""

from omnifuse.models.captioner.blocks import (
    GatedCrossAttentionBlock,
    MaskedCrossAttention,
    PerceiverResampler,
    PrefixProjector,
)
from omnifuse.models.captioner.config import CaptionerConfig, LanguageModelConfig
from omnifuse.models.captioner.model import Captioner, CaptionerOutput
from omnifuse.models.captioner.processing import CaptionerTextProcessor

__all__ = [
    "Captioner",
    "CaptionerConfig",
    "CaptionerOutput",
    "CaptionerTextProcessor",
    "GatedCrossAttentionBlock",
    "LanguageModelConfig",
    "MaskedCrossAttention",
    "PerceiverResampler",
    "PrefixProjector",
]
