"""`masked_lm`: BERT pre-training (masked language modelling + next-sentence prediction)."""

from omnifuse.models.masked_lm.config import MaskedLMConfig
from omnifuse.models.masked_lm.model import MaskedLM, MaskedLMOutput, PreparedData

__all__ = ["MaskedLM", "MaskedLMConfig", "MaskedLMOutput", "PreparedData"]
