"""Post-training quantization: int8 Linear layers (dynamic or static activations), fp16 / bf16 casts.

Int8 weights are per-output-channel symmetric (`omnifuse.layers.quantized`); the artifact stores
them as int8 tensors with float32 scales in `model.safetensors`, and config.json's
``compression.modules`` lists the swapped layers so `load_model` rebuilds them.
Static int8 calibrates one activation scale per layer from the max |x| seen on a calibration split
(the "max" observer of Jacob et al. 2018, arXiv:1712.05877).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from omnifuse.data.sample import Sample
from omnifuse.deploy.compress.base import CompressContext, MethodResult, register_method
from omnifuse.deploy.compress.data import iterate_batches
from omnifuse.deploy.compress.measure import run_once
from omnifuse.layers.quantized import (
    default_weight_range,
    int8_requirements,
    observe_input_scales,
    quantize_linears,
)
from omnifuse.utils.progress import progress_bar


@torch.no_grad()
def calibrate_input_scales(
    model: nn.Module, samples: Sequence[Sample], batch_size: int, max_batches: int, progress: bool = True
) -> dict[str, float]:
    """Per-layer activation scale max|x| / 127 over the calibration batches (inputs of each Linear)."""
    model.eval()

    def run() -> None:
        batches = iterate_batches(model, samples, batch_size)
        for i, batch in enumerate(progress_bar(batches, desc="calibrate", disable=not progress, leave=False)):
            run_once(model, batch)
            if i + 1 >= max_batches:
                break

    return observe_input_scales(model, run)


def int8_fraction(model: nn.Module) -> float:
    """The fraction of the stored weight elements that are int8 (the rest stays float: embeddings, norms)."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point() or t.dtype == torch.int8]
    return sum(t.numel() for t in tensors if t.dtype == torch.int8) / max(1, sum(t.numel() for t in tensors))


def int8_compression(method: str, specs: dict[str, dict], **extra) -> dict:
    """config.json's compression entry; `requires` names what exact int8 kernels need ('vnni')."""
    weight_range = next(iter(specs.values()))["weight_range"]
    return {
        "method": method,
        "weights": "int8 per-channel symmetric" + (" (7-bit)" if weight_range == "reduced" else ""),
        "weight_range": weight_range,
        "requires": int8_requirements(weight_range),
        "modules": specs,
        **extra,
    }


@register_method("dynamic-int8")
def dynamic_int8(model: nn.Module, ctx: CompressContext) -> MethodResult:
    """Int8 weights, activations quantized per token at run time: no data needed."""
    specs = quantize_linears(
        model, "dynamic", weight_range=ctx.options.int8_weights or default_weight_range()
    )
    details = {"quantized_layers": len(specs), "int8_weight_fraction": int8_fraction(model)}
    return MethodResult(model, int8_compression("dynamic-int8", specs), details)


@register_method("static-int8")
def static_int8(model: nn.Module, ctx: CompressContext) -> MethodResult:
    """Int8 weights and activations, one activation scale per layer calibrated on `--calib`."""
    samples = ctx.require_calib("static-int8")
    opts = ctx.options
    scales = calibrate_input_scales(model, samples, opts.batch_size, opts.calib_batches, opts.progress)
    specs = quantize_linears(model, "static", scales, opts.int8_weights or default_weight_range())
    n = min(len(samples), opts.batch_size * opts.calib_batches)
    details = {
        "quantized_layers": len(specs),
        "calibration_samples": n,
        "int8_weight_fraction": int8_fraction(model),
    }
    return MethodResult(model, int8_compression("static-int8", specs, calibration_samples=n), details)


def _cast(model: nn.Module, method: str, dtype: torch.dtype, name: str) -> MethodResult:
    model.to(dtype)
    return MethodResult(model, {"method": method, "dtype": name}, {"dtype": name})


@register_method("fp16")
def fp16(model: nn.Module, ctx: CompressContext) -> MethodResult:
    """Every floating tensor cast to float16 (half the bytes; CPU speed depends on the kernels)."""
    return _cast(model, "fp16", torch.float16, "float16")


@register_method("bf16")
def bf16(model: nn.Module, ctx: CompressContext) -> MethodResult:
    """Every floating tensor cast to bfloat16 (float32's range, 8 bits of mantissa)."""
    return _cast(model, "bf16", torch.bfloat16, "bfloat16")
