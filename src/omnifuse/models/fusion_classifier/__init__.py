"""The fusion classifier kind: an encoder per modality, a fusion strategy and one head."""

from omnifuse.models.fusion_classifier.config import FusionClassifierConfig
from omnifuse.models.fusion_classifier.model import ClassifierOutput, FusionClassifier

__all__ = ["ClassifierOutput", "FusionClassifier", "FusionClassifierConfig"]
