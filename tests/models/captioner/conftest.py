"""A tiny captioner (hidden 32, 2 layers) over a shapes vocabulary; no downloads."""

from __future__ import annotations

import numpy as np
import pytest

from omnifuse.data.processors import ImageProcessor, Processor
from omnifuse.data.sample import Sample
from omnifuse.encoders.config import TowerConfig
from omnifuse.models.captioner import CaptionerConfig, LanguageModelConfig
from omnifuse.models.captioner.build import build

WORDS = (
    "a red green blue circle square triangle left right of the what color is how many shapes two one".split()
)


def tiny_config(connector: str = "xattn", **kw) -> CaptionerConfig:
    lm = kw.pop("lm", LanguageModelConfig(overrides={"n_embd": 32, "n_positions": 96}))
    return CaptionerConfig(
        connector=connector,
        vision=TowerConfig(
            arch="vit", preset="tiny", overrides={"hidden_size": 32, "intermediate_size": 64, "patch_size": 8}
        ),
        lm=lm,
        num_latents=4,
        resampler_depth=1,
        heads=2,
        head_dim=8,
        **kw,
    )


def tiny_captioner(connector: str = "xattn", **kw):
    samples = [Sample(inputs={"text": " ".join(WORDS)})]
    return build(tiny_config(connector, **kw), Processor({"image": ImageProcessor(size=16)}), samples)


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)


@pytest.fixture(params=["xattn", "prefix"])
def captioner(request):
    import torch

    torch.manual_seed(0)
    return tiny_captioner(request.param).eval()


@pytest.fixture
def make_captioner():
    return tiny_captioner


@pytest.fixture
def img():
    return image
