"""The token classifier kind: one label per text word, conditioned on the other modalities."""

from omnifuse.models.token_classifier.config import TokenClassifierConfig
from omnifuse.models.token_classifier.model import TokenClassifier, TokenClassifierOutput

__all__ = ["TokenClassifier", "TokenClassifierConfig", "TokenClassifierOutput"]
