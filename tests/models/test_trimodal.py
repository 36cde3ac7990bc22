"""Tri-modal alignment: text + image + audio towers, anchored on text, trained end to end."""

from __future__ import annotations

import pytest
import torch

from omnifuse.data.audio import AudioProcessor
from omnifuse.data.readers import read_samples
from omnifuse.demos.trimodal import parse_modalities, retrieval_table
from omnifuse.eval.evaluator import embed_samples
from omnifuse.models import DualEncoder
from omnifuse.train.config import recipe_from_dict
from omnifuse.train.run import run_recipe

WIDTH = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 1}


@pytest.fixture(scope="module")
def spoken_shapes(tmp_path_factory):
    """36 scenes (28 train / 4 val / 4 test) with images and spoken short captions."""
    from omnifuse.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("spoken")
    config = SynthConfig(
        n=36, seed=0, image_size=32, modalities=["image", "audio"], speech={"caption": "short"}
    )
    generate(config, out, progress=False, workers=1)
    return out


def trimodal_recipe(data, out, anchor="text", **train):
    return {
        "name": "tri",
        "output_dir": str(out),
        "data": {
            "train": str(data / "train.jsonl"),
            "val": str(data / "val.jsonl"),
            "columns": {"text": "captions", "image": "image", "audio": "audio"},
        },
        "processor": {
            "text": {"max_length": 32},
            "image": {"size": 32},
            "audio": {"n_mels": 32, "max_seconds": 3.2},
        },
        "model": {
            "embed_dim": 16,
            "anchor": anchor,
            "encoders": {
                "text": {"arch": "bert", "pooling": "mean", "overrides": WIDTH},
                "image": {"arch": "vit", "overrides": {**WIDTH, "patch_size": 8}},
                "audio": {"arch": "ast", "pooling": "mean", "overrides": WIDTH},
            },
        },
        "train": {
            "batch_size": 8,
            "max_steps": 4,
            "warmup_steps": 1,
            "log_every": 1,
            "progress": False,
            **train,
        },
        "eval": {"max_items": 4},
    }


def test_trimodal_training_anchored_on_text_and_round_trip(spoken_shapes, tmp_path):
    recipe = recipe_from_dict(trimodal_recipe(spoken_shapes, tmp_path))
    result = run_recipe(recipe)
    assert result.step == 4 and all(
        r["train/loss"] == r["train/loss"] for r in result.metrics if "train/loss" in r
    )
    model = DualEncoder.from_pretrained(tmp_path / "tri" / "best")
    assert model.modalities == ["audio", "image", "text"] and model.anchor == "text"
    # only pairs with the anchor are trained: image-audio is never a loss term
    assert model.pairs(["audio", "image", "text"]) == [("text", "audio"), ("text", "image")]
    proc = model.processor["audio"]
    assert isinstance(proc, AudioProcessor) and proc.settings.n_mels == 32
    assert proc.settings.mean is not None and proc.settings.std is not None  # fitted on train clips
    test = read_samples(str(spoken_shapes / "test.jsonl"), columns=recipe.data.columns)
    emb, kept = embed_samples(model, test, ["audio", "image", "text"])
    assert {m: tuple(e.shape) for m, e in emb.items()} == {m: (len(test), 16) for m in emb}
    # the saved artifact reproduces the trained model's audio embeddings
    batch = model.processor({"audio": [s.inputs["audio"] for s in test]})
    assert batch["audio"].shape == (len(test), 32, 320)
    again = DualEncoder.from_pretrained(tmp_path / "tri" / "best")
    torch.testing.assert_close(again.encode("audio", batch), emb["audio"])
    # a batch with only some modalities trains the pairs it has
    texts_and_audio = {
        "text": [s.inputs["text"][0] for s in test],
        "audio": [s.inputs["audio"] for s in test],
    }
    out = model(model.processor(texts_and_audio))
    assert set(out.pair_losses) == {"text-audio"} and torch.isfinite(out.loss)


def test_image_anchor_trains_each_modality_with_the_image(spoken_shapes, tmp_path):
    recipe = recipe_from_dict(trimodal_recipe(spoken_shapes, tmp_path, anchor="image", max_steps=1))
    run_recipe(recipe)
    model = DualEncoder.from_pretrained(tmp_path / "tri" / "best")
    assert model.pairs(model.modalities) == [("image", "audio"), ("image", "text")]


def test_retrieval_table_has_every_pair_both_ways_with_chance(spoken_shapes, tmp_path):
    recipe = recipe_from_dict(trimodal_recipe(spoken_shapes, tmp_path, max_steps=1))
    run_recipe(recipe)
    model = DualEncoder.from_pretrained(tmp_path / "tri" / "best")
    test = read_samples(str(spoken_shapes / "test.jsonl"), columns={**recipe.data.columns, "text": "text"})
    rows = retrieval_table(model, test, model.modalities)
    assert [r["query -> target"] for r in rows] == [
        "text -> image", "image -> text", "text -> audio", "audio -> text", "image -> audio", "audio -> image",
    ]  # fmt: skip
    assert all(r["chance R@1"] == 1 / len(test) and 0 <= r["R@1"] <= r["R@5"] <= 1 for r in rows)
    assert [r["trained pair"] for r in rows] == [True, True, True, True, False, False]
    assert parse_modalities("text,audio") == ["audio", "text"]
    with pytest.raises(ValueError, match="two or more of audio, image, text"):
        parse_modalities("text,smell")
