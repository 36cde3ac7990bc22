"""Model assemblies: DualEncoder (CLIP/SigLIP), zero-shot classifier; more to come."""

from omnifuse.models.artifact import ArtifactError
from omnifuse.models.captioner import Captioner
from omnifuse.models.dual_encoder import DualEncoder
from omnifuse.models.factory import MODEL_TYPES, build_model, load_model
from omnifuse.models.image_tokenizer import ImageTokenizer
from omnifuse.models.masked_lm import MaskedLM  # registers the kind
from omnifuse.models.outputs import DualEncoderOutput
from omnifuse.models.text_to_image import TextToImage
from omnifuse.models.zero_shot import ZeroShotClassifier

__all__ = [
    "MODEL_TYPES",
    "ArtifactError",
    "Captioner",
    "DualEncoder",
    "DualEncoderOutput",
    "ImageTokenizer",
    "MaskedLM",
    "TextToImage",
    "ZeroShotClassifier",
    "build_model",
    "load_model",
]
