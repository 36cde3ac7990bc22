"""Ensembles of whole models: average or stack their logits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MODES = ("mean", "stack", "hard_vote")


@dataclass
class EnsembleOutput:
    """logits: (B, C) combined; member_logits: (B, K, C), one row per member."""

    logits: torch.Tensor
    member_logits: torch.Tensor


class FusionEnsemble(nn.Module):
    """Ensemble of K classifiers over the same batch.

    Contract: every member is an ``nn.Module`` called as ``member(batch)`` (``batch`` a dict of
    tensors, e.g. the batch a ``FusionClassifier`` takes) returning an object with a ``.logits``
    (B, num_outputs) attribute. ``forward(batch) -> EnsembleOutput(logits, member_logits)``.

    ``mode="mean"``: (weighted) average of the member logits, ``weights`` fixed, normalised to
    sum 1 (default uniform) — model averaging. ``mode="stack"``: stacked generalisation
    (Wolpert 1992, "Stacked Generalization"): a linear meta-classifier over the concatenated
    member logits (K * C -> C); train it with ``freeze_members=True`` on held-out data so it
    learns how far to trust each member. ``mode="hard_vote"``: weighted hard vote, the decision rule
    of boosting (SAMME: ``argmax_c sum_k alpha_k [member k predicts c]``, ``weights`` = the
    alphas); its logits are the log of each class's share of the vote.
    """

    def __init__(
        self,
        members: list[nn.Module],
        mode: str = "mean",
        num_outputs: int | None = None,
        weights: list[float] | None = None,
        freeze_members: bool = False,
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("FusionEnsemble needs at least one member model")
        if mode not in MODES:
            raise ValueError(f"FusionEnsemble: unknown mode '{mode}'; choose one of {MODES}")
        if mode == "stack" and (not isinstance(num_outputs, int) or num_outputs <= 0):
            raise ValueError("FusionEnsemble(mode='stack') needs num_outputs, the number of classes")
        if weights is not None:
            if mode == "stack":
                raise ValueError(
                    "FusionEnsemble: weights apply to mode='mean' or 'hard_vote'; drop them for 'stack'"
                )
            if len(weights) != len(members):
                raise ValueError(
                    f"FusionEnsemble: {len(weights)} weights for {len(members)} members; give one each"
                )
            if any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(
                    f"FusionEnsemble: weights must be non-negative with a positive sum, got {weights}"
                )
        self.members = nn.ModuleList(members)
        self.mode, self.num_outputs, self.freeze_members = mode, num_outputs, freeze_members
        self.weights = list(weights) if weights is not None else None
        w = torch.tensor(weights if weights is not None else [1.0] * len(members), dtype=torch.float32)
        self.register_buffer("member_weights", w / w.sum(), persistent=False)
        if mode == "stack":
            self.meta = nn.Linear(len(members) * num_outputs, num_outputs)
        if freeze_members:
            for p in self.members.parameters():
                p.requires_grad_(False)

    def forward(self, batch: dict[str, torch.Tensor]) -> EnsembleOutput:
        outs = []
        for i, member in enumerate(self.members):
            logits = getattr(member(batch), "logits", None)
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                raise ValueError(
                    f"FusionEnsemble member {i} ({type(member).__name__}) must return an object with "
                    f".logits of shape (B, C); got {type(logits).__name__}"
                )
            if self.num_outputs is not None and logits.shape[-1] != self.num_outputs:
                raise ValueError(
                    f"FusionEnsemble member {i} gives {logits.shape[-1]} classes, expected num_outputs={self.num_outputs}"
                )
            outs.append(logits)
        if len({o.shape[-1] for o in outs}) > 1:
            raise ValueError(
                f"FusionEnsemble members disagree on the number of classes: {[o.shape[-1] for o in outs]}"
            )
        stacked = torch.stack(outs, dim=1)  # (B, K, C)
        if self.mode == "stack":
            logits = self.meta(stacked.flatten(1))  # (B, C)
        elif self.mode == "hard_vote":
            votes = nn.functional.one_hot(stacked.argmax(-1), stacked.shape[-1]).to(
                stacked.dtype
            )  # (B, K, C)
            share = (self.member_weights.to(stacked.dtype)[None, :, None] * votes).sum(1)  # (B, C), sums to 1
            logits = share.clamp_min(1e-6).log()  # (B, C)
        else:
            logits = (self.member_weights.to(stacked.dtype)[None, :, None] * stacked).sum(1)  # (B, C)
        return EnsembleOutput(logits=logits, member_logits=stacked)

    def to_config(self) -> dict[str, Any]:
        """The ensemble's own settings (members are saved by their own artifacts)."""
        return {
            "mode": self.mode,
            "num_outputs": self.num_outputs,
            "weights": self.weights,
            "freeze_members": self.freeze_members,
            "n_members": len(self.members),
        }
