"""Bagging and boosting (SAMME): resampling with recorded seeds, SAMME weights, one ensemble artifact from the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from omnifuse.cli.main import main
from omnifuse.data.synth.tasks import write_task_manifests
from omnifuse.fusion import FusionEnsemble
from omnifuse.models.factory import load_model
from omnifuse.train.ensemble import bootstrap_indices, member_seeds, samme_step, weighted_indices

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2}


def test_seeds_and_resamples_are_recorded_and_reproducible():
    seeds = member_seeds(0, 5)
    assert seeds == member_seeds(0, 5) and len(set(seeds)) == 5 and seeds != member_seeds(1, 5)
    a, b = bootstrap_indices(50, seeds[0]), bootstrap_indices(50, seeds[0])
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() < 50
    assert len(set(a.tolist())) < 50  # with replacement: some drawn twice
    assert not np.array_equal(a, bootstrap_indices(50, seeds[1]))
    w = np.array([0.0, 0.0, 1.0, 0.0])
    assert weighted_indices(w, 3).tolist() == [2, 2, 2, 2]


def test_samme_weights_on_a_fixed_example():
    w = np.full(4, 0.25)
    err, alpha, new = samme_step(w, np.array([True, False, False, False]), n_classes=3)
    assert err == pytest.approx(0.25)
    assert alpha == pytest.approx(math.log(3) + math.log(2))  # log((1-err)/err) + log(K-1)
    np.testing.assert_allclose(new, np.array([6, 1, 1, 1]) / 9)
    # at chance (err = 1 - 1/K) the member gets alpha 0 and the weights stay
    err, alpha, same = samme_step(w, np.array([True, True, False, False]), n_classes=2)
    assert alpha == pytest.approx(0.0, abs=1e-9) and np.allclose(same, w)


class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, batch):
        return type("O", (), {"logits": self.logits})()


def test_vote_mode_is_weighted_hard_vote():
    members = [_Fixed([[2.0, 1.0, 0.0]]), _Fixed([[0.0, 3.0, 0.0]]), _Fixed([[0.0, 2.5, 0.0]])]
    out = FusionEnsemble(members, mode="hard_vote", num_outputs=3, weights=[3.0, 1.0, 1.0])({})
    torch.testing.assert_close(out.logits.softmax(-1), torch.tensor([[0.6, 0.4, 0.0]]), atol=1e-5, rtol=0)


def _recipe(data: Path, out: Path) -> dict:
    return {
        "name": "vqa-ens",
        "output_dir": str(out),
        "data": {
            "train": str(data / "vqa_train.jsonl"),
            "val": str(data / "vqa_val.jsonl"),
            "columns": {"image": "image", "text": "question"},
            "labels": ["answer"],
        },
        "processor": {"text": {"max_length": 16}, "image": {"size": 32}},
        "model": {
            "type": "fusion_classifier",
            "encoders": {
                "text": {"arch": "bert", "overrides": TINY},
                "image": {"arch": "vit", "overrides": {**TINY, "patch_size": 16}},
            },
            "fusion": {"name": "concat_mlp", "kwargs": {"hidden_dim": 32}},
            "task": {"label": "answer"},
        },
        "train": {"batch_size": 8, "max_steps": 3, "warmup_steps": 1, "log_every": 1, "progress": False},
        "eval": {"max_items": 24},
    }


@pytest.fixture(scope="module")
def vqa_dir(shapes_dir):
    write_task_manifests(shapes_dir)
    # a few dozen samples: the first 48 training questions
    lines = (shapes_dir / "vqa_train.jsonl").read_text().splitlines()[:48]
    (shapes_dir / "vqa_small.jsonl").write_text("\n".join(lines) + "\n")
    return shapes_dir


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bagging", "boosting"])
def test_cli_trains_one_ensemble_artifact(vqa_dir, tmp_path, method):
    recipe = _recipe(vqa_dir, tmp_path / "runs")
    recipe["data"]["train"] = str(vqa_dir / "vqa_small.jsonl")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--ensemble", method, "--members", "2"]) == 0
    run = tmp_path / "runs" / "vqa-ens"
    info = json.loads((run / "ensemble.json").read_text())
    assert info["method"] == method and len(info["resample_seeds"]) == len(info["member_seeds"]) >= 1
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["model_type"] == "ensemble" and config["info"] == info
    assert config["mode"] == ("hard_vote" if method == "boosting" else "mean")
    model = load_model(run / "best")
    assert len(model.members) == len(info["member_seeds"])
    if method == "boosting":
        assert model.ensemble.weights == pytest.approx(info["alphas"])
    out = tmp_path / "preds.jsonl"
    args = [
        "predict",
        str(run / "best"),
        str(vqa_dir / "vqa_test.jsonl"),
        "--columns",
        "text=question",
        "image=image",
    ]
    assert main([*args, "--out", str(out)]) == 0
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    assert preds and all(p["prediction"] in model.class_names for p in preds)
    if method == "bagging":  # the same seed reproduces the resamples and the members
        again = tmp_path / "again"
        recipe["output_dir"] = str(again)
        path.write_text(yaml.safe_dump(recipe))
        assert main(["train", str(path), "--ensemble", method, "--members", "2"]) == 0
        twin = load_model(again / "vqa-ens" / "best")
        assert (
            json.loads((again / "vqa-ens" / "ensemble.json").read_text())["resample_seeds"]
            == info["resample_seeds"]
        )
        for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
            torch.testing.assert_close(a, b)


def test_members_disagreeing_on_classes_is_an_error(vqa_dir, tmp_path):
    from omnifuse.models.ensemble import EnsembleClassifier
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    recipe = _recipe(vqa_dir, tmp_path / "runs")
    recipe["data"]["train"] = str(vqa_dir / "vqa_small.jsonl")
    recipe["train"]["max_steps"] = 1
    run_recipe(recipe_from_dict(recipe))
    a = load_model(tmp_path / "runs" / "vqa-ens" / "best")
    recipe["name"] = "other"
    recipe["model"]["task"]["class_names"] = [*a.class_names, "zebra"]
    run_recipe(recipe_from_dict(recipe))
    b = load_model(tmp_path / "runs" / "other" / "best")
    with pytest.raises(
        ValueError, match=r"ensemble members disagree on classes: member 1 has .*extra \['zebra'\]"
    ):
        EnsembleClassifier([a, b])
    saved = EnsembleClassifier([a, a]).save_pretrained(tmp_path / "ens")
    assert load_model(saved).class_names == a.class_names
