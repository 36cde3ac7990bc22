"""Decision-level (late) fusion: one classifier per modality, predictions combined."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion.base import Fusion, FusionOutput, masked_softmax, register_fusion

COMBINES = ("mean", "learned", "stack")
HEADS = ("linear", "mlp")


@register_fusion
class LateFusion(Fusion):
    """Late fusion: per-modality heads to ``num_outputs`` logits, then one combination.

    ``combine``: ``mean`` (average of the present modalities' logits), ``learned`` (weights
    softmax(w) over the present modalities, w learned) or ``stack`` (stacked generalisation,
    Wolpert 1992: a linear meta-classifier over the concatenated per-modality logits plus
    presence flags). See Baltrušaitis et al. 2018 (survey, "late fusion") and TorchMultimodal
    ``torchmultimodal/models/late_fusion.py``. ``head``: ``linear`` or ``mlp`` (Linear-GELU-
    Dropout-Linear with ``hidden_dim``, default the modality's size).

    Missing modalities: excluded from ``mean``/``learned`` (weights renormalised over the
    present ones); for ``stack`` their logits are zeroed and the presence flag is 0, so the
    meta-classifier learns a bias per missing pattern.

    ``fused`` and ``logits`` are the combined logits (B, num_outputs); ``aux`` holds
    ``logits.<modality>`` (B, C) for every modality given in ``features`` (zero rows for samples
    lacking it) and ``weights`` (B, M) for mean/learned.
    """

    name = "late"
    decision_level = True

    def __init__(
        self,
        dims: dict[str, int],
        num_outputs: int,
        combine: str = "mean",
        head: str = "linear",
        hidden_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if combine not in COMBINES:
            raise ValueError(f"late fusion: unknown combine '{combine}'; choose one of {COMBINES}")
        if head not in HEADS:
            raise ValueError(f"late fusion: unknown head '{head}'; choose one of {HEADS}")
        if not isinstance(num_outputs, int) or num_outputs <= 0:
            raise ValueError(f"late fusion: num_outputs must be a positive int, got {num_outputs!r}")
        self.num_outputs, self.combine, self.head = num_outputs, combine, head
        self.hidden_dim, self.dropout = hidden_dim, dropout
        self.heads = nn.ModuleDict({m: self._head(d) for m, d in self.dims.items()})
        n = len(self.dims)
        if combine == "learned":
            self.weight_logits = nn.Parameter(torch.zeros(n))
        if combine == "stack":
            self.meta = nn.Linear(n * num_outputs + n, num_outputs)
        self.output_dim = num_outputs

    def _head(self, d: int) -> nn.Module:
        if self.head == "linear":
            return nn.Linear(d, self.num_outputs)
        h = self.hidden_dim or d
        return nn.Sequential(
            nn.Linear(d, h), nn.GELU(), nn.Dropout(self.dropout), nn.Linear(h, self.num_outputs)
        )

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        logits = torch.stack([self.heads[m](x.pooled) for m, x in inputs.items()], dim=1)  # (B, M, C)
        valid = torch.stack([x.present for x in inputs.values()], dim=1)  # (B, M)
        logits = logits.masked_fill(~valid[:, :, None], 0.0)
        aux = {f"logits.{m}": logits[:, i] for i, m in enumerate(inputs) if m in features}
        if self.combine == "stack":
            flags = valid.to(logits.dtype)  # (B, M)
            out = self.meta(torch.cat([logits.flatten(1), flags], dim=-1))  # (B, C)
        else:
            scores = (
                self.weight_logits[None, :].expand_as(valid)
                if self.combine == "learned"
                else torch.zeros_like(valid, dtype=logits.dtype)
            )
            w = masked_softmax(scores, valid, dim=1)  # (B, M)
            out = (w[:, :, None] * logits).sum(1)  # (B, C)
            aux["weights"] = w
        return FusionOutput(fused=out, logits=out, aux=aux)
