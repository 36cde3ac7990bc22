"""Processors: deterministic word tokenizer, image pipeline, settings saved and reloaded."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from omnifuse.data.processors import (
    ImageProcessor,
    ImageSettings,
    Processor,
    TextProcessor,
    build_word_tokenizer,
)


def test_word_tokenizer_is_deterministic_and_wraps():
    texts = ["a red circle left of a blue square", "there is a red star"]
    a, b = build_word_tokenizer(texts), build_word_tokenizer(list(reversed(texts)))
    assert a.get_vocab() == b.get_vocab()
    ids = a("A red circle!")["input_ids"]
    assert ids[0] == a.cls_token_id and ids[-1] == a.sep_token_id
    assert a.unk_token_id in a("a purple thing")["input_ids"]


def test_image_pipeline_resize_crop_normalise():
    proc = ImageProcessor(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    img = np.full((20, 40, 3), 255, dtype=np.uint8)
    out = proc([img])["image"]
    assert out.shape == (1, 3, 16, 16)
    assert torch.allclose(out, torch.ones_like(out))


def test_train_augmentations_are_seeded():
    settings = ImageSettings(size=16, train_random_resized_crop=True, train_hflip=True)
    proc = ImageProcessor(settings)
    img = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    a = proc([img], train=True, rngs=[random.Random(1)])["image"]
    b = proc([img], train=True, rngs=[random.Random(1)])["image"]
    c = proc([img], train=False)["image"]
    assert torch.equal(a, b) and a.shape == c.shape == (1, 3, 16, 16)


def test_processor_save_load(tmp_path):
    tok = build_word_tokenizer(["a red circle"])
    proc = Processor({"text": TextProcessor(tok, 12), "image": ImageProcessor(size=20)})
    proc.save(tmp_path)
    again = Processor.load(tmp_path)
    assert again.fingerprint() == proc.fingerprint()
    assert torch.equal(again["text"](["a red circle"])["text"], proc["text"](["a red circle"])["text"])
    with pytest.raises(KeyError, match="no processor for modality 'audio'"):
        again["audio"]


def test_bad_image_settings():
    with pytest.raises(ValueError, match="positive"):
        ImageSettings(size=0)
    with pytest.raises(ValueError, match="3 values"):
        ImageSettings(mean=(0.5,))
