"""`omnifuse train` an image tokenizer and a text-to-image prior on a few dozen scenes, then
`omnifuse generate image` a reranked grid."""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image

from omnifuse.cli.main import main

pytest.importorskip("vector_quantize_pytorch")


def _recipe(tmp_path, name: str, shapes_dir, model: dict, **train) -> str:
    recipe = {
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(shapes_dir / "train.jsonl"), "val": str(shapes_dir / "val.jsonl")},
        "processor": {"text": {"tokenizer": "word", "max_length": 12}, "image": {"size": 32}},
        "model": model,
        "train": {
            "batch_size": 16,
            "max_steps": 4,
            "warmup_steps": 1,
            "log_every": 1,
            "progress": False,
            **train,
        },
        "eval": {"max_items": 12},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.mark.slow
def test_train_tokenizer_then_prior_then_generate_a_reranked_grid(tmp_path, shapes_dir, tiny_model, capsys):
    tok = {"type": "image_tokenizer", "grid": 8, "codebook_size": 32, "hidden": 8, "codebook_dim": 8}
    assert main(["train", _recipe(tmp_path, "tok", shapes_dir, tok)]) == 0
    tok_dir = tmp_path / "runs" / "tok" / "best"
    metrics = [
        json.loads(line) for line in (tmp_path / "runs" / "tok" / "metrics.jsonl").read_text().splitlines()
    ]
    assert {"val/psnr", "val/perplexity", "val/code_usage", "val/mse"} <= set(metrics[-1])

    prior = {"type": "text_to_image", "image_tokenizer": str(tok_dir), "hidden": 32, "layers": 2, "heads": 2}
    assert main(["train", _recipe(tmp_path, "t2i", shapes_dir, prior)]) == 0
    t2i_dir = tmp_path / "runs" / "t2i" / "best"
    assert json.loads((t2i_dir / "config.json").read_text())["model_type"] == "text_to_image"

    clip_dir = tmp_path / "clip"
    tiny_model().save_pretrained(clip_dir)
    out = tmp_path / "grid.png"
    args = ["generate", "image", str(t2i_dir), "a red circle", "a blue square", "--n", "3"]
    args += ["--rerank", str(clip_dir), "--guidance", "2", "--seed", "0", "--out", str(out), "--json"]
    assert main(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["prompt"] for r in rows] == ["a red circle"] * 3 + ["a blue square"] * 3
    assert rows[0]["clip_score"] >= rows[1]["clip_score"] >= rows[2]["clip_score"]
    grid = Image.open(out)
    assert grid.size == (3 * 32 + 4 * 2, 2 * 32 + 3 * 2)

    # a tokenizer whose grid does not match the prior's is refused, naming both
    bad = dict(prior, grid=16)
    assert main(["train", _recipe(tmp_path, "bad", shapes_dir, bad)]) != 0
    assert "grid 8" in capsys.readouterr().err


def test_generate_image_needs_an_image_generator(tmp_path, tiny_model, capsys):
    clip_dir = tmp_path / "clip"
    tiny_model().save_pretrained(clip_dir)
    assert main(["generate", "image", str(clip_dir), "a red circle"]) != 0
    assert "generate_image" in capsys.readouterr().err
