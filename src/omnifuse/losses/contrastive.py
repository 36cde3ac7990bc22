"""Contrastive image-text style losses over paired embeddings: CLIP (softmax) and SigLIP (sigmoid).

Both take ``a`` and ``b`` (B, D) L2-normalised, row i of ``a`` paired with row i of ``b``, and the
*exponentiated* logit scale ``t`` (e.g. 1 / 0.07). Under torch.distributed both gather the
embeddings of all ranks with gradient and compute the loss over the global batch (see
``omnifuse.losses._distributed``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnifuse.losses._distributed import gather_features
from omnifuse.losses.registry import register_loss


def _require(value: Tensor | float | None, what: str, loss: str) -> Tensor | float:
    if value is None:
        raise ValueError(f"{loss} needs {what}; got None")
    return value


def clip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float) -> Tensor:
    """Symmetric InfoNCE of CLIP over the (global) batch.

    With logits ``L_ij = t · a_i·b_j`` (t = ``logit_scale``):

        loss = 1/2 · [ -1/B Σ_i log softmax_j(L_ij)[i]  -  1/B Σ_j log softmax_i(L_ij)[j] ]

    i.e. the mean of the cross-entropies a→b (rows) and b→a (columns) with the diagonal as the
    target. Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
    Supervision", arXiv:2103.00020.
    """
    a, b = gather_features(a), gather_features(b)  # (B, D) each, B = global batch
    logits = logit_scale * a @ b.T  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def siglip_loss(a: Tensor, b: Tensor, logit_scale: Tensor | float, logit_bias: Tensor | float) -> Tensor:
    """Pairwise sigmoid loss of SigLIP over the (global) batch.

    With ``z_ij = 1`` if i == j else ``-1``, t = ``logit_scale`` and b = ``logit_bias``:

        loss = -1/B Σ_i Σ_j log σ( z_ij · (t · a_i·b_j + b) )

    Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training", arXiv:2303.15343
    (Algorithm 1). Computed over the gathered global batch rather than with the paper's
    ring exchange of chunks; the value and gradient are the same.
    """
    a, b = gather_features(a), gather_features(b)  # (B, D) each, B = global batch
    logits = logit_scale * a @ b.T + logit_bias  # (B, B)
    z = 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype) - 1  # (B, B)
    return -F.logsigmoid(z * logits).sum() / logits.shape[0]


@register_loss("clip")
class ClipLoss(nn.Module):
    """Module form of :func:`clip_loss`; needs ``logit_scale``, ignores ``logit_bias``."""

    needs_bias: bool = False
    uses_scale: bool = True

    def forward(
        self, a: Tensor, b: Tensor, logit_scale: Tensor | None = None, logit_bias: Tensor | None = None
    ) -> Tensor:
        return clip_loss(a, b, _require(logit_scale, "logit_scale", "ClipLoss"))


@register_loss("siglip")
class SigLipLoss(nn.Module):
    """Module form of :func:`siglip_loss`; needs ``logit_scale`` and ``logit_bias``.

    ``needs_bias = True`` tells the model to create the learnable bias (SigLIP initialises it to
    -10 and the scale to log 10).
    """

    needs_bias: bool = True
    uses_scale: bool = True

    def forward(
        self, a: Tensor, b: Tensor, logit_scale: Tensor | None = None, logit_bias: Tensor | None = None
    ) -> Tensor:
        return siglip_loss(
            a,
            b,
            _require(logit_scale, "logit_scale", "SigLipLoss"),
            _require(logit_bias, "logit_bias (create it when the loss has needs_bias=True)", "SigLipLoss"),
        )
