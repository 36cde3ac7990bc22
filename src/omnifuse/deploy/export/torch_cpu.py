"""omnifuse's best CPU configuration for a tower: the fastest candidate that is correct on this CPU.

Candidates, from what this CPU offers (`omnifuse.utils.cpu.cpu_info`):

- ``int8-onednn+bf16``: every `nn.Linear` a `QuantizedLinear` on oneDNN's `qlinear_pointwise`
  (int8 weights per output channel, uint8 activations, bias fused; AMX-INT8 / VNNI), everything
  else (layer norm, attention, GELU) in bf16. Only where oneDNN runs bf16 natively (AVX512-BF16 or
  AMX-BF16): under an AVX2-only oneDNN a bf16 output runs a reference kernel (measured 26 s for one
  200x768x768 int8 matmul that takes 2 ms with an fp32 output).
- ``int8-onednn+fp32``: the same int8 layers, fp32 elsewhere.
- ``int8-fbgemm+fp32``: PyTorch's fbgemm dynamic int8 linear (7-bit activations), fp32 elsewhere.
- ``fp32``: the tower as it is.

Weights are full range where oneDNN has VNNI / AMX-INT8 and 7-bit ("reduced") elsewhere, so
the int8 products are exact on every x86 CPU with AVX2 (see `omnifuse.layers.quantized`).
Each candidate is timed briefly in eager mode on a slice of the example batch and checked
against fp32 (mean cosine >= `min_cosine`); the fastest correct one is kept and, with
`compile`, compiled by `torch.compile` (inductor, freezing), which fuses the activation
quantization into the ops that produce each activation.
Reference: Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", arXiv:1712.05877 (affine quantization).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from omnifuse.layers.quantized import (
    calibrate,
    default_weight_range,
    kernels_used,
    onednn_int8_available,
    quantize_linears,
)
from omnifuse.utils.cpu import cpu_info

log = logging.getLogger(__name__)

__all__ = ["BestChoice", "best_cpu_runner", "candidates", "onednn_int8_available"]


class _Encode(nn.Module):
    def __init__(self, model: nn.Module, modality: str, names: list[str]):
        super().__init__()
        self.model, self.modality, self.names = model, modality, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model.encode(self.modality, dict(zip(self.names, tensors)))  # (B, E)


def candidates() -> list[str]:
    """The configurations worth trying on this CPU, in order of expected speed."""
    info, names = cpu_info(), []
    if onednn_int8_available():
        if info.onednn_bf16:
            names.append("int8-onednn+bf16")
        names.append("int8-onednn+fp32")
    names += ["int8-fbgemm+fp32", "fp32"]
    return names


@dataclass
class BestChoice:
    """What `best_cpu_runner` picked and why."""

    name: str
    weight_range: str | None
    kernels: dict[str, int]
    trials: dict[str, dict[str, float]]
    """candidate -> {"items_per_s": eager speed on the trial batch, "mean_cosine": vs fp32}."""
    prepare_s: float = 0.0

    def describe(self) -> str:
        tried = "; ".join(
            f"{n} {t['items_per_s']:.1f}/s cos {t['mean_cosine']:.4f}" for n, t in self.trials.items()
        )
        weights = f", {self.weight_range}-range int8 weights" if self.weight_range else ""
        kernels = f", kernels {self.kernels}" if self.kernels else ""
        return f"picked {self.name}{weights}{kernels} (eager trials: {tried})"


def _build(
    model: nn.Module,
    modality: str,
    name: str,
    names: list[str],
    floats: set[str],
    calibration: dict[str, torch.Tensor] | None,
) -> tuple[nn.Module, Callable[[dict[str, torch.Tensor]], list[torch.Tensor]], str | None]:
    fast = copy.deepcopy(model).eval()
    tower = nn.ModuleDict({"tower": fast.towers[modality], "projection": fast.projections[modality]})
    dtype = torch.bfloat16 if name.endswith("+bf16") else torch.float32
    tower.to(dtype)

    def args_of(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [batch[k].to(dtype) if k in floats else batch[k] for k in names]

    encode = _Encode(fast, modality, names).eval()
    weight_range = None
    if name.startswith("int8"):
        weight_range = default_weight_range()
        quantize_linears(tower, "dynamic", weight_range=weight_range, onednn=name.startswith("int8-onednn"))
        if calibration is not None and name.startswith("int8-onednn"):
            with torch.inference_mode():
                calibrate(tower, lambda: encode(*args_of(calibration)))
    return encode, args_of, weight_range


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(-1)
    den = np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return float((num / den).mean())


def best_cpu_runner(
    model: nn.Module,
    modality: str,
    example: dict[str, torch.Tensor],
    compile: bool = True,
    calibration: dict[str, torch.Tensor] | None = None,
    min_cosine: float = 0.99,
    only: str | None = None,
) -> tuple[Callable[[dict[str, torch.Tensor]], np.ndarray], str]:
    """A function (processed batch -> (B, E) float32 embeddings) and a description of the choice.

    With `calibration` (a processed batch, not the evaluation items), oneDNN activation scales are
    static (calibrated once); without, they are computed from each batch. `only` skips the
    trials and builds that candidate.
    """
    started = time.perf_counter()
    names = sorted(example)
    floats = {k for k, v in example.items() if v.is_floating_point()}
    options = candidates()
    if only is not None:
        if only not in options:
            raise ValueError(f"candidate '{only}' is not available on this CPU; available: {options}")
        options = [only]
    trial = {k: v[: min(8, len(v))] for k, v in example.items()}
    if calibration is not None:  # a few items calibrate well; more only cost preparation time
        calibration = {k: v[: min(8, len(v))] for k, v in calibration.items()}
    with torch.inference_mode():
        want = model.encode(modality, trial).float().numpy()
    trials: dict[str, dict[str, float]] = {}
    built = {}
    for name in options:
        encode, args_of, weight_range = _build(model, modality, name, names, floats, calibration)
        with torch.inference_mode():
            cos = _cosine(encode(*args_of(trial)).float().numpy(), want)  # also the warm-up
            t0 = time.perf_counter()
            encode(*args_of(trial))
            speed = len(next(iter(trial.values()))) / (time.perf_counter() - t0)
        trials[name] = {"items_per_s": round(speed, 2), "mean_cosine": round(cos, 5)}
        built[name] = (encode, args_of, weight_range)
        log.info("best-config trial %s: %.1f items/s, mean cosine %.5f", name, speed, cos)
    correct = [n for n in options if trials[n]["mean_cosine"] >= min_cosine] or ["fp32"]
    name = max(correct, key=lambda n: trials.get(n, {}).get("items_per_s", 0.0))
    if name not in built:  # nothing passed: fall back to fp32
        built[name] = _build(model, modality, name, names, floats, None)
    encode, args_of, weight_range = built[name]
    choice = BestChoice(name, weight_range, kernels_used(encode), trials)
    fn: nn.Module | Callable = encode
    if compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        fn = torch.compile(encode, dynamic=False)
    choice.prepare_s = round(time.perf_counter() - started, 2)
    kind = "static (calibrated)" if calibration is not None else "dynamic"
    mode = "torch.compile (inductor, freezing)" if compile else "eager"
    description = f"{choice.describe()}; activations: oneDNN {kind}, fbgemm dynamic; {mode}"

    def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return fn(*args_of(batch)).float().numpy()

    run.choice = choice  # type: ignore[attr-defined]
    return run, description
