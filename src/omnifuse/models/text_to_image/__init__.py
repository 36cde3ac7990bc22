"""The text-to-image kind: a DALL-E-style prior over [text; image codes], with guidance and CLIP reranking."""

from omnifuse.models.text_to_image.config import TextToImageConfig
from omnifuse.models.text_to_image.grid import image_grid
from omnifuse.models.text_to_image.model import (
    GenerationTimeout,
    ImageGenerationOutput,
    TextImagePositions,
    TextToImage,
    TextToImageOutput,
)
from omnifuse.models.text_to_image.rerank import clip_scores, rerank_by_clip

__all__ = [
    "GenerationTimeout",
    "ImageGenerationOutput",
    "TextImagePositions",
    "TextToImage",
    "TextToImageConfig",
    "TextToImageOutput",
    "clip_scores",
    "image_grid",
    "rerank_by_clip",
]
