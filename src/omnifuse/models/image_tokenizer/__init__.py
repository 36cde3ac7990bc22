"""The image tokenizer kind: a VQ-VAE turning images into grids of discrete codes and back."""

from omnifuse.models.image_tokenizer.config import ImageTokenizerConfig
from omnifuse.models.image_tokenizer.model import ImageTokenizer, ImageTokenizerOutput, code_usage, psnr

__all__ = ["ImageTokenizer", "ImageTokenizerConfig", "ImageTokenizerOutput", "code_usage", "psnr"]
