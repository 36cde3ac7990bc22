"""Low-rank bilinear pooling (MFB)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion.base import Fusion, FusionOutput, register_fusion


@register_fusion
class BilinearFusion(Fusion):
    """Multi-modal Factorized Bilinear pooling (MFB), Yu et al. 2017, "Multi-modal Factorized
    Bilinear Pooling with Co-Attention Learning for Visual Question Answering"
    (https://arxiv.org/abs/1708.01471; github.com/yuzcccc/vqa-mfb), low-rank like MUTAN
    (Ben-younes et al. 2017).

    Each modality is projected to ``rank * k``; the projections are multiplied element-wise
    (for N > 2 modalities: the generalised N-way product), dropout, sum-pooled over groups of
    ``k`` to ``rank`` outputs, then power-normalised (sign(z) sqrt|z|) and L2-normalised.
    ``output_dim`` = ``rank``.

    Missing modalities: the missing modality's factor is replaced by a learned vector
    (``missing.<modality>``, initialised to ones so it starts as the identity of the product;
    it learns only from batches with missing samples).
    """

    name = "bilinear"
    min_modalities = 2
    missing_only_params = ("missing.",)

    def __init__(self, dims: dict[str, int], rank: int = 256, k: int = 5, dropout: float = 0.1) -> None:
        super().__init__(dims)
        self.rank, self.k, self.dropout = rank, k, dropout
        self.proj = nn.ModuleDict({m: nn.Linear(d, rank * k) for m, d in self.dims.items()})
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.ones(rank * k)) for m in self.dims})
        self.drop = nn.Dropout(dropout)
        self.output_dim = rank

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        z = None
        for m, x in inputs.items():
            f = torch.where(
                x.present[:, None], self.proj[m](x.pooled), self.missing[m].to(x.pooled.dtype)[None, :]
            )  # (B, R*k)
            z = f if z is None else z * f
        z = self.drop(z).view(z.shape[0], self.rank, self.k).sum(-1)  # (B, R)
        z = torch.sign(z) * torch.sqrt(z.abs() + 1e-8)  # power normalisation, finite gradient at 0
        return FusionOutput(fused=F.normalize(z, dim=-1))  # (B, R)
