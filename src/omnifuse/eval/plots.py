"""Training curves and confusion matrices as PNG files.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, never through
``pyplot``: nothing is shown, the process-wide backend is left alone (safe in notebooks and
servers), and each figure is closed (freed) as soon as it is saved.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

#: Largest weight of the exponential moving average drawn over the raw train loss.
SMOOTHING = 0.9


@contextmanager
def _figure(path: Path, **kwargs: Any) -> Iterator[Any]:
    """A fresh Agg figure, saved to ``path`` and closed on exit."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    canvas = FigureCanvasAgg(fig)
    try:
        yield fig
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        canvas.print_png(str(path))
    finally:
        fig.clear()


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _series(rows: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the rows that have a numeric ``step`` and a numeric ``key``."""
    pts = [
        (float(r["step"]), float(r[key]))
        for r in rows
        if _is_number(r.get("step")) and _is_number(r.get(key))
    ]
    pts.sort(key=lambda p: p[0])
    steps = np.array([p[0] for p in pts], dtype=float)
    values = np.array([p[1] for p in pts], dtype=float)
    return steps, values


def smooth(values: Sequence[float], weight: float | None = None) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard draws it); NaNs are skipped.

    Without ``weight`` it adapts to the length: an effective window of about 1/40 of the
    points (a causal average lags a fast-falling loss; keep the window short), at most
    ``SMOOTHING``.
    """
    if weight is None:
        weight = min(SMOOTHING, max(0.0, 1.0 - 40.0 / max(len(values), 1)))
    out = np.empty(len(values), dtype=float)
    avg, norm = 0.0, 0.0
    for i, v in enumerate(values):
        if math.isfinite(v):
            avg = weight * avg + (1 - weight) * v
            norm = weight * norm + (1 - weight)
        out[i] = avg / norm if norm > 0 else float("nan")
    return out


def _numeric_keys(rows: Sequence[dict], prefix: str) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith(prefix) and _is_number(v):
                keys[k] = None
    return sorted(keys)


def plot_curves(metrics_rows: Sequence[dict], out_dir: str | Path) -> list[Path]:
    """Plot the rows of a training ``metrics.jsonl`` into ``out_dir``; return the files written.

    Each row has ``"step"`` and any numeric ``"train/..."`` / ``"val/..."`` keys; rows may mix
    keys (train rows every few steps, val rows at evaluations). Writes, when the data exists:

    - ``loss.png``: ``train/loss`` vs step (raw, faint, plus a smoothed line) and ``val/loss``;
    - ``lr.png``: ``train/lr`` vs step;
    - ``metrics.png``: one subplot per other numeric ``val/...`` key.
    """
    out_dir = Path(out_dir)
    written: list[Path] = []

    train_steps, train_loss = _series(metrics_rows, "train/loss")
    val_steps, val_loss = _series(metrics_rows, "val/loss")
    if len(train_loss) or len(val_loss):
        path = out_dir / "loss.png"
        with _figure(path, figsize=(7, 4), dpi=100) as fig:
            ax = fig.add_subplot()
            if len(train_loss):
                ax.plot(
                    train_steps, train_loss, color="tab:blue", alpha=0.25, linewidth=1, label="train (raw)"
                )
                ax.plot(
                    train_steps, smooth(train_loss), color="tab:blue", linewidth=2, label="train (smoothed)"
                )
            if len(val_loss):
                ax.plot(val_steps, val_loss, color="tab:orange", marker="o", markersize=3, label="val")
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
            ax.legend()
        written.append(path)

    lr_steps, lr = _series(metrics_rows, "train/lr")
    if len(lr):
        path = out_dir / "lr.png"
        with _figure(path, figsize=(7, 3), dpi=100) as fig:
            ax = fig.add_subplot()
            ax.plot(lr_steps, lr, color="tab:green")
            ax.set_xlabel("step")
            ax.set_ylabel("learning rate")
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            ax.grid(alpha=0.3)
        written.append(path)

    val_keys = [k for k in _numeric_keys(metrics_rows, "val/") if k != "val/loss"]
    if val_keys:
        ncols = min(3, len(val_keys))
        nrows = math.ceil(len(val_keys) / ncols)
        path = out_dir / "metrics.png"
        with _figure(path, figsize=(4 * ncols, 3 * nrows), dpi=100) as fig:
            for i, key in enumerate(val_keys):
                ax = fig.add_subplot(nrows, ncols, i + 1)
                steps, values = _series(metrics_rows, key)
                ax.plot(steps, values, marker="o", markersize=3)
                ax.set_title(key, fontsize=9)
                ax.set_xlabel("step")
                ax.grid(alpha=0.3)
        written.append(path)
    return written


def plot_confusion_matrix(
    cm: Any, class_names: Sequence[str], path: str | Path, normalize: bool = False
) -> Path:
    """Draw a (C, C) confusion matrix (rows = true, columns = predicted) to ``path``.

    With ``normalize`` each row is divided by its total (recall per class). Cell values are
    written in the cells when there are at most 25 classes.
    """
    cm = np.asarray(cm, dtype=float)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix has shape {cm.shape} for {n} class names")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    path = Path(path)
    size = max(4.0, min(0.45 * n + 2.5, 20.0))
    with _figure(path, figsize=(size + 1, size), dpi=100) as fig:
        ax = fig.add_subplot()
        im = ax.imshow(cm, cmap="Blues", interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels([str(c) for c in class_names], rotation=45, ha="right", fontsize=8)
        ax.set_yticklabels([str(c) for c in class_names], fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 25:
            threshold = cm.max() / 2 if cm.size else 0
            for i in range(n):
                for j in range(n):
                    text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                    color = "white" if cm[i, j] > threshold else "black"
                    ax.text(j, i, text, ha="center", va="center", color=color, fontsize=10 if n <= 10 else 7)
    return path
