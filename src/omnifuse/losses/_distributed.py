"""The one place where losses talk to ``torch.distributed``.

Like open_clip's ``gather_features`` with ``gather_with_grad=True, local_loss=False``: every rank
gathers the features of all ranks *with* gradient and computes the loss over the global batch.
The backward of the gather sums, over ranks, the gradients every rank's (identical) global loss
sends to each shard, so a shard's gradient is ``world_size`` times its single-process gradient;
DDP's gradient averaging then divides by ``world_size``, which gives exactly the gradient of one
process seeing the whole global batch.
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor

_LOCAL_ONLY = contextvars.ContextVar("omnifuse_losses_local_only", default=False)


@contextmanager
def no_gather() -> Iterator[None]:
    """Compute losses on this process's features only, e.g. in an evaluation that runs on the
    main process alone while the others wait (a gather there would deadlock)."""
    token = _LOCAL_ONLY.set(True)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def world_size() -> int:
    """Number of processes whose features are gathered; 1 when torch.distributed is not
    initialised or inside `no_gather()`."""
    if _LOCAL_ONLY.get():
        return 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_features(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) from all ranks in rank order, keeping the autograd graph.

    Returns ``x`` unchanged when torch.distributed is not initialised or the world size is 1.
    Every rank must pass the same shape (use ``drop_last=True`` in the data loader).
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        # Deprecated in favour of a private functional-collectives API (torch >= 2.9); it is still the
        # public, backend-agnostic (gloo included) autograd all_gather in every torch we support.
        warnings.simplefilter("ignore", FutureWarning)
        shards = all_gather(x)
    return torch.cat(shards, dim=0)  # (world * B, ...)
