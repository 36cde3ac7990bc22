"""Shared fixtures: tiny synthetic data, tiny models; everything offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from omnifuse.data.processors import ImageProcessor, Processor, TextProcessor, build_word_tokenizer
from omnifuse.models.dual_encoder import DualEncoderConfig
from omnifuse.models.factory import build_model
from omnifuse.utils.config import from_dict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """A small shapes world (120 scenes: 96 train / 12 val / 12 test), generated once."""
    from omnifuse.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("shapes")
    generate(SynthConfig(n=120, seed=0, image_size=32), out, progress=False, workers=1)
    return out


def _tiny_recipe_dict(shapes_dir: Path, out_dir: Path, **train) -> dict:
    """A tiny CLIP recipe (hidden 32, 2 layers) for fast end-to-end tests."""
    return {
        "name": "tiny",
        "output_dir": str(out_dir),
        "data": {"train": str(shapes_dir / "train.jsonl"), "val": str(shapes_dir / "val.jsonl")},
        "processor": {"text": {"tokenizer": "word", "max_length": 32}, "image": {"size": 32}},
        "model": {
            "embed_dim": 32,
            "encoders": {
                "text": {
                    "arch": "bert",
                    "preset": "tiny",
                    "pooling": "mean",
                    "overrides": {"hidden_size": 32, "intermediate_size": 64},
                },
                "image": {
                    "arch": "vit",
                    "preset": "tiny",
                    "pooling": "cls",
                    "overrides": {"hidden_size": 32, "intermediate_size": 64, "patch_size": 8},
                },
            },
        },
        "train": {
            "batch_size": 16,
            "max_steps": 6,
            "warmup_steps": 2,
            "log_every": 1,
            "progress": False,
            **train,
        },
        "eval": {"max_items": 12, "label_key": "color_shape"},
    }


TEXTS = [
    "a small red circle at the top left",
    "a large blue square below a green star",
    "there is a cyan hexagon",
]


def _tiny_model(loss: str = "clip"):
    torch.manual_seed(0)
    processor = Processor(
        {"text": TextProcessor(build_word_tokenizer(TEXTS), max_length=16), "image": ImageProcessor(size=16)}
    )
    cfg = from_dict(
        DualEncoderConfig,
        {
            "embed_dim": 8,
            "loss": loss,
            "encoders": {
                "text": {"arch": "bert", "overrides": {"hidden_size": 16, "intermediate_size": 32}},
                "image": {
                    "arch": "vit",
                    "pooling": "mean",
                    "overrides": {"hidden_size": 16, "intermediate_size": 32, "patch_size": 8},
                },
            },
        },
    )
    return build_model(cfg, processor).eval()


def _tiny_batch(model):
    import numpy as np

    images = [np.full((16, 16, 3), 40 * i, dtype=np.uint8) for i in range(3)]
    return model.processor({"text": TEXTS, "image": images})


@pytest.fixture
def tiny_model():
    """Factory of a tiny random DualEncoder (hidden 16) with a word tokenizer over TEXTS."""
    return _tiny_model


@pytest.fixture
def tiny_batch():
    """Factory: a processed batch of TEXTS and three flat-colored 16 px images for a model."""
    return _tiny_batch


@pytest.fixture(scope="session")
def tiny_recipe():
    """Factory of a tiny CLIP recipe dict (hidden 32, 2 layers): tiny_recipe(shapes_dir, out_dir, **train)."""
    return _tiny_recipe_dict
