"""The token classifier kind: recipe -> `omnifuse train` -> artifact with its tag names -> `omnifuse predict` JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from omnifuse.cli.main import main
from omnifuse.data.readers import read_samples
from omnifuse.data.sample import DataError
from omnifuse.data.synth.tasks import write_task_manifests
from omnifuse.eval.token_labels import TokenLabelEvaluator
from omnifuse.eval.token_metrics import token_metrics
from omnifuse.models.factory import load_model
from omnifuse.models.registry import get_spec
from omnifuse.train.config import recipe_from_dict
from omnifuse.train.run import run_recipe

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2}


@pytest.fixture(scope="module")
def grounding_dir(shapes_dir):
    write_task_manifests(shapes_dir)
    return shapes_dir


def _recipe(
    data: Path, out: Path, fusion: str = "cross_attention", image: bool = True, train: str = "grounding_train"
) -> dict:
    encoders = {"text": {"arch": "bert", "overrides": TINY}}
    columns = {"text": "caption"}
    if image:
        encoders["image"] = {"arch": "vit", "overrides": {**TINY, "patch_size": 16}}
        columns["image"] = "image"
    return {
        "name": f"grounding-{fusion}",
        "output_dir": str(out),
        "data": {
            "train": str(data / f"{train}.jsonl"),
            "val": str(data / "grounding_val.jsonl"),
            "columns": columns,
            "labels": ["tags"],
        },
        "processor": {"text": {"max_length": 40}, "image": {"size": 32}},
        "model": {
            "type": "token_classifier",
            "encoders": encoders,
            "fusion": {"name": fusion, "kwargs": {"hidden_dim": 32} if fusion != "concat" else {}},
            "label": "tags",
        },
        "train": {"batch_size": 8, "max_steps": 3, "warmup_steps": 1, "log_every": 1, "progress": False},
        "eval": {"max_items": 12},
    }


def test_spec():
    spec = get_spec("token_classifier")
    assert spec.can("label_tokens") and not spec.can("classify")


def test_trains_saves_tags_and_predicts_jsonl(grounding_dir, tmp_path, capsys):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(_recipe(grounding_dir, tmp_path / "runs")))
    assert main(["train", str(path)]) == 0
    run = tmp_path / "runs" / "grounding-cross_attention"
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines() if "val/f1" in r]
    assert rows and {"val/accuracy", "val/precision", "val/recall", "val/f1"} <= set(rows[-1])
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["model_type"] == "token_classifier"
    assert config["label_names"] == ["O", "B-wrong", "I-wrong"]
    model = load_model(run / "best")
    assert model.per_token  # cross_attention gives text tokens their own fused states
    out = tmp_path / "tags.jsonl"
    test_file = grounding_dir / "grounding_test.jsonl"
    code = main(
        [
            "predict",
            str(run / "best"),
            str(test_file),
            "--columns",
            "text=caption",
            "image=image",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    truth = [json.loads(line) for line in test_file.read_text().splitlines()]
    assert len(preds) == len(truth)
    for p, t in zip(preds, truth):
        assert p["words"] == t["caption"].split()
        assert len(p["labels"]) == len(p["words"]) and set(p["labels"]) <= {"O", "B-wrong", "I-wrong"}
    # the evaluator scores exactly the predicted tags
    samples = read_samples(test_file, columns={"text": "caption", "image": "image"}, label_columns=["tags"])
    metrics, details = TokenLabelEvaluator(samples, "tags").evaluate(model)
    want = token_metrics([t["tags"].split() for t in truth], [p["labels"] for p in preds])
    assert metrics == pytest.approx(want)
    assert "micro avg" in details["per_label"]
    report = tmp_path / "eval.json"
    ev = ["eval", str(run / "best"), str(test_file), "--text-column", "caption", "--out", str(report)]
    assert main([*ev, "--label-column", "tags"]) == 0
    assert json.loads(report.read_text())["metrics"] == pytest.approx(want)
    assert main(ev) != 0  # without the tags there is nothing to score
    assert "--label-column tags" in capsys.readouterr().err
    args = ["predict", str(run / "best"), str(test_file), "--columns", "text=caption", "image=image"]
    assert main([*args, "--out", str(tmp_path / "t.csv")]) != 0
    assert "per-token labels are written as JSONL" in capsys.readouterr().err


def test_pooled_fusion_appends_the_fused_vector(grounding_dir, tmp_path):
    recipe = recipe_from_dict(_recipe(grounding_dir, tmp_path / "runs", fusion="concat", image=False))
    run_recipe(recipe)
    model = load_model(recipe.run_dir / "best")
    assert not model.per_token and model.modalities == ["text"]


def test_misaligned_labels_are_an_error(grounding_dir, tmp_path):
    rows = [json.loads(line) for line in (grounding_dir / "grounding_train.jsonl").read_text().splitlines()]
    rows[3]["tags"] = " ".join(rows[3]["tags"].split()[:-2])
    bad = grounding_dir / "grounding_bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = recipe_from_dict(_recipe(grounding_dir, tmp_path / "runs", train="grounding_bad"))
    n = len(rows[3]["caption"].split())
    with pytest.raises(
        DataError, match=rf"grounding_bad.jsonl:4: the text has {n} words but 'tags' has {n - 2} labels"
    ):
        run_recipe(recipe)
