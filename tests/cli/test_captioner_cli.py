"""The captioner end to end on a few dozen synthetic samples: synth -> train -> eval -> generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnifuse.cli.main import main

TINY = [  # the recipe's CLIP tower is not trained here: a from-scratch ViT instead
    "model.vision_from=null",
    "model.vision_layer=-1",
    "model.vision.arch=vit",
    "model.vision.pooling=cls",
    "model.vision.overrides.patch_size=8",
    "model.vision.overrides.num_hidden_layers=2",
    "model.vision.overrides.hidden_size=32",
    "model.vision.overrides.intermediate_size=64",
    "model.vision.overrides.num_attention_heads=2",
    "model.lm.preset=tiny",
    "model.lm.overrides.n_embd=32",
    "model.num_latents=4",
    "model.heads=2",
    "model.head_dim=8",
    "train.batch_size=8",
    "train.max_steps=4",
    "train.warmup_steps=1",
    "train.eval_every=4",
    "train.checkpoint_every=4",
    "train.progress=false",
    "eval.max_items=6",
    "eval.batch_size=8",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("captioner")
    data = root / "shapes"
    assert (
        main(
            ["data", "synth", "--out", str(data), "--n", "30", "--image-size", "24", "--captions", "--quiet"]
        )
        == 0
    )
    sets = [f"data.train={data / 'captioner_train.jsonl'}", f"data.val={data / 'captioner_val.jsonl'}"]
    sets += [f"output_dir={root / 'runs'}", "processor.image.size=24"]
    assert (
        main(["train", "recipes/shapes_captioner.yaml", *[x for s in sets + TINY for x in ("--set", s)]]) == 0
    )
    return data, root / "runs" / "shapes-captioner" / "best"


@pytest.mark.slow
def test_train_eval_generate(trained, capsys, tmp_path):
    data, model = trained
    metrics = [json.loads(line) for line in (model.parent / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if "val/caption/cider" in m]
    assert evals and "val/caption/cider_shuffled" in evals[-1] and "val/fewshot/accuracy_0shot" in evals[-1]
    capsys.readouterr()

    out = tmp_path / "eval.json"
    assert (
        main(["eval", str(model), str(data / "captioner_test.jsonl"), "--max-items", "4", "--out", str(out)])
        == 0
    )
    got = json.loads(out.read_text())["metrics"]
    assert {"caption/cider", "caption/cider_blank", "answer/accuracy", "fewshot/accuracy"} <= set(got)

    row = json.loads((data / "caption_test.jsonl").read_text().splitlines()[0])
    image = str(data / row["image"])
    capsys.readouterr()
    assert main(["generate", "caption", str(model), image, image, "--max-new-tokens", "5", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all("text" in x for x in lines)

    assert (
        main(
            [
                "generate",
                "answer",
                str(model),
                "--image",
                image,
                "--question",
                "what color is the circle?",
                "--strategy",
                "beam",
                "--num-beams",
                "2",
            ]
        )
        == 0
    )
    shots = tmp_path / "shots.jsonl"
    shots.write_text(json.dumps({"image": image, "text": "a red circle"}) + "\n")
    assert (
        main(
            [
                "generate",
                "caption",
                str(model),
                image,
                "--few-shot",
                str(shots),
                "--stream",
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )


@pytest.mark.slow
def test_generate_bad_input(trained, capsys, tmp_path):
    data, model = trained
    row = json.loads((data / "caption_test.jsonl").read_text().splitlines()[0])
    image = str(data / row["image"])
    assert main(["generate", "caption", str(model), image, "--max-new-tokens", "600"]) == 2
    assert "above the limit of 512" in capsys.readouterr().err
    assert main(["generate", "caption", str(model), image, "--max-new-tokens", "300", "--limit", "1000"]) == 2
    assert "context" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": image}) + "\n")
    assert main(["generate", "caption", str(model), image, "--few-shot", str(bad)]) == 2
    assert "missing or empty: ['text']" in capsys.readouterr().err
    assert main(["generate", "caption", str(model), str(tmp_path / "nope.png")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_trains_from_webdataset_shards(trained, tmp_path):
    """The same interleaved rows (several images per few-shot row) packed as shards train a
    captioner like the manifest does."""
    data, _ = trained
    shards = tmp_path / "shards"
    assert main(["data", "pack", str(data / "captioner_train.jsonl"), "--out", str(shards), "--strict"]) == 0
    sets = [
        f"data.train={shards}",
        "data.val=null",
        f"output_dir={tmp_path / 'runs'}",
        "processor.image.size=24",
    ]
    sets += [s for s in TINY if not s.startswith(("train.eval_every", "eval."))] + ["train.eval_every=null"]
    assert main(["train", "recipes/shapes_captioner.yaml", *[x for s in sets for x in ("--set", s)]]) == 0
    metrics = (tmp_path / "runs" / "shapes-captioner" / "metrics.jsonl").read_text().splitlines()
    assert any("train/loss" in json.loads(line) for line in metrics)
