"""Evaluating fusion classifiers and multi-task models on labelled samples.

Single label: accuracy (a label never seen in training counts as wrong), macro-F1, accuracy
per group (e.g. per question type with `group_key: qtype`), ROC-AUC for binary tasks, and a
per-class report with the confusion matrix. Multi-label: micro/macro F1 at 0.5. Regression:
MAE, RMSE and R^2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse.data.sample import Sample
from omnifuse.data.targets import label_of
from omnifuse.eval.base import Evaluator
from omnifuse.eval.evaluator import eval_batches
from omnifuse.eval.registry import register_evaluator


@dataclass
class TaskView:
    """What evaluation needs to know about one task of a model."""

    name: str
    kind: str
    class_names: list[str] | None
    label_key: str


def task_views(model: torch.nn.Module) -> list[TaskView]:
    """A classifier's tasks (`model.tasks`: name -> TaskSpec; '' for a single-task model)."""
    return [TaskView(t, s.kind, s.class_names, s.label_key) for t, s in model.tasks.items()]


@torch.no_grad()
def predict_samples(
    model: torch.nn.Module, samples: Sequence[Sample], batch_size: int = 256
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Probabilities per task (name '' for a single-task model) and the readable samples' indices."""
    chunks: dict[str, list[np.ndarray]] = {}
    kept: list[int] = []
    for batch, index in eval_batches(model, samples, model.modalities, batch_size, allow_missing=True):
        kept.extend(index)
        probs = model.predict_proba(batch)
        for task, p in probs.items() if isinstance(probs, dict) else [("", probs)]:
            chunks.setdefault(task, []).append(p.float().cpu().numpy())
    return {t: np.concatenate(c) for t, c in chunks.items()}, kept


def single_label_metrics(
    probs: np.ndarray, truth: list[str], class_names: list[str], groups: list[Any] | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics, and details (per-class report, confusion matrix) for the report."""
    from sklearn.metrics import roc_auc_score

    from omnifuse.eval.metrics import classification_report

    pred = probs.argmax(1)
    pred_names = np.array(class_names)[pred]
    correct = pred_names == np.array(truth)
    metrics = {"accuracy": float(correct.mean()), "n": float(len(truth))}
    index = {c: i for i, c in enumerate(class_names)}
    known = np.array([t in index for t in truth])
    details: dict[str, Any] = {}
    if known.any():
        targets = np.array([index[t] for t in np.array(truth)[known]])
        details = classification_report(pred[known], targets, class_names)
        metrics["macro_f1"] = details["macro_f1"]
        if len(class_names) == 2 and len(set(targets.tolist())) == 2:
            metrics["roc_auc"] = float(roc_auc_score(targets, probs[known][:, 1]))
    if groups is not None:
        for g in sorted({str(g) for g in groups}):
            sel = np.array([str(x) == g for x in groups])
            metrics[f"accuracy/{g}"] = float(correct[sel].mean())
    return metrics, details


def multi_label_metrics(probs: np.ndarray, truth: list[Any], class_names: list[str]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    index = {c: i for i, c in enumerate(class_names)}
    y = np.zeros_like(probs, dtype=np.int64)
    for row, labels in enumerate(truth):
        for v in labels if isinstance(labels, list) else [labels]:
            if str(v) in index:
                y[row, index[str(v)]] = 1
    pred = (probs >= 0.5).astype(np.int64)
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "exact_match": float((y == pred).all(1).mean()),
    }


def regression_metrics(pred: np.ndarray, truth: list[Any]) -> dict[str, float]:
    y = np.array([float(t) for t in truth])
    p = pred.reshape(-1)
    err = p - y
    var = float(((y - y.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": float(1 - (err**2).sum() / var) if var > 0 else 0.0,
    }


@register_evaluator("classification")
@dataclass
class ClassifierEvaluator(Evaluator):
    """Metrics of a FusionClassifier / MultiTaskModel on fixed samples (the trainer's evaluator)."""

    samples: Sequence[Sample]
    batch_size: int = 256
    max_items: int | None = None
    group_key: str | None = None
    """Sample metadata/label key to report accuracy per group of (e.g. `qtype`)."""
    prefix: str = "val/"

    @classmethod
    def from_config(cls, config, samples, model, prefix: str = "val/") -> ClassifierEvaluator:
        return cls(
            samples,
            batch_size=config.batch_size,
            max_items=config.max_items,
            group_key=config.group_key,
            prefix=prefix,
        )

    def evaluate(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
        samples = list(self.samples[: self.max_items] if self.max_items else self.samples)
        probs, kept = predict_samples(model, samples, self.batch_size)
        metrics: dict[str, float] = {}
        details: dict[str, dict[str, Any]] = {}
        for task in task_views(model):
            rows = [(i, label_of(samples[k], task.label_key)) for i, k in enumerate(kept)]
            rows = [(i, v) for i, v in rows if v is not None]
            if not rows:
                continue
            idx = [i for i, _ in rows]
            truth = [v for _, v in rows]
            p = probs[task.name][idx]
            prefix = f"{task.name}/" if task.name else ""
            if task.kind == "single_label":
                groups = None
                if self.group_key:
                    groups = [label_of(samples[kept[i]], self.group_key) for i in idx]
                m, details[task.name] = single_label_metrics(
                    p, [str(t) for t in truth], task.class_names, groups
                )
            elif task.kind == "multi_label":
                m = multi_label_metrics(p, truth, task.class_names)
            else:
                m = regression_metrics(p, truth)
            metrics.update({prefix + k: v for k, v in m.items()})
        return metrics, details

    def write_details(self, model: torch.nn.Module, out_dir: Path) -> list[Path]:
        """Per-class report (JSON) and confusion-matrix plot of each single-label task."""
        from omnifuse.eval.plots import plot_confusion_matrix

        details = self.evaluate(model)[1]
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for task, report in details.items():
            if not report:
                continue
            stem = f"{task}_" if task else ""
            path = out_dir / f"{stem}per_class.json"
            path.write_text(json.dumps(report["per_class"], indent=2))
            names = list(report["per_class"])
            matrix = out_dir / f"{stem}confusion_matrix.png"
            plot_confusion_matrix(report["confusion_matrix"], names, matrix)
            written += [path, matrix]
        return written

    def score(self, metrics: dict[str, float]) -> float:
        """Model selection without a configured metric: mean task accuracy (or micro-F1, or -RMSE)."""
        values = []
        for key, value in metrics.items():
            name = key[len(self.prefix) :].split("/")  # "accuracy" or "<task>/accuracy"
            if (
                name[-1] in ("accuracy", "micro_f1")
                and len(name) <= 2
                and not (len(name) == 2 and name[0] == "accuracy")
            ):
                values.append(value)
            elif name[-1] == "rmse" and len(name) <= 2:
                values.append(-value)
        return sum(values) / len(values) if values else 0.0
