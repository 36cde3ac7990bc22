"""Quantization-aware training: fine-tune with int8 fake quantization, then convert to int8.

Every nn.Linear computes with weights rounded to their per-channel int8 grid and (optionally)
inputs rounded to the int8 grid of the deployed scheme (per token for dynamic, the calibrated
scale for static); gradients pass the rounding straight through (STE, Bengio et al. 2013,
arXiv:1308.3432). The objective is the model's own loss plus distillation from the float model,
so the quantized model learns to match it. Jacob et al. 2018, arXiv:1712.05877.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.deploy.compress.base import CompressContext, MethodResult, linear_layers, register_method
from omnifuse.deploy.compress.distill import distill_loss
from omnifuse.deploy.compress.finetune import finetune
from omnifuse.deploy.compress.quantize import calibrate_input_scales, int8_compression
from omnifuse.layers.quantized import QMAX, QuantizedLinear, default_weight_range, fake_quantize, weight_qmax
from omnifuse.layers.surgery import set_module


class FakeQuantLinear(nn.Module):
    """A Linear that trains through int8 rounding of its weights (and inputs)."""

    def __init__(
        self,
        linear: nn.Linear,
        activations: str = "dynamic",
        input_scale: float | None = None,
        weight_range: str = "full",
    ):
        super().__init__()
        self.linear = linear
        self.weight_range = weight_range
        self.activations = activations
        self.quantize_inputs = True
        self.input_scale = input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.linear.weight  # (out, in)
        qmax = weight_qmax(self.weight_range)
        w_scale = (w.detach().abs().amax(dim=1, keepdim=True) / qmax).clamp_min(1e-12)  # (out, 1)
        w_q = fake_quantize(w, w_scale, qmax)
        if self.quantize_inputs:
            if self.activations == "dynamic":
                x_scale = (x.detach().abs().amax(dim=-1, keepdim=True) / QMAX).clamp_min(1e-12)  # (..., 1)
            else:
                x_scale = x.new_tensor(self.input_scale)
            x = fake_quantize(x, x_scale)
        return F.linear(x, w_q, self.linear.bias)  # (..., out)

    def convert(self) -> QuantizedLinear:
        return QuantizedLinear.from_linear(self.linear, self.activations, self.input_scale, self.weight_range)


def quantization_aware_finetune(model: nn.Module, ctx: CompressContext, activations: str) -> MethodResult:
    """Fake-quantize `model` (a float copy of the source), fine-tune, convert to an int8 model."""
    opts = ctx.options
    train = ctx.require_train("qat", "quantization-aware fine-tuning")
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    scales = {}
    if activations == "static":
        calib = ctx.require_calib("static-int8 QAT")
        scales = calibrate_input_scales(model, calib, opts.batch_size, opts.calib_batches, opts.progress)
    layers = linear_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers to quantize")
    wrapped = {}
    weight_range = opts.int8_weights or default_weight_range()
    for name, linear in layers.items():
        fq = FakeQuantLinear(linear, activations, scales.get(name), weight_range)
        fq.quantize_inputs = opts.qat_activations
        set_module(model, name, fq)
        wrapped[name] = fq
    loss_opts = dataclasses.replace(opts, task_weight=max(opts.task_weight, 1.0))
    losses = finetune(
        model, train, opts.qat_steps, loss_fn=lambda m, b: distill_loss(m, teacher, b, loss_opts),
        lr=opts.lr, batch_size=opts.batch_size, seed=opts.seed, desc="qat", progress=opts.progress,
    )  # fmt: skip
    specs = {}
    for name, fq in wrapped.items():
        q = fq.convert()
        set_module(model, name, q)
        specs[name] = q.spec()
    method = f"qat-{activations}-int8"
    compression = int8_compression(method, specs, qat_steps=opts.qat_steps)
    details = {
        "quantized_layers": len(specs),
        "qat_steps": len(losses),
        "last_loss": losses[-1] if losses else None,
    }
    return MethodResult(model, compression, details)


@register_method("qat")
def qat(model: nn.Module, ctx: CompressContext) -> MethodResult:
    """QAT straight away: static activations when `--calib` is given, else dynamic."""
    return quantization_aware_finetune(model, ctx, "static" if ctx.calib_samples else "dynamic")
