"""Early fusion by concatenation of pooled features, optionally followed by an MLP."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion.base import Fusion, FusionOutput, register_fusion


@register_fusion
class ConcatFusion(Fusion):
    """Early fusion: concatenate the pooled vector of every modality (sorted order).

    The simplest baseline of multimodal fusion (e.g. Baltrušaitis et al. 2018, "Multimodal
    Machine Learning: A Survey and Taxonomy"); as in TorchMultimodal
    ``torchmultimodal/modules/fusions/concat_fusion.py``.

    Missing modalities: a missing modality's slot holds a learned per-modality "missing"
    embedding (``missing.<modality>``, which learns only from batches with missing samples).
    """

    name = "concat"
    missing_only_params = ("missing.",)

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__(dims)
        self.missing = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(d) * 0.02) for m, d in self.dims.items()}
        )
        self.output_dim = sum(self.dims.values())

    def concat(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None
    ) -> torch.Tensor:
        inputs = self.gather_inputs(features, present)
        parts = [
            torch.where(x.present[:, None], x.pooled, self.missing[m].to(x.pooled.dtype)[None, :])  # (B, D_m)
            for m, x in inputs.items()
        ]
        return torch.cat(parts, dim=-1)  # (B, sum D_m)

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        return FusionOutput(fused=self.concat(features, present))


@register_fusion
class ConcatMLPFusion(ConcatFusion):
    """Concatenation of pooled features followed by an MLP (Linear-GELU-Dropout-Linear to ``hidden_dim``).

    The "early fusion + MLP" baseline (e.g. the concat-BERT/ResNet baseline of Kiela et al.
    2020, "The Hateful Memes Challenge"; TorchMultimodal ``late_fusion.py`` with a concat fusion
    and an MLP head). Missing modalities: the learned missing embedding of :class:`ConcatFusion`.
    """

    name = "concat_mlp"

    def __init__(self, dims: dict[str, int], hidden_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__(dims)
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.mlp = nn.Sequential(
            nn.Linear(self.output_dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
        )
        self.output_dim = hidden_dim

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        return FusionOutput(fused=self.mlp(self.concat(features, present)))  # (B, H)
