"""Alignment losses over paired embeddings, each as a function and a module.

Every module is called as ``loss(a, b, logit_scale=None, logit_bias=None)`` with ``a``, ``b``
(B, D) L2-normalised and row i of ``a`` paired with row i of ``b``; ``needs_bias`` and
``uses_scale`` tell a model which learnable scalars to create. Under torch.distributed every
loss is computed over the global batch (features gathered with gradient).
"""

from omnifuse.losses._distributed import no_gather
from omnifuse.losses.contrastive import ClipLoss, SigLipLoss, clip_loss, siglip_loss
from omnifuse.losses.metric import (
    MINING,
    CircleLoss,
    NPairLoss,
    TripletLoss,
    circle_loss,
    npair_loss,
    triplet_loss,
)
from omnifuse.losses.registry import LOSSES, build_loss, loss_kwargs, register_loss

__all__ = [
    "LOSSES",
    "MINING",
    "CircleLoss",
    "ClipLoss",
    "NPairLoss",
    "SigLipLoss",
    "TripletLoss",
    "build_loss",
    "circle_loss",
    "clip_loss",
    "loss_kwargs",
    "no_gather",
    "npair_loss",
    "register_loss",
    "siglip_loss",
    "triplet_loss",
]
