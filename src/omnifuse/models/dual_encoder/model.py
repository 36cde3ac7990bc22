"""DualEncoder: N modality towers aligned in one embedding space (CLIP / SigLIP style).

CLIP: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", arXiv:2103.00020. SigLIP: Zhai et al. 2023, arXiv:2303.15343.
"""

from __future__ import annotations

import inspect
import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.registry import encoder_from_config
from omnifuse.layers.projection import build_projection
from omnifuse.losses import LOSSES, build_loss
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.dual_encoder.build import build
from omnifuse.models.dual_encoder.config import DualEncoderConfig
from omnifuse.models.dual_encoder.hf_import import dual_encoder_from_hf
from omnifuse.models.graphs import tower_graphs
from omnifuse.models.outputs import DualEncoderOutput
from omnifuse.models.registry import register_model_kind
from omnifuse.models.zero_shot import templates_of


def _projection_kind(module: nn.Module) -> tuple[str, bool]:
    if isinstance(module, nn.Identity):
        return "none", False
    if isinstance(module, nn.Linear):
        return "linear", module.bias is not None
    if isinstance(module, nn.Sequential) and len(module) == 3:
        return "mlp", module[2].bias is not None
    raise ValueError(f"cannot describe projection {type(module).__name__}; use build_projection")


def _loss_config(loss: nn.Module) -> dict[str, Any]:
    names = {cls: name for name, cls in LOSSES.items()}
    if type(loss) not in names:
        raise ValueError(f"loss {type(loss).__name__} is not registered in omnifuse.losses.LOSSES")
    params = inspect.signature(type(loss).__init__).parameters
    kwargs = {p: getattr(loss, p) for p in params if p != "self" and hasattr(loss, p)}
    return {"name": names[type(loss)], "kwargs": kwargs}


@register_model_kind(
    "dual_encoder",
    config=DualEncoderConfig,
    export_graphs=lambda model: tower_graphs(model, model.towers),  # one ONNX graph per tower
    build=build,
    modalities=DualEncoderConfig.modalities,
    capabilities=("embed", "zero_shot"),
    evaluator="retrieval",
    train_log=lambda model: {"logit_scale": float(model.scale().detach())},
)
class DualEncoder(ArtifactMixin, nn.Module):
    """Towers per modality + projection heads + a learnable temperature (and bias for SigLIP).

    Built from modules: ``DualEncoder(towers={"text": t, "image": i}, embed_dim=64, loss=ClipLoss())``.
    `encode(modality, batch)` gives L2-normalised (B, E) embeddings; `forward(batch)` encodes
    every modality present and, when two or more are, returns the alignment loss summed
    over the aligned pairs: every pair, or with `anchor` set, each modality with the anchor
    only (ImageBind-style binding).
    """

    def __init__(
        self,
        towers: dict[str, Encoder],
        embed_dim: int,
        loss: nn.Module,
        projections: dict[str, nn.Module] | None = None,
        projection: str = "linear",
        init_temperature: float = 0.07,
        init_bias: float = -10.0,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        anchor: str | None = None,
        processor: Processor | None = None,
    ):
        super().__init__()
        if len(towers) < 2:
            raise ValueError(f"a DualEncoder needs at least two towers; got {sorted(towers)}")
        if anchor is not None and anchor not in towers:
            raise ValueError(f"anchor '{anchor}' is not one of the towers {sorted(towers)}")
        self.towers = nn.ModuleDict({m: towers[m] for m in sorted(towers)})
        projections = projections or {
            m: build_projection(projection, t.hidden_size, embed_dim) for m, t in self.towers.items()
        }
        self.projections = nn.ModuleDict({m: projections[m] for m in sorted(projections)})
        self.embed_dim = embed_dim
        self.loss_fn = loss
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / init_temperature)), requires_grad=learn_temperature
        )
        needs_bias = getattr(loss, "needs_bias", False)
        self.logit_bias = nn.Parameter(torch.tensor(float(init_bias))) if needs_bias else None
        self.max_logit_scale = max_logit_scale
        self.anchor = anchor
        self.processor = processor or Processor({})
        self.zero_shot_templates: list[str] | None = None
        """Prompt templates for zero-shot classification, saved in config.json (None: the defaults)."""

    @property
    def modalities(self) -> list[str]:
        return list(self.towers)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()

    def encode(self, modality: str, batch: dict[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        if modality not in self.towers:
            raise KeyError(f"this model has no '{modality}' tower; it has {self.modalities}")
        pooled = self.towers[modality](batch).pooled  # (B, D)
        emb = self.projections[modality](pooled).float()  # (B, E); the loss runs in fp32
        return F.normalize(emb, dim=-1) if normalize else emb

    def pairs(self, present: list[str]) -> list[tuple[str, str]]:
        if self.anchor is None:
            return list(itertools.combinations(sorted(present), 2))
        return [(self.anchor, m) for m in sorted(present) if m != self.anchor and self.anchor in present]

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits (Na, Nb) between normalised embeddings, with the learned scale (and bias)."""
        logits = self.scale() * a @ b.T
        return logits + self.logit_bias if self.logit_bias is not None else logits

    def forward(self, batch: dict[str, torch.Tensor]) -> DualEncoderOutput:
        present = [m for m in self.modalities if m in batch]
        emb = {m: self.encode(m, batch) for m in present}
        scale = self.scale()
        pair_losses = {f"{a}-{b}": self.pair_loss(a, b, emb, batch, scale) for a, b in self.pairs(present)}
        loss = torch.stack(list(pair_losses.values())).sum() if pair_losses else None
        return DualEncoderOutput(emb, scale.detach(), self.logit_bias, loss, pair_losses)

    def pair_loss(
        self,
        a: str,
        b: str,
        emb: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        scale: torch.Tensor,
    ) -> torch.Tensor:
        """The alignment loss of one pair, over the rows that have both modalities.

        Rows a sample lacks (`<modality>_present` False, from a collator with `allow_missing`)
        are placeholders and drop out. Single-process only: other processes would gather a
        different number of rows.
        """
        rows = None
        for m in (a, b):
            flag = batch.get(f"{m}_present")
            if flag is not None:
                rows = flag.bool() if rows is None else rows & flag.bool()
        if rows is None or bool(rows.all()):
            return self.loss_fn(emb[a], emb[b], scale, self.logit_bias)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            raise ValueError(
                "samples missing a modality are supported in single-process training only; "
                "give every sample all modalities (or train the pairs in separate datasets)"
            )
        if int(rows.sum()) < 2:  # nothing to contrast: a zero that keeps every parameter in the graph
            return (emb[a].sum() + emb[b].sum()) * 0.0
        return self.loss_fn(emb[a][rows], emb[b][rows], scale, self.logit_bias)  # (R, E) each

    # ---- artifact -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        projections = {}
        for m, p in self.projections.items():
            kind, bias = _projection_kind(p)
            projections[m] = {"kind": kind, "bias": bias, "in_dim": self.towers[m].hidden_size}
        return {
            "model_type": self.model_type,
            "embed_dim": self.embed_dim,
            "towers": {m: t.to_config() for m, t in self.towers.items()},
            "projections": projections,
            "loss": _loss_config(self.loss_fn),
            "max_logit_scale": self.max_logit_scale,
            "anchor": self.anchor,
            "zero_shot_templates": templates_of(self),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor | None = None) -> DualEncoder:
        """Rebuild the architecture (random weights) from `to_config()` output."""
        towers = {m: encoder_from_config(c) for m, c in config["towers"].items()}
        projections = {
            m: build_projection(p["kind"], p["in_dim"], config["embed_dim"], p["bias"])
            for m, p in config["projections"].items()
        }
        loss = build_loss(config["loss"]["name"], **config["loss"].get("kwargs", {}))
        model = cls(
            towers,
            config["embed_dim"],
            loss,
            projections=projections,
            max_logit_scale=config.get("max_logit_scale", 100.0),
            anchor=config.get("anchor"),
            processor=processor,
        )
        model.zero_shot_templates = config.get("zero_shot_templates")
        return model

    @classmethod
    def from_hf(cls, name_or_path: str) -> DualEncoder:
        """Load an HF `CLIPModel` or `SiglipModel` (directory or hub name)."""
        return dual_encoder_from_hf(cls, name_or_path)
