"""Mean or max pooling over modalities."""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion.base import Fusion, FusionOutput, masked_mean, register_fusion

MODES = ("mean", "max")


@register_fusion
class PoolingFusion(Fusion):
    """Element-wise mean or max of the modalities' pooled vectors (``mode``).

    The parameter-free fusion baselines (sum/mean and max fusion) of e.g. Baltrušaitis et al.
    2018 and TorchMultimodal's ``SumFusion``. ``project`` (default: True when ``hidden_dim`` is
    given) first maps each modality to ``hidden_dim`` with a Linear layer (``hidden_dim``
    defaults to the largest modality size); without projection all sizes must be equal.

    Missing modalities: excluded from the mean (divided by the number present) and from the max.
    """

    name = "pooling"

    def __init__(
        self,
        dims: dict[str, int],
        mode: str = "mean",
        project: bool | None = None,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__(dims, mode=mode, project=project, hidden_dim=hidden_dim)
        project = hidden_dim is not None if project is None else project
        self.mode, self.project = mode, project
        self.hidden_dim = (hidden_dim or max(self.dims.values())) if project else None
        if project:
            self.proj = nn.ModuleDict({m: nn.Linear(d, self.hidden_dim) for m, d in self.dims.items()})
        self.output_dim = self.hidden_dim if project else next(iter(self.dims.values()))

    @classmethod
    def check_dims(
        cls,
        dims: dict[str, int],
        mode: str = "mean",
        project: bool | None = None,
        hidden_dim: int | None = None,
        **kwargs,
    ) -> None:
        super().check_dims(dims)
        if mode not in MODES:
            raise ValueError(f"pooling fusion: unknown mode '{mode}'; choose one of {MODES}")
        if project is False and hidden_dim is not None:
            raise ValueError(
                f"pooling fusion: hidden_dim={hidden_dim} given with project: false; "
                "drop hidden_dim or set project: true"
            )
        project = hidden_dim is not None if project is None else project
        if not project and len(set(dims.values())) > 1:
            raise ValueError(
                f"pooling fusion without projection needs equal feature sizes, got {dict(sorted(dims.items()))}; "
                "set project: true (or hidden_dim) to fuse modalities of different sizes"
            )

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        inputs = self.gather_inputs(features, present)
        x = torch.stack(
            [self.proj[m](v.pooled) if self.project else v.pooled for m, v in inputs.items()], dim=1
        )  # (B, M, D)
        valid = torch.stack([v.present for v in inputs.values()], dim=1)  # (B, M)
        if self.mode == "mean":
            fused = masked_mean(x, valid, dim=1)  # (B, D)
        else:
            fused = x.masked_fill(~valid[:, :, None], torch.finfo(x.dtype).min).amax(dim=1)  # (B, D)
        return FusionOutput(fused=fused)
