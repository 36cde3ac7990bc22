"""Captioner data from the shapes world: captions, answers, few-shot sequences; list-of-image rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from omnifuse.data.processors import ImageProcessor
from omnifuse.data.readers import read_manifest
from omnifuse.data.synth import SynthConfig, generate
from omnifuse.data.synth.captions import NONCE_WORDS, TRAIN_SHOTS, write_captioner_manifests
from omnifuse.data.synth.vocab import COLOR_RGB


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("capworld")
    generate(SynthConfig(n=30, seed=1, image_size=24), out, progress=False, workers=1)
    return out, write_captioner_manifests(out, fewshot=6)


def test_manifests_and_their_contents(world):
    out, written = world
    assert {"caption_train", "answer_val", "fewshot_test", "captioner_train"} <= set(written)
    cap = json.loads(written["caption_train"].read_text().splitlines()[0])
    assert cap["text"].startswith("<image>Caption: ") and cap["text"].endswith("<|endofchunk|>")
    assert cap["text"][len("<image>Caption: ") : -len("<|endofchunk|>")] == cap["references"][0]
    ans = json.loads(written["answer_train"].read_text().splitlines()[0])
    assert ans["text"] == f"<image>Question: {ans['question']} Answer: {ans['answer']}<|endofchunk|>"


@pytest.mark.parametrize("split, shots", [("train", TRAIN_SHOTS), ("test", 4)])
def test_fewshot_sequences_follow_their_own_mapping(world, split, shots):
    """Training sequences carry more examples (more in-context copies to learn from) than the
    4-shot sequences of evaluation."""
    out, written = world
    for line in written[f"fewshot_{split}"].read_text().splitlines():
        row = json.loads(line)
        assert len(row["image"]) == shots + 1 == row["text"].count("<image>") == row["shots"] + 1
        words = [c.split("Output: ")[1] for c in row["text"].split("<|endofchunk|>")[:-1]]
        assert words[-1] == row["answer"] and set(words) <= set(NONCE_WORDS)
        mapping = row["mapping"]
        assert len(set(words[:-1])) == 2 and row["answer"] in words[:-1]  # the shots define the answer
        for rel, word in zip(row["image"], words, strict=True):
            pixels = np.asarray(Image.open(out / rel).convert("RGB")).reshape(-1, 3)
            colors = {c for c, rgb in COLOR_RGB.items() if (pixels == rgb).all(1).any()}
            assert colors == {c for c, w in mapping.items() if w == word}


def test_rows_with_several_images_read_and_process(world):
    out, written = world
    samples = read_manifest(written["captioner_train"], columns={"image": "image", "text": "text"})
    multi = [s for s in samples if isinstance(s.inputs["image"], list)]
    n = TRAIN_SHOTS + 1
    assert multi and all(len(s.inputs["image"]) == n for s in multi)
    single = next(s for s in samples if isinstance(s.inputs["image"], str))
    batch = ImageProcessor(size=24)([multi[0].inputs["image"], single.inputs["image"]])
    assert batch["image"].shape == (2, n, 3, 24, 24) and batch["image_count"].tolist() == [n, 1]
    assert batch["image"][1, 1:].abs().sum() == 0  # padding slots are zeros


def test_missing_image_in_a_list_is_reported(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        json.dumps({"image": ["nope.png"], "text": "<image>hi"})
        + "\n"
        + json.dumps({"image": "x.png", "text": "a"})
        + "\n"
    )
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    samples = read_manifest(path)
    assert len(samples) == 1
