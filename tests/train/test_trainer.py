"""Trainer pieces: early stopping and best/, weight-decay exclusions, the schedule."""

from __future__ import annotations

import json

import pytest

from omnifuse.train.config import recipe_from_dict
from omnifuse.train.loop import Trainer
from omnifuse.train.optim import lr_lambda, param_groups
from omnifuse.train.run import build_processor, load_recipe_data


def test_early_stopping_keeps_the_best(tmp_path, shapes_dir, tiny_recipe):
    from omnifuse.models.factory import build_model

    recipe = recipe_from_dict(
        tiny_recipe(
            shapes_dir,
            tmp_path,
            max_steps=20,
            eval_every=1,
            early_stopping={"metric": "val/score", "mode": "max", "patience": 2},
        )
    )
    data = load_recipe_data(recipe)
    model = build_model(recipe.model, build_processor(recipe, data.train))
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])
    trainer = Trainer(
        model,
        data.train,
        recipe.data,
        recipe.train,
        tmp_path / "run",
        evaluator=lambda m: {"val/score": next(scores)},
    )
    result = trainer.fit()
    assert result.stopped_early and result.step == 4
    assert result.best_metric == 0.7 and result.best_step == 2
    assert (tmp_path / "run" / "best" / "model.safetensors").exists()
    evals = [
        json.loads(x)
        for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if "val/score" in x
    ]
    assert [e["val/score"] for e in evals] == [0.5, 0.7, 0.6, 0.65]


def test_unknown_early_stopping_metric_is_named(tmp_path, shapes_dir, tiny_recipe):
    from omnifuse.models.factory import build_model

    recipe = recipe_from_dict(
        tiny_recipe(shapes_dir, tmp_path, max_steps=2, eval_every=1, early_stopping={"metric": "val/nope"})
    )
    data = load_recipe_data(recipe)
    model = build_model(recipe.model, build_processor(recipe, data.train))
    trainer = Trainer(
        model, data.train, recipe.data, recipe.train, tmp_path / "run", evaluator=lambda m: {"val/score": 1.0}
    )
    with pytest.raises(KeyError, match="val/nope"):
        trainer.fit()


def test_no_decay_for_biases_norms_and_temperature(tiny_model):
    model = tiny_model()
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert "logit_scale" in {names[id(p)] for p in no_decay["params"]}
    assert all(p.ndim >= 2 for p in decay["params"]) and all(
        p.ndim < 2 or "logit" in names[id(p)] for p in no_decay["params"]
    )
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


def test_warmup_then_cosine():
    f = lr_lambda(warmup_steps=10, total_steps=110, schedule="cosine", min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
