"""Bagging and boosting: train N members of a recipe on resampled data, save them as one ensemble.

- Bagging (Breiman 1996, "Bagging Predictors"): member k trains on a bootstrap resample (n
  draws with replacement) of the training samples, drawn with its own recorded seed; the
  ensemble averages the members' logits.
- Boosting, SAMME (Zhu, Zou, Rosset & Hastie 2009, "Multi-class AdaBoost",
  https://hastie.su.domains/Papers/samme.pdf): every training sample has a weight (uniform at
  first); member k trains on a resample drawn with those weights (boosting by resampling, as
  the training loop has no per-sample loss weights); its weighted error ``err`` on all the
  training samples gives it ``alpha = log((1 - err) / err) + log(K - 1)``, and the weights of
  the samples it got wrong are multiplied by ``exp(alpha)``, then renormalised. The ensemble is
  a weighted hard vote with the alphas. A member no better than chance (``err >= 1 - 1/K``)
  ends the boosting.

Every member is built (preprocessing, class names) from all the training samples, so the
members always agree on classes; the seeds, the resample seeds and the alphas are saved in
the ensemble's config.json (``info``), and rerunning with the same seed reproduces them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnifuse.data.sample import Sample
from omnifuse.data.targets import label_of
from omnifuse.models.registry import get_spec
from omnifuse.train.config import Recipe

logger = logging.getLogger("omnifuse.train")

METHODS = ("bagging", "boosting")


def member_seeds(seed: int, n: int) -> list[int]:
    """N distinct, reproducible seeds derived from ``seed`` (one per member)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]


def bootstrap_indices(n: int, seed: int) -> np.ndarray:
    """``n`` indices drawn uniformly with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=n)


def weighted_indices(weights: np.ndarray, seed: int) -> np.ndarray:
    """``len(weights)`` indices drawn with replacement, index i with probability ``weights[i]``."""
    p = np.asarray(weights, dtype=np.float64)
    return np.random.default_rng(seed).choice(len(p), size=len(p), replace=True, p=p / p.sum())


def samme_step(weights: np.ndarray, miss: np.ndarray, n_classes: int) -> tuple[float, float, np.ndarray]:
    """One SAMME round: (weighted error, alpha, new normalised weights) from this member's misses.

    ``alpha <= 0`` (error at or above chance, ``1 - 1/K``) leaves the weights unchanged.
    """
    if n_classes < 2:
        raise ValueError(f"boosting needs at least 2 classes; got {n_classes}")
    w = np.asarray(weights, dtype=np.float64)
    miss = np.asarray(miss, dtype=bool)
    err = float((w * miss).sum() / w.sum())
    clipped = min(max(err, 1e-10), 1 - 1e-10)
    alpha = math.log((1 - clipped) / clipped) + math.log(n_classes - 1)
    if alpha <= 0:
        return err, alpha, w / w.sum()
    new = w * np.exp(alpha * miss)
    return err, alpha, new / new.sum()


@dataclass
class EnsembleRun:
    """What `train_ensemble` did: the member runs, the ensemble artifact and how it was made."""

    method: str
    artifact: Any
    member_dirs: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def _member_recipe(recipe: Recipe, k: int, seed: int) -> Recipe:
    train = dataclasses.replace(recipe.train, seed=seed)
    return dataclasses.replace(recipe, name=f"{recipe.name}/member-{k}", train=train)


def _misses(model: Any, samples: Sequence[Sample]) -> np.ndarray:
    """True where the member's predicted class is not the sample's label (unreadable: a miss)."""
    from omnifuse.eval.classification import predict_samples

    probs, kept = predict_samples(model, samples, 256)
    pred = np.ones(len(samples), dtype=bool)
    names = np.array(model.class_names)
    truth = np.array([str(label_of(samples[i], model.label_key)) for i in kept])
    pred[kept] = names[probs[""].argmax(1)] != truth
    return pred


def train_ensemble(recipe: Recipe, method: str, members: int, seed: int | None = None) -> EnsembleRun:
    """Train ``members`` members of ``recipe`` by bagging or boosting; save ``run_dir/best`` as one ensemble.

    Members go to ``run_dir/member-<k>/`` (each a normal run); the ensemble artifact holds
    them all. Only single-label classifiers (kinds that can ``classify``) are supported.
    """
    from omnifuse.models.ensemble import EnsembleClassifier
    from omnifuse.models.factory import load_model
    from omnifuse.train.run import load_recipe_data, run_recipe

    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; choose one of {list(METHODS)}")
    if members < 2:
        raise ValueError(f"an ensemble needs at least 2 members; got {members}")
    get_spec(recipe.model.type).require("classify", f"--ensemble {method}")
    seed = recipe.train.seed if seed is None else seed
    seeds = member_seeds(seed, 2 * members)
    train_seeds, resample_seeds = seeds[:members], seeds[members:]
    train = load_recipe_data(recipe).train
    n = len(train)
    weights = np.full(n, 1.0 / n)
    models, dirs, alphas, errors = [], [], [], []
    for k in range(members):
        if method == "bagging":
            idx = bootstrap_indices(n, resample_seeds[k])
        else:
            idx = weighted_indices(weights, resample_seeds[k])
        member = _member_recipe(recipe, k, train_seeds[k])
        logger.info(
            "ensemble %s: member %d/%d (seed %d, resample seed %d)",
            method,
            k + 1,
            members,
            train_seeds[k],
            resample_seeds[k],
        )
        run_recipe(member, resample=lambda samples, idx=idx: [samples[int(i)] for i in idx])
        model = load_model(member.run_dir / "best")
        if model.task != "single_label" and method == "boosting":
            raise ValueError(f"boosting (SAMME) needs a single-label task; the member's task is {model.task}")
        if method == "boosting":
            err, alpha, new = samme_step(weights, _misses(model, train), len(model.class_names))
            errors.append(err)
            if alpha <= 0:
                logger.warning("ensemble boosting: member %d has error %.3f >= chance; stopping", k, err)
                if not models:
                    raise ValueError(f"boosting: the first member is no better than chance (error {err:.3f})")
                break
            alphas.append(alpha)
            weights = new
        models.append(model)
        dirs.append(str(member.run_dir))
    info = {
        "method": method,
        "seed": seed,
        "member_seeds": train_seeds[: len(models)],
        "resample_seeds": resample_seeds[: len(models)],
        "members": dirs,
    }
    if method == "boosting":
        info.update(alphas=alphas, errors=errors)
    ensemble = EnsembleClassifier(
        models,
        mode="hard_vote" if method == "boosting" else "mean",
        weights=alphas if method == "boosting" else None,
        info=info,
    )
    path = ensemble.save_pretrained(recipe.run_dir / "best")
    (recipe.run_dir / "ensemble.json").write_text(json.dumps(info, indent=2))
    return EnsembleRun(method, path, dirs, info)
