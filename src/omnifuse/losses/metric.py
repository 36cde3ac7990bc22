"""Metric-learning losses over paired embeddings: triplet, N-pair and circle.

The pairs define the labels: row i of ``a`` and row i of ``b`` are the only positives of each
other, every other row of the other modality is a negative. All three losses are *cross-modal*
and *symmetric*: a loss is computed with anchors from ``a`` and candidates from ``b``, then with
anchors from ``b`` and candidates from ``a``, and the two are averaged. Similarities are cosine
similarities, ``s_ij = a_i·b_j`` on L2-normalised inputs (no temperature; these losses ignore
``logit_scale`` and ``logit_bias``). Under torch.distributed the embeddings of all ranks are
gathered with gradient and the loss covers the global batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnifuse.losses._distributed import gather_features
from omnifuse.losses.registry import register_loss

MINING = ("hard", "semihard", "all")


def _symmetric(a: Tensor, b: Tensor, one_way: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    a, b = gather_features(a), gather_features(b)  # (B, D) each, B = global batch
    if a.shape[0] < 2:  # no negatives: nothing to learn, but keep the graph
        return (a.sum() + b.sum()) * 0.0
    return (one_way(a, b) + one_way(b, a)) / 2


def _triplet_one_way(anchor: Tensor, cand: Tensor, margin: float, mining: str) -> Tensor:
    sim = anchor @ cand.T  # (B, B)
    pos = sim.diagonal().unsqueeze(1)  # (B, 1): s_ap
    off_diag = ~torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)  # (B, B) negatives
    if mining == "hard":
        hardest = sim.masked_fill(~off_diag, float("-inf")).amax(dim=1, keepdim=True)  # (B, 1)
        losses = F.relu(hardest - pos + margin)  # (B, 1)
    else:
        gap = pos - sim  # (B, B): s_ap - s_an
        keep = off_diag if mining == "all" else off_diag & (gap > 0) & (gap <= margin)
        losses = F.relu(margin - gap)[keep]  # (T,)
    # Mean over the triplets with a positive loss (0 when there are none); the zeros add nothing
    # to the sum, so this equals sum / max(#non-zero, 1) without a host sync.
    return losses.sum() / (losses > 0).sum().clamp(min=1)


def triplet_loss(a: Tensor, b: Tensor, margin: float = 0.2, mining: str = "hard") -> Tensor:
    """Cross-modal triplet margin loss on cosine similarity, symmetric over the two directions.

    For an anchor ``a_i``, the positive is ``b_i`` and a negative any ``b_k`` (k != i):

        l(i, k) = [ s_ik - s_ii + margin ]_+        with s_ik = a_i·b_k

    ``mining`` picks the triplets:

    - ``"hard"``: batch-hard, the most similar negative per anchor, ``max_k s_ik`` (Hermans et al.
      2017, "In Defense of the Triplet Loss for Person Re-Identification", arXiv:1703.07737);
    - ``"semihard"``: every triplet whose negative is less similar than the positive but inside
      the margin, ``0 < s_ii - s_ik <= margin`` (Schroff et al. 2015, FaceNet, arXiv:1503.03832;
      all such triplets, as pytorch-metric-learning's ``TripletMarginMiner``, not one per anchor);
    - ``"all"``: every (i, k) with k != i (Hermans et al.'s batch-all).

    Each direction is the mean over the selected triplets with a non-zero loss (Hermans et al.'s
    "BA≠0" averaging; pytorch-metric-learning's ``AvgNonZeroReducer``), 0 when none is non-zero;
    the result is the average of the directions a→b and b→a.
    """
    if mining not in MINING:
        raise ValueError(f"unknown triplet mining '{mining}'; known: {MINING}")
    return _symmetric(a, b, lambda x, y: _triplet_one_way(x, y, margin, mining))


def npair_loss(a: Tensor, b: Tensor) -> Tensor:
    """Multi-class N-pair loss, symmetric over the two directions.

    For anchor ``a_i`` with positive ``b_i`` and the other N-1 pairs' ``b_k`` as negatives:

        l_i = log(1 + Σ_{k≠i} exp(s_ik - s_ii)) = -log softmax_k(s_ik)[i],   s_ik = a_i·b_k

    averaged over anchors, and over the directions a→b and b→a. Sohn 2016, "Improved Deep Metric
    Learning with Multi-class N-pair Loss Objective", NeurIPS. The paper's L2 penalty on the
    embeddings is left out: the inputs are normalised.
    """

    def one_way(x: Tensor, y: Tensor) -> Tensor:
        sim = x @ y.T  # (B, B)
        return F.cross_entropy(sim, torch.arange(sim.shape[0], device=sim.device))

    return _symmetric(a, b, one_way)


def _circle_one_way(anchor: Tensor, cand: Tensor, m: float, gamma: float) -> Tensor:
    sim = anchor @ cand.T  # (B, B)
    s_p = sim.diagonal()  # (B,)
    alpha_p = F.relu(1 + m - s_p.detach())  # (B,)
    alpha_n = F.relu(sim.detach() + m)  # (B, B)
    logit_p = -gamma * alpha_p * (s_p - (1 - m))  # (B,)
    logit_n = gamma * alpha_n * (sim - m)  # (B, B)
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    logit_n = logit_n.masked_fill(eye, float("-inf"))
    return F.softplus(torch.logsumexp(logit_n, dim=1) + logit_p).mean()


def circle_loss(a: Tensor, b: Tensor, m: float = 0.25, gamma: float = 80.0) -> Tensor:
    """Circle loss (pair-wise labels), symmetric over the two directions.

    For an anchor ``a_i`` with positive similarity ``s_p = s_ii`` and negatives ``s_n = s_ik``
    (k != i), with O_p = 1 + m, O_n = -m, Δ_p = 1 - m, Δ_n = m:

        α_p = [O_p - s_p]_+,   α_n = [s_n - O_n]_+              (treated as constants)
        l_i = log(1 + Σ_k exp(γ α_n (s_n - Δ_n)) · exp(-γ α_p (s_p - Δ_p)))

    averaged over anchors, and over the directions a→b and b→a. Sun et al. 2020, "Circle Loss: A
    Unified Perspective of Pair Similarity Optimization", arXiv:2002.10857. The weights α are
    detached, as in the authors' code and pytorch-metric-learning.
    """
    return _symmetric(a, b, lambda x, y: _circle_one_way(x, y, m, gamma))


@register_loss("triplet")
class TripletLoss(nn.Module):
    """Module form of :func:`triplet_loss`; ignores ``logit_scale`` and ``logit_bias``."""

    needs_bias: bool = False
    uses_scale: bool = False

    def __init__(self, margin: float = 0.2, mining: str = "hard"):
        super().__init__()
        if mining not in MINING:
            raise ValueError(f"unknown triplet mining '{mining}'; known: {MINING}")
        self.margin = margin
        self.mining = mining

    def forward(
        self, a: Tensor, b: Tensor, logit_scale: Tensor | None = None, logit_bias: Tensor | None = None
    ) -> Tensor:
        return triplet_loss(a, b, self.margin, self.mining)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}"


@register_loss("npair")
class NPairLoss(nn.Module):
    """Module form of :func:`npair_loss`; ignores ``logit_scale`` and ``logit_bias``."""

    needs_bias: bool = False
    uses_scale: bool = False

    def forward(
        self, a: Tensor, b: Tensor, logit_scale: Tensor | None = None, logit_bias: Tensor | None = None
    ) -> Tensor:
        return npair_loss(a, b)


@register_loss("circle")
class CircleLoss(nn.Module):
    """Module form of :func:`circle_loss`; ignores ``logit_scale`` and ``logit_bias``."""

    needs_bias: bool = False
    uses_scale: bool = False

    def __init__(self, m: float = 0.25, gamma: float = 80.0):
        super().__init__()
        self.m = m
        self.gamma = gamma

    def forward(
        self, a: Tensor, b: Tensor, logit_scale: Tensor | None = None, logit_bias: Tensor | None = None
    ) -> Tensor:
        return circle_loss(a, b, self.m, self.gamma)

    def extra_repr(self) -> str:
        return f"m={self.m}, gamma={self.gamma}"
