"""The fusion contract: per-modality encoder features in, one fused representation out.

Every strategy is an :class:`Fusion` subclass registered in :data:`FUSIONS` under its ``name``
and built from a config by :func:`build_fusion`. ``forward(features, present)`` takes

- ``features``: modality -> :class:`~omnifuse.encoders.base.EncoderOutput` for the modalities
  whose encoder ran on this batch. A modality in ``dims`` but absent from ``features`` is missing
  for every sample.
- ``present``: optional modality -> (B,) bool; False means the sample lacks that modality and
  its features are placeholders that must not influence the output.

Missing data is handled by :func:`gather_inputs`, which gives every strategy one
:class:`ModalityInput` per modality of ``dims`` (sorted): values of missing samples and padding
tokens are zeroed (so even NaN garbage cannot leak), absent modalities get a zero placeholder
(one masked token), and ``present`` / ``mask`` are bool tensors. Strategies then exclude missing
modalities by masking arithmetic (masked softmax/mean, ``torch.where`` with a learned embedding)
rather than Python branches on tensor values, so they export to ONNX with a dynamic batch.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput


@dataclass
class FusionOutput:
    """What every fusion module returns.

    fused: (B, output_dim) fused representation (decision-level fusion: the combined logits).
    logits: (B, num_outputs) when the module decides itself (late / decision-level fusion), else None.
    aux: extra tensors for inspection, e.g. per-modality logits, gate values, attention weights.
    tokens: modality -> (B, T_m, W) fused per-token states, aligned with that modality's input
        tokens (same T_m and mask), for the modalities in the module's ``token_outputs``
        (token-level strategies); what token labelling reads.
    """

    fused: torch.Tensor
    logits: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    tokens: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class ModalityInput:
    """One modality's features after missing-data handling (see :func:`gather_inputs`).

    pooled: (B, D) with rows of missing samples zeroed.
    tokens: (B, T, D) with padding tokens and missing samples zeroed (T=1 placeholder when absent).
    mask: (B, T) bool, True for real tokens of present samples.
    present: (B,) bool, True where the sample has this modality.
    """

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    present: torch.Tensor


class Fusion(nn.Module):
    """Base class of fusion strategies.

    Subclasses set ``name`` (registry key), ``needs_tokens`` (needs token sequences + mask, not
    just pooled vectors), ``decision_level`` (produces logits itself; takes ``num_outputs``),
    ``min_modalities`` / ``max_modalities``, and ``missing_only_params``: name prefixes of
    parameters that learn only from batches where some modality is missing (e.g. learned
    missing-embeddings). Every constructor argument is stored as an attribute of the same name,
    so :meth:`to_config` can list them.
    """

    name: ClassVar[str]
    needs_tokens: ClassVar[bool] = False
    decision_level: ClassVar[bool] = False
    min_modalities: ClassVar[int] = 1
    max_modalities: ClassVar[int | None] = None
    missing_only_params: ClassVar[tuple[str, ...]] = ()
    output_dim: int
    token_outputs: dict[str, int]
    """Modality -> width of the fused per-token states in ``FusionOutput.tokens`` (empty when the
    strategy fuses into one vector only)."""

    def __init__(self, dims: dict[str, int], **check_kwargs: Any) -> None:
        super().__init__()
        self.token_outputs = {}
        self.check_dims(dims, **check_kwargs)
        self.dims = {m: int(dims[m]) for m in sorted(dims)}
        self.modalities = list(self.dims)

    @classmethod
    def check_dims(cls, dims: dict[str, int], **kwargs: Any) -> None:
        """Raise ValueError if this strategy cannot fuse modalities of these sizes."""
        if not isinstance(dims, dict) or not dims:
            raise ValueError(
                f"fusion '{cls.name}' needs dims, a non-empty dict modality -> feature size; got {dims!r}"
            )
        bad = {m: d for m, d in dims.items() if not isinstance(d, int) or isinstance(d, bool) or d <= 0}
        if bad:
            raise ValueError(f"fusion '{cls.name}': feature sizes must be positive ints; got {bad}")
        n = len(dims)
        if n < cls.min_modalities or (cls.max_modalities is not None and n > cls.max_modalities):
            want = (
                f"exactly {cls.min_modalities}"
                if cls.max_modalities == cls.min_modalities
                else f"at least {cls.min_modalities}"
                if cls.max_modalities is None
                else f"{cls.min_modalities} to {cls.max_modalities}"
            )
            raise ValueError(
                f"fusion '{cls.name}' fuses {want} modalities, got {n} ({sorted(dims)}); "
                f"choose another strategy (e.g. 'concat' or 'attention') or change the model's modalities"
            )

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., **constructor kwargs}``; ``build_fusion(**cfg)`` rebuilds the module."""
        cfg: dict[str, Any] = {"name": self.name}
        for p in fusion_kwargs(type(self), include_dims=True):
            value = getattr(self, p)
            cfg[p] = dict(value) if isinstance(value, dict) else value
        return cfg

    def gather_inputs(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> dict[str, ModalityInput]:
        """Validate ``features``/``present`` and return a :class:`ModalityInput` per modality of ``dims``."""
        return gather_inputs(self.name, self.dims, features, present)


def gather_inputs(
    name: str,
    dims: dict[str, int],
    features: dict[str, EncoderOutput],
    present: dict[str, torch.Tensor] | None = None,
) -> dict[str, ModalityInput]:
    """Missing-data handling shared by all strategies; see the module docstring."""
    if not features:
        raise ValueError(f"fusion '{name}' got no features; at least one of {sorted(dims)} must be given")
    unknown = sorted(set(features) - set(dims))
    if unknown:
        raise ValueError(
            f"fusion '{name}' got features for unknown modalities {unknown}; it fuses {sorted(dims)}"
        )
    present = present or {}
    unknown = sorted(set(present) - set(dims))
    if unknown:
        raise ValueError(
            f"fusion '{name}' got present flags for unknown modalities {unknown}; it fuses {sorted(dims)}"
        )
    ref = features[sorted(features)[0]].pooled  # (B, D)
    out: dict[str, ModalityInput] = {}
    for m in sorted(dims):
        d = dims[m]
        if m not in features:
            zeros = ref.new_zeros(ref.shape[0], d)  # (B, D)
            miss = torch.zeros_like(zeros[:, 0], dtype=torch.bool)  # (B,) all False
            out[m] = ModalityInput(zeros, zeros[:, None, :], miss[:, None], miss)
            continue
        f = features[m]
        if f.pooled.dim() != 2 or f.pooled.shape[-1] != d:
            raise ValueError(
                f"fusion '{name}': {m} pooled features have shape {tuple(f.pooled.shape)}, expected (B, {d}); "
                f"set dims['{m}'] to the encoder's hidden size"
            )
        p = present.get(m)
        pres = (
            f.pooled.new_ones(f.pooled.shape[0], dtype=torch.bool)
            if p is None
            else p.to(f.pooled.device).bool()
        )
        pooled = f.pooled.masked_fill(~pres[:, None], 0.0)  # (B, D)
        tokens, mask = f.tokens, f.mask
        if tokens is None or mask is None:
            tokens, mask = f.pooled[:, None, :], pres[:, None]
        if tokens.dim() != 3 or tokens.shape[-1] != d:
            raise ValueError(
                f"fusion '{name}': {m} tokens have shape {tuple(tokens.shape)}, expected (B, T, {d}); "
                f"set dims['{m}'] to the encoder's hidden size"
            )
        valid = mask.to(tokens.device).bool() & pres[:, None]  # (B, T)
        tokens = tokens.masked_fill(~valid[:, :, None], 0.0)  # (B, T, D)
        out[m] = ModalityInput(pooled, tokens, valid, pres)
    return out


def masked_softmax(scores: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over ``dim`` restricted to ``valid`` entries (zeros elsewhere); no NaN for all-invalid rows."""
    scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
    w = torch.softmax(scores, dim=dim) * valid.to(scores.dtype)
    return w / w.sum(dim=dim, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)


def masked_mean(x: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only ``valid`` entries (``valid`` broadcast to ``x`` without its last axis)."""
    w = valid.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim) / w.sum(dim).clamp_min(1.0)


FUSIONS: dict[str, type[Fusion]] = {}


def register_fusion(cls: type[Fusion]) -> type[Fusion]:
    """Class decorator adding a strategy to :data:`FUSIONS` under ``cls.name``."""
    if cls.name in FUSIONS and FUSIONS[cls.name] is not cls:
        raise ValueError(f"fusion name '{cls.name}' is already registered by {FUSIONS[cls.name].__name__}")
    FUSIONS[cls.name] = cls
    return cls


def fusion_kwargs(cls: type[Fusion], include_dims: bool = False) -> list[str]:
    """Names of the constructor arguments of a fusion class (without ``dims`` unless asked)."""
    params = inspect.signature(cls.__init__).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name for p in params if p.name != "self" and p.kind in named and (include_dims or p.name != "dims")
    ]


def _resolve(fusion_cls_or_name: str | type[Fusion]) -> type[Fusion]:
    if isinstance(fusion_cls_or_name, str):
        if fusion_cls_or_name not in FUSIONS:
            raise ValueError(f"unknown fusion '{fusion_cls_or_name}'; known: {sorted(FUSIONS)}")
        return FUSIONS[fusion_cls_or_name]
    if isinstance(fusion_cls_or_name, type) and issubclass(fusion_cls_or_name, Fusion):
        return fusion_cls_or_name
    raise ValueError(f"expected a fusion name or Fusion subclass, got {fusion_cls_or_name!r}")


def check_inputs(
    fusion_cls_or_name: str | type[Fusion], dims: dict[str, int], tokens_available: bool, **kwargs: Any
) -> type[Fusion]:
    """Build-time check that a strategy can fuse these modalities; returns the class.

    Raises ValueError (with how to fix it) for an unknown strategy, a modality count the strategy
    cannot fuse, a token-based strategy when the encoders give only pooled vectors
    (``tokens_available=False``), or sizes it cannot reconcile (given ``kwargs``, e.g. pooling
    without projection over unequal dims).
    """
    cls = _resolve(fusion_cls_or_name)
    if cls.needs_tokens and not tokens_available:
        pooled_only = sorted(n for n, c in FUSIONS.items() if not c.needs_tokens)
        raise ValueError(
            f"fusion '{cls.name}' needs token sequences (B, T, D) with a mask, but the encoders give only "
            f"pooled vectors; use encoders that return tokens or a pooled strategy: {pooled_only}"
        )
    cls.check_dims(dims, **kwargs)
    return cls


def build_fusion(name: str, dims: dict[str, int], num_outputs: int | None = None, **kwargs: Any) -> Fusion:
    """Instantiate the strategy registered as ``name``.

    ``num_outputs`` is passed to decision-level strategies (required there) and ignored by the
    others, whose models add their own head. Unknown names or keyword arguments raise ValueError
    listing the allowed ones.
    """
    cls = _resolve(name)
    accepted = [k for k in fusion_kwargs(cls) if k != "num_outputs"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"fusion '{name}' got unknown argument(s) {unknown}; it accepts {accepted or 'no arguments'}"
        )
    if cls.decision_level:
        if num_outputs is None:
            raise ValueError(f"fusion '{name}' decides itself and needs num_outputs (the number of classes)")
        kwargs["num_outputs"] = num_outputs
    return cls(dims, **kwargs)
