"""Model kinds, each one folder registered as a `ModelSpec`; the thin factory; artifacts.

Importing this package imports every built-in kind, which registers it.
"""

from omnifuse.models.artifact import ArtifactError
from omnifuse.models.captioner import Captioner
from omnifuse.models.dual_encoder import DualEncoder, DualEncoderConfig
from omnifuse.models.ensemble import EnsembleClassifier  # registers the kind
from omnifuse.models.factory import MODEL_TYPES, build_model, load_model
from omnifuse.models.fusion_classifier import FusionClassifier, FusionClassifierConfig
from omnifuse.models.generalist import Generalist  # registers the kind
from omnifuse.models.image_tokenizer import ImageTokenizer
from omnifuse.models.masked_lm import MaskedLM  # registers the kind
from omnifuse.models.multitask import MultiTaskConfig, MultiTaskModel
from omnifuse.models.outputs import DualEncoderOutput
from omnifuse.models.registry import (
    ModelSpec,
    find_spec,
    get_spec,
    model_configs,
    register_model_kind,
    spec_of,
)
from omnifuse.models.text_to_image import TextToImage
from omnifuse.models.token_classifier import TokenClassifier  # registers the kind
from omnifuse.models.vl_pretrain import VLPretrain  # registers the kind
from omnifuse.models.zero_shot import ZeroShotClassifier

__all__ = [
    "MODEL_TYPES",
    "ArtifactError",
    "Captioner",
    "DualEncoder",
    "DualEncoderConfig",
    "DualEncoderOutput",
    "EnsembleClassifier",
    "Generalist",
    "ImageTokenizer",
    "MaskedLM",
    "TextToImage",
    "FusionClassifier",
    "FusionClassifierConfig",
    "ModelSpec",
    "MultiTaskConfig",
    "MultiTaskModel",
    "VLPretrain",
    "TokenClassifier",
    "ZeroShotClassifier",
    "build_model",
    "get_spec",
    "load_model",
    "model_configs",
    "register_model_kind",
    "spec_of",
    "find_spec",
]
