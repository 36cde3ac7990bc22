"""A new model kind is one registered class: a toy kind defined here, in tests/, goes through
training, evaluation, `runtime.load` and the server's classify endpoint without any change under
src/ — the proof that the next kind needs only its own folder.

The toy is a bag-of-words text classifier (mean of word embeddings -> linear), predicting the
shape named in a shapes-world caption.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.targets import IGNORE_INDEX, TargetEncoder, Targets, class_names_from
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.heads import TaskSpec
from omnifuse.models.registry import MODEL_KINDS, register_model_kind

KIND = "toy_bag_of_words"


@dataclass
class ToyConfig:
    """The toy kind's recipe config."""

    type: Literal["toy_bag_of_words"] = KIND
    """The model kind."""
    label: str = "shape"
    """The sample label to predict."""
    dim: int = 16
    """Word embedding size."""


@dataclass
class ToyOutput:
    """logits (B, C); loss when the batch has `labels`."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def build(cls, cfg: ToyConfig, processor: Processor, samples=None) -> nn.Module:
    names = class_names_from(samples, cfg.label)
    return cls(processor["text"].vocab_size, cfg.dim, names, cfg.label, processor)


def targets(model) -> Targets:
    return Targets([TargetEncoder(model.label_key, "single_label", model.class_names, "labels")])


@pytest.fixture(scope="module")
def toy_kind():
    """Register the kind for this module's tests only (the registry is process-wide)."""

    @register_model_kind(
        KIND,
        config=ToyConfig,
        build=build,
        modalities=lambda cfg: ["text"],
        capabilities=("classify",),
        evaluator="classification",
        targets=targets,
    )
    class ToyBagOfWords(ArtifactMixin, nn.Module):
        modalities = ["text"]

        def __init__(self, vocab_size, dim, class_names, label_key, processor=None):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, dim)
            self.head = nn.Linear(dim, len(class_names))
            self.vocab_size, self.dim = vocab_size, dim
            self.class_names, self.label_key = list(class_names), label_key
            self.processor = processor or Processor({})

        @property
        def tasks(self) -> dict[str, TaskSpec]:
            return {"": TaskSpec("single_label", self.class_names, self.label_key)}

        def forward(self, batch: dict[str, torch.Tensor]) -> ToyOutput:
            mask = batch["text_mask"].unsqueeze(-1).float()  # (B, T, 1)
            pooled = (self.embed(batch["text"]) * mask).sum(1) / mask.sum(1).clamp_min(1)  # (B, D)
            logits = self.head(pooled)  # (B, C)
            loss = (
                F.cross_entropy(logits, batch["labels"], ignore_index=IGNORE_INDEX)
                if "labels" in batch
                else None
            )
            return ToyOutput(logits, loss)

        @torch.no_grad()
        def predict_proba(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.forward(batch).logits.softmax(-1)

        def to_config(self) -> dict[str, Any]:
            return {
                "model_type": self.model_type,
                "vocab_size": self.vocab_size,
                "dim": self.dim,
                "class_names": self.class_names,
                "label_key": self.label_key,
            }

        @classmethod
        def from_config(cls, config: dict[str, Any], processor: Processor | None = None):
            return cls(
                config["vocab_size"], config["dim"], config["class_names"], config["label_key"], processor
            )

    yield ToyBagOfWords
    MODEL_KINDS.pop(KIND)


@pytest.fixture(scope="module")
def trained(toy_kind, shapes_dir, tmp_path_factory):
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    out = tmp_path_factory.mktemp("toy")
    recipe = recipe_from_dict(
        {
            "name": "toy",
            "output_dir": str(out),
            "data": {
                "train": str(shapes_dir / "train.jsonl"),
                "val": str(shapes_dir / "val.jsonl"),
                "columns": {"text": "captions"},
            },
            "model": {"type": KIND, "label": "shape", "dim": 16},
            "train": {
                "batch_size": 16,
                "max_steps": 60,
                "lr": 0.05,
                "warmup_steps": 0,
                "eval_every": 30,
                "progress": False,
                "weight_decay": 0.0,
            },  # fmt: skip
        }
    )
    result = run_recipe(recipe)
    return out / "toy", result


def test_the_toy_kind_trains_and_validates_through_its_spec(trained):
    run, result = trained
    evals = [r for r in result.metrics if "val/accuracy" in r]
    assert len(evals) == 2 and 0.0 <= evals[-1]["val/accuracy"] <= 1.0
    losses = [r["train/loss"] for r in result.metrics if "train/loss" in r]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]  # logged every 10 steps; it learns
    assert (run / "best" / "config.json").exists()
    assert json.loads((run / "best" / "config.json").read_text())["model_type"] == KIND
    assert (run / "plots" / "per_class.json").exists()  # the classification evaluator's details


def test_the_toy_kind_evaluates_from_the_cli(trained, shapes_dir, tmp_path):
    from omnifuse.cli.main import main

    run, _ = trained
    out = tmp_path / "eval.json"
    assert main(["eval", str(run / "best"), str(shapes_dir / "test.jsonl"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert 0.0 <= report["metrics"]["accuracy"] <= 1.0 and "per_class" in report["details"][""]


def test_the_toy_kind_loads_in_the_runtime_and_serves_classify(trained):
    from fastapi.testclient import TestClient

    from omnifuse import runtime
    from omnifuse.models import load_model
    from omnifuse.serve import ServeConfig, create_app

    run, _ = trained
    model = load_model(run / "best")
    texts = ["a small red circle at the top left", "there is a large blue square"]
    probs = model.predict_proba(model.processor({"text": texts}))  # (2, C)
    predictor = runtime.load(run / "best")
    ranked = predictor.classify({"text": texts})
    assert [r[0].label for r in ranked] == [model.class_names[i] for i in probs.argmax(1)]
    assert [r[0].score for r in ranked] == pytest.approx(probs.max(1).values.tolist(), abs=1e-5)
    with TestClient(create_app(ServeConfig(model_dir="unused"), predictor=predictor)) as client:
        r = client.post("/v1/classify", json={"texts": texts, "top_k": 1})
        assert r.status_code == 200, r.text
        served = [row[0] for row in r.json()["results"]]
        assert [x["label"] for x in served] == [r[0].label for r in ranked]
        assert [x["score"] for x in served] == pytest.approx([r[0].score for r in ranked], abs=1e-5)
        r = client.post("/v1/embed", json={"texts": texts})
        assert r.status_code == 400 and "embed" in r.json()["error"]  # the spec offers classify only
