"""omnifuse's best CPU configuration: int8 matmuls on oneDNN (AMX / VNNI) inside an
inductor-compiled bf16 graph.

Every `nn.Linear` of the tower becomes `Int8Linear`: int8 weights (symmetric, per output
channel, computed once) and activations quantized per tensor on the fly (asymmetric uint8,
scale from the batch's min/max: no calibration set, robust to inputs unlike the training
data), multiplied by oneDNN's `qlinear_pointwise` (the kernel PyTorch's own x86 inductor
quantization lowers to; AMX-INT8 on Sapphire Rapids and later, VNNI before) with the bias
fused and a bf16 output. Everything else (layer norm, attention, GELU) runs in bf16 (AMX-BF16).
`torch.compile` with `freezing` then fuses the quantization arithmetic into the ops that
produce each activation, so it costs almost no extra memory traffic.
Reference: Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", arXiv:1712.05877 (affine quantization).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def onednn_int8_available() -> bool:
    return (
        hasattr(torch.ops, "onednn")
        and hasattr(torch.ops.onednn, "qlinear_pointwise")
        and (torch.backends.mkldnn.is_available())
    )


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 weights (per output channel) and dynamically quantized uint8 inputs."""

    def __init__(self, linear: nn.Linear, out_dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        w = linear.weight.detach().float()  # (N, K)
        scale = w.abs().amax(1).clamp_min(1e-8) / 127.0  # (N,)
        qw = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.packed = torch.ops.onednn.qlinear_prepack(qw, None)
        self.register_buffer("w_scale", scale, persistent=False)
        self.register_buffer("w_zero", torch.zeros_like(scale, dtype=torch.long), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().to(out_dtype)
        self.register_buffer("bias", bias, persistent=False)
        self.in_features, self.out_features, self.out_dtype = w.shape[1], w.shape[0], out_dtype

    x_scale: float | None = None
    """Static activation scale from calibration (None: dynamic, from each batch's min/max)."""
    x_zero: int = 0
    observing: bool = False

    def observe(self, x: torch.Tensor) -> None:
        lo, hi = torch.aminmax(x.detach().float())
        self._lo = min(getattr(self, "_lo", 0.0), float(lo))
        self._hi = max(getattr(self, "_hi", 0.0), float(hi))

    def freeze_scale(self) -> None:
        """Fix the activation scale and zero point to the range observed in calibration."""
        lo, hi = getattr(self, "_lo", 0.0), getattr(self, "_hi", 0.0)
        self.x_scale = max((hi - lo) / 255.0, 1e-8)
        self.x_zero = int(round(-lo / self.x_scale))
        self.observing = False

    def _matmul(self, qx: torch.Tensor, scale, zero) -> torch.Tensor:
        op = torch.ops.onednn.qlinear_pointwise
        op = op.tensor if isinstance(scale, torch.Tensor) else op.default
        return op(
            qx,
            scale,
            zero,
            self.packed,
            self.w_scale,
            self.w_zero,
            self.bias,
            1.0,
            0,
            self.out_dtype,
            "none",
            [],
            "",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)  # (M, K)
        if self.observing:
            self.observe(x2)
        if self.x_scale is not None:  # static: a pure pointwise op that inductor fuses into x's producer
            scale, zero = self.x_scale, self.x_zero
            qx = torch.clamp(torch.round(x2.float() * (1.0 / scale)) + zero, 0, 255).to(torch.uint8)
        else:
            lo, hi = torch.aminmax(x2)
            lo, hi = lo.float().clamp(max=0.0), hi.float().clamp(min=0.0)
            scale = ((hi - lo) / 255.0).clamp_min(1e-8)
            zero = torch.round(-lo / scale).to(torch.long)
            qx = torch.clamp(torch.round(x2.float() / scale) + zero, 0, 255).to(torch.uint8)  # (M, K)
        return self._matmul(qx, scale, zero).reshape(*shape[:-1], self.out_features)  # (..., N)


def calibrate(module: nn.Module, run: Callable[[], object]) -> None:
    """Static activation scales: observe every Int8Linear's input range while `run()` runs."""
    layers = [m for m in module.modules() if isinstance(m, Int8Linear)]
    for layer in layers:
        layer.observing = True
    with torch.inference_mode():
        run()
    for layer in layers:
        layer.freeze_scale()


def quantize_linears(module: nn.Module, out_dtype: torch.dtype = torch.bfloat16) -> int:
    """Replace every nn.Linear under `module` with Int8Linear, in place; returns how many."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, out_dtype))
            count += 1
        else:
            count += quantize_linears(child, out_dtype)
    return count


class _Encode(nn.Module):
    def __init__(self, model: nn.Module, modality: str, names: list[str]):
        super().__init__()
        self.model, self.modality, self.names = model, modality, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model.encode(self.modality, dict(zip(self.names, tensors)))  # (B, E)


BEST_DESCRIPTION = (
    "int8 nn.Linear on oneDNN (per-channel int8 weights, dynamic per-tensor uint8 activations, "
    "AMX-INT8) + bf16 elsewhere (AMX-BF16), compiled with torch.compile (inductor, freezing)"
)


def best_cpu_runner(
    model: nn.Module,
    modality: str,
    example: dict[str, torch.Tensor],
    compile: bool = True,
    calibration: dict[str, torch.Tensor] | None = None,
) -> tuple[Callable[[dict[str, torch.Tensor]], np.ndarray], str]:
    """A function (processed batch -> (B, E) float32 embeddings) and its description.

    With `calibration` (a processed batch, not the evaluation items), activation scales are
    static (calibrated once); without, they are computed from each batch.
    """
    if not onednn_int8_available():
        raise ValueError("this PyTorch build has no oneDNN int8 kernels (torch.ops.onednn.qlinear_pointwise)")
    fast = copy.deepcopy(model).eval()
    tower = nn.ModuleDict({"tower": fast.towers[modality], "projection": fast.projections[modality]})
    tower.to(torch.bfloat16)
    n = quantize_linears(tower)
    names = sorted(example)
    floats = {k for k, v in example.items() if v.is_floating_point()}

    def args_of(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [batch[k].to(torch.bfloat16) if k in floats else batch[k] for k in names]

    encode = _Encode(fast, modality, names).eval()
    if calibration is not None:
        calibrate(tower, lambda: encode(*args_of(calibration)))
    kind = "static (calibrated)" if calibration is not None else "dynamic per-tensor"
    description = BEST_DESCRIPTION.replace("dynamic per-tensor", kind) + f" ({n} linear layers)"
    fn: nn.Module | Callable = encode
    if compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        fn = torch.compile(encode, dynamic=False)

    def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return fn(*args_of(batch)).float().numpy()

    return run, description
