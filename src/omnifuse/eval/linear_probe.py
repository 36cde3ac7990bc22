"""Linear probe: logistic regression on frozen embeddings.

The standard test of a representation (CLIP, https://arxiv.org/abs/2103.00020, section 3.2):
fit a multinomial logistic regression on train-split embeddings, report accuracy on the test
split. scikit-learn does the fitting; this module checks inputs and names the metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _features(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _labels(y: Any, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (samples,), got shape {arr.shape}")
    return arr


def linear_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    C: float = 1.0,
    max_iter: int = 1000,
    standardize: bool = True,
) -> dict[str, float]:
    """Fit logistic regression on (train_x, train_y), score it on (test_x, test_y).

    x: (N, D) embeddings (tensor or array); y: (N,) labels of any hashable kind (indices or
    names). C is the inverse L2 regularisation strength; with ``standardize`` the features
    are scaled to zero mean and unit variance using train statistics (helps lbfgs converge).
    The multinomial (softmax) loss is used for more than two classes.

    Returns ``{"linear_probe/accuracy", "linear_probe/macro_f1"}`` as floats; macro-F1
    averages over the classes present in test labels or predictions.

    Raises ValueError when x and y lengths differ, feature widths differ, an input is empty,
    or the train labels hold fewer than two classes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, xte = _features(train_x, "train_x"), _features(test_x, "test_x")
    ytr, yte = _labels(train_y, "train_y"), _labels(test_y, "test_y")
    if len(xtr) != len(ytr):
        raise ValueError(f"train_x has {len(xtr)} rows but train_y has {len(ytr)} labels")
    if len(xte) != len(yte):
        raise ValueError(f"test_x has {len(xte)} rows but test_y has {len(yte)} labels")
    if len(xtr) == 0 or len(xte) == 0:
        raise ValueError("linear probe needs at least one train and one test sample")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train_x has {xtr.shape[1]} features but test_x has {xte.shape[1]}")
    classes = np.unique(ytr)
    if len(classes) < 2:
        raise ValueError(f"linear probe needs at least 2 classes in train_y, got {classes.tolist()}")
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")

    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=0)
    model = make_pipeline(StandardScaler(), clf) if standardize else clf
    model.fit(xtr, ytr)
    pred = model.predict(xte)
    return {
        "linear_probe/accuracy": float(np.mean(pred == yte)),
        "linear_probe/macro_f1": float(f1_score(yte, pred, average="macro", zero_division=0)),
    }
