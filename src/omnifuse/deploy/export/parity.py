"""Parity of an exported graph with the PyTorch model: max abs difference and cosine.

The check follows timm's `onnx_validate.py`: run both on the same processed inputs and
compare. fp32 graphs must agree within `atol`; int8 graphs (whose weights are rounded on
purpose) are judged by the mean cosine of their outputs to the fp32 model's instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from omnifuse.runtime.contract import session_inputs

__all__ = ["ExportParityError", "ParityResult", "compare", "cosine_rows", "session_inputs"]


class ExportParityError(ValueError):
    """The exported graph does not reproduce the PyTorch model; nothing was written."""


@dataclass
class ParityResult:
    graph: str
    variant: str
    max_abs_diff: float
    mean_cosine: float
    min_cosine: float
    atol: float | None
    min_mean_cosine: float
    batch_shapes: list[dict[str, list[int]]]
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) cosine similarity of matching rows of two (N, D) arrays."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(den, 1e-12)


def compare(
    graph: str,
    variant: str,
    reference: list[np.ndarray],
    exported: list[np.ndarray],
    batches: list[dict[str, torch.Tensor]],
    atol: float | None,
    min_mean_cosine: float,
) -> ParityResult:
    diffs, cosines = [], []
    for ref, got in zip(reference, exported):
        if ref.shape != got.shape:
            raise ExportParityError(f"{graph} ({variant}): output shape {got.shape} != PyTorch {ref.shape}")
        diffs.append(float(np.abs(ref - got).max()))
        cosines.append(cosine_rows(ref, got))
    cos = np.concatenate(cosines)
    max_diff, mean_cos = max(diffs), float(cos.mean())
    passed = bool(
        np.isfinite(max_diff) and mean_cos >= min_mean_cosine and (atol is None or max_diff <= atol)
    )
    shapes = [{k: list(v.shape) for k, v in b.items()} for b in batches]
    return ParityResult(
        graph, variant, max_diff, mean_cos, float(cos.min()), atol, min_mean_cosine, shapes, passed
    )
