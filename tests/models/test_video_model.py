"""A text + video DualEncoder: trained from a recipe, saved and loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnifuse.encoders.video import VideoEncoder
from omnifuse.models import DualEncoder, load_model
from omnifuse.train.config import recipe_from_dict
from omnifuse.train.run import run_recipe

pytest.importorskip("av")

TINY = {"hidden_size": 32, "intermediate_size": 64}


@pytest.fixture(scope="module")
def motion_dir(tmp_path_factory) -> Path:
    from omnifuse.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("motion")
    generate(
        SynthConfig(n=40, seed=1, modalities=["video"], max_objects=1, video_frames=6), out, progress=False
    )
    return out


def video_recipe(data: Path, out: Path, video_tower: dict, **train) -> dict:
    return {
        "name": "tiny-video",
        "output_dir": str(out),
        "data": {
            "train": str(data / "train.jsonl"),
            "val": str(data / "val.jsonl"),
            "columns": {"text": "video_captions", "video": "video"},
            "cache_decoded": True,
        },
        "processor": {"text": {"max_length": 24}, "video": {"num_frames": 4, "image": {"size": 16}}},
        "model": {
            "embed_dim": 16,
            "encoders": {
                "text": {"arch": "bert", "pooling": "mean", "overrides": TINY},
                "video": video_tower,
            },
        },
        "train": {
            "batch_size": 8,
            "max_steps": 3,
            "warmup_steps": 1,
            "log_every": 1,
            "eval_every": 3,
            "progress": False,
            **train,
        },
        "eval": {"max_items": 8},
    }


def embed(model: DualEncoder, samples: list) -> dict[str, torch.Tensor]:
    batch = model.processor(
        {"text": [s["video_captions"][0] for s in samples], "video": [s["path"] for s in samples]}
    )
    with torch.no_grad():
        return {m: model.encode(m, batch) for m in ("text", "video")}


def test_text_video_recipe_trains_saves_and_loads(motion_dir, tmp_path):
    tower = {"arch": "frame_vit", "temporal": "transformer", "overrides": {**TINY, "patch_size": 8}}
    result = run_recipe(recipe_from_dict(video_recipe(motion_dir, tmp_path, tower)))
    losses = [r["train/loss"] for r in result.metrics if "train/loss" in r]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert any("val/text_to_video/R@1" in r for r in result.metrics)

    best = tmp_path / "tiny-video" / "best"
    config = json.loads((best / "config.json").read_text())
    assert config["towers"]["video"]["type"] == "video"
    assert json.loads((best / "processor.json").read_text())["video"]["num_frames"] == 4
    model = load_model(best)
    assert isinstance(model.towers["video"], VideoEncoder) and model.towers["video"].max_frames == 4

    rows = [json.loads(line) for line in (motion_dir / "test.jsonl").read_text().splitlines()]
    samples = [{**r, "path": str(motion_dir / r["video"])} for r in rows]
    first = embed(model, samples)
    model.save_pretrained(tmp_path / "again")
    second = embed(load_model(tmp_path / "again"), samples)
    for m in first:
        assert first[m].shape == (len(samples), 16)
        torch.testing.assert_close(first[m], second[m])


def test_text_videomae_recipe_round_trip(motion_dir, tmp_path):
    tower = {
        "arch": "videomae",
        "pooling": "mean",
        "overrides": {**TINY, "patch_size": 8, "num_hidden_layers": 1},
    }
    run_recipe(recipe_from_dict(video_recipe(motion_dir, tmp_path, tower, max_steps=1, eval_every=None)))
    model = load_model(tmp_path / "tiny-video" / "best")
    assert type(model.towers["video"].model).__name__ == "VideoMAEModel"
    assert model.towers["video"].model.config.num_frames == 4


def test_chance_recall_and_direction_accuracy(motion_dir, tmp_path):
    from omnifuse.data.readers import read_samples
    from omnifuse.demos.video import COLUMNS, chance_recall, direction_accuracy

    assert chance_recall([[0], [1], [2], [3]], 4, 1) == pytest.approx(0.25)
    assert chance_recall([[0, 1], [0, 1], [2], [3]], 4, 1) == pytest.approx((0.5 + 0.5 + 0.25 + 0.25) / 4)
    assert chance_recall([[0]], 4, 5) == 1.0
    tower = {"arch": "frame_vit", "temporal": "mean", "overrides": {**TINY, "patch_size": 8}}
    run_recipe(recipe_from_dict(video_recipe(motion_dir, tmp_path, tower, max_steps=1, eval_every=None)))
    model = load_model(tmp_path / "tiny-video" / "best")
    test = read_samples(str(motion_dir / "test.jsonl"), columns=COLUMNS)
    metrics = direction_accuracy(model, test)
    assert metrics["direction/1_object/chance"] == 0.25
    assert metrics["direction/1_object/n"] == len(test)
    assert 0.0 <= metrics["direction/1_object/accuracy"] <= 1.0
