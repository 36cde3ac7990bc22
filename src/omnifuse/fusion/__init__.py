"""Fusion building blocks: per-modality encoder features in, one fused representation out.

``build_fusion("gated", dims={"text": 768, "image": 384}, hidden_dim=256)``; the registry
:data:`FUSIONS` lists the strategies, :func:`check_inputs` validates a choice at model build
time, and :class:`FusionEnsemble` averages or stacks whole models.
"""

from omnifuse.fusion.attention import AttentionFusion
from omnifuse.fusion.base import (
    FUSIONS,
    Fusion,
    FusionOutput,
    ModalityInput,
    build_fusion,
    check_inputs,
    fusion_kwargs,
    gather_inputs,
    masked_mean,
    masked_softmax,
    register_fusion,
)
from omnifuse.fusion.bilinear import BilinearFusion
from omnifuse.fusion.co_attention import CoAttentionFusion
from omnifuse.fusion.concat import ConcatFusion, ConcatMLPFusion
from omnifuse.fusion.cross_attention import CrossAttentionFusion
from omnifuse.fusion.ensemble import EnsembleOutput, FusionEnsemble
from omnifuse.fusion.gated import GatedFusion
from omnifuse.fusion.late import LateFusion
from omnifuse.fusion.memory import MemoryFusion
from omnifuse.fusion.pooling import PoolingFusion
from omnifuse.fusion.relation import RelationFusion
from omnifuse.fusion.single_stream import SingleStreamFusion

__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "BilinearFusion",
    "CoAttentionFusion",
    "ConcatFusion",
    "ConcatMLPFusion",
    "CrossAttentionFusion",
    "EnsembleOutput",
    "Fusion",
    "FusionEnsemble",
    "FusionOutput",
    "GatedFusion",
    "LateFusion",
    "MemoryFusion",
    "ModalityInput",
    "PoolingFusion",
    "RelationFusion",
    "SingleStreamFusion",
    "build_fusion",
    "check_inputs",
    "fusion_kwargs",
    "gather_inputs",
    "masked_mean",
    "masked_softmax",
    "register_fusion",
]
