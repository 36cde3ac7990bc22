"""What every compression method shares: options, the context it runs in, its result, the registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from omnifuse.data.sample import Sample
from omnifuse.layers.quantized import linear_layers  # noqa: F401  (re-exported for the methods)


@dataclass
class CompressOptions:
    """Knobs of the methods; each method reads the ones it needs and ignores the rest."""

    sparsity: float = 0.5
    """prune-magnitude: fraction of Linear weights zeroed; prune-structured: fraction of heads and
    MLP channels removed per layer."""
    scope: str = "global"
    """prune-magnitude: one threshold over all layers (`global`) or the same fraction per layer."""
    energy: float | None = None
    """low-rank: keep the top singular values holding this fraction of each layer's energy."""
    param_budget: float | None = None
    """low-rank: keep at most this fraction of the factorisable Linear parameters (global)."""
    finetune_steps: int = 0
    """prune-*/low-rank: recovery fine-tuning steps on `train` data (0: none)."""
    lr: float = 1e-4
    batch_size: int = 32
    student: str | None = None
    """distill: a student artifact directory (same model type and preprocessing) instead of a preset."""
    student_preset: str = "tiny"
    """distill: the student's size preset (omnifuse.encoders.presets) for every tower."""
    student_overrides: dict[str, Any] = field(default_factory=dict)
    """distill: HF config fields set on every student tower (e.g. num_hidden_layers=1)."""
    distill_steps: int = 200
    temperature: float = 2.0
    """distill: softmax temperature of the logit (KL) term (Hinton et al. 2015)."""
    embed_weight: float = 1.0
    logit_weight: float = 1.0
    task_weight: float = 0.0
    """distill: weight of the student's own task loss (the model's `forward(batch).loss`)."""
    max_drop: float | None = None
    """dynamic/static int8: run QAT when the primary quality metric drops by more than this."""
    qat_steps: int = 100
    qat_activations: bool = True
    """qat: fake-quantize Linear inputs as well as weights."""
    calib_batches: int = 8
    int8_weights: str | None = None
    """int8 methods: 'full' (int8 weights; exact int8 kernels need VNNI or AMX-INT8), 'reduced'
    (7-bit weights: exact int8 kernels on every x86 CPU with AVX2) or None (this CPU's choice)."""
    label_key: str | None = None
    """Zero-shot classes for the quality of a model that can `zero_shot` (`labels[label_key]`);
    a named key that no sample has is an error. None: `color_shape` when the data has it, else
    retrieval figures only."""
    speed_batch: int = 64
    speed_rounds: int = 10
    """timed rounds per model (alternating); the fastest counts."""
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.sparsity < 1:
            raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if self.scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got '{self.scope}'")
        if self.energy is not None and not 0 < self.energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {self.energy}")
        if self.param_budget is not None and not 0 < self.param_budget < 1:
            raise ValueError(f"param_budget must be in (0, 1), got {self.param_budget}")
        for name in ("finetune_steps", "distill_steps", "qat_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.int8_weights not in (None, "full", "reduced"):
            raise ValueError(f"int8_weights must be 'full' or 'reduced', got '{self.int8_weights}'")
        if self.batch_size < 1 or self.speed_batch < 1:
            raise ValueError("batch_size and speed_batch must be >= 1")


@dataclass
class CompressContext:
    """The source artifact and the data splits a method may use."""

    source_dir: Path
    source_config: dict[str, Any]
    options: CompressOptions
    eval_samples: list[Sample] | None = None
    calib_samples: list[Sample] | None = None
    train_samples: list[Sample] | None = None

    def require_train(self, method: str, what: str = "fine-tuning") -> list[Sample]:
        if not self.train_samples:
            raise ValueError(f"{method}: {what} needs training data; pass --train PATH (train=...)")
        return self.train_samples

    def require_calib(self, method: str) -> list[Sample]:
        if self.calib_samples is None:
            raise ValueError(f"{method} needs a calibration split; pass --calib PATH (calib=...)")
        if not self.calib_samples:
            raise ValueError(f"{method}: the calibration split is empty; give it at least one sample")
        return self.calib_samples


@dataclass
class MethodResult:
    """A compressed model, the `compression` entry for config.json, and what to report.

    `config` replaces the source config (distillation makes a new architecture); None keeps it.
    """

    model: nn.Module
    compression: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None


Method = Callable[[nn.Module, CompressContext], MethodResult]
METHODS: dict[str, Method] = {}


def register_method(name: str) -> Callable[[Method], Method]:
    def wrap(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return wrap


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
