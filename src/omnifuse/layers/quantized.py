"""Int8 linear layers: per-channel symmetric int8 weights, int8 activations, int32 accumulation.

Weights: one scale per output channel, ``w ≈ w_int8 * scale[o]``, ``scale = max|w[o]| / 127``
(symmetric, zero point 0). Activations: ``dynamic`` computes a scale per token at run time
(``max|x[t]| / 127``, as in LLM.int8() without the outlier split and as in SmoothQuant's
per-token setting); ``static`` uses one scale per layer fixed by calibration. The int8 x int8
product runs in ``torch._int_mm`` (int32 accumulation) where the backend has it, else as a
dequantized float matmul (same result up to float rounding).

References: Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", arXiv:1712.05877; Dettmers et al. 2022, "LLM.int8()",
arXiv:2208.07339.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

QMAX = 127
ACTIVATIONS = ("dynamic", "static")


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> ((out, in) int8, (out,) float32 scales), symmetric per output channel."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / QMAX).clamp_min(1e-12)  # (out,)
    q = torch.round(w / scale[:, None]).clamp(-QMAX, QMAX).to(torch.int8)
    return q, scale


def fake_quantize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Round to the int8 grid and back, with a straight-through gradient (Bengio et al. 2013)."""
    q = torch.round(x / scale).clamp(-QMAX, QMAX) * scale
    return x + (q - x).detach()


def _int_mm_ok() -> bool:
    try:
        a = torch.ones(32, 32, dtype=torch.int8)
        return bool(torch._int_mm(a, a.t().contiguous())[0, 0] == 32)
    except (AttributeError, RuntimeError):
        return False


def _fbgemm_ok() -> bool:
    """PyTorch's x86 int8 kernels (fbgemm / onednn): dynamic int8 linear with prepacked weights."""
    try:
        engines = torch.backends.quantized.supported_engines
        return any(e in engines for e in ("x86", "fbgemm")) and hasattr(torch.ops.quantized, "linear_dynamic")
    except (AttributeError, RuntimeError):
        return False


_INT_MM = _int_mm_ok()
_FBGEMM = _fbgemm_ok()


class QuantizedLinear(nn.Module):
    """A drop-in `nn.Linear` with int8 weights (buffers `weight_int8`, `weight_scale`).

    activations: ``dynamic`` (scales computed at run time) or ``static`` (the calibrated
    per-layer `input_scale` buffer). On x86 CPUs a dynamic layer runs PyTorch's fbgemm kernel
    (`quantized.linear_dynamic`, one activation scale per call) on weights packed once from the
    int8 buffers; elsewhere it quantizes per token and multiplies with `torch._int_mm`.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activations: str = "dynamic"):
        super().__init__()
        if activations not in ACTIVATIONS:
            raise ValueError(f"activations must be one of {ACTIVATIONS}, got '{activations}'")
        self.in_features, self.out_features, self.activations = in_features, out_features, activations
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self.register_buffer("input_scale", torch.ones(()) if activations == "static" else None)
        self._weight_t: torch.Tensor | None = None  # (in, out) contiguous copy for _int_mm
        self._packed = None  # fbgemm packed weights, derived from the buffers on first use

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, activations: str = "dynamic", input_scale: float | None = None
    ) -> QuantizedLinear:
        q = cls(linear.in_features, linear.out_features, linear.bias is not None, activations)
        q.weight_int8, q.weight_scale = quantize_per_channel(linear.weight)
        if linear.bias is not None:
            q.bias = linear.bias.detach().float().clone()
        if activations == "static":
            if input_scale is None:
                raise ValueError("static int8 needs an input_scale from calibration")
            q.input_scale = torch.tensor(float(input_scale)).clamp_min(1e-12)
        return q.to(linear.weight.device)

    def spec(self) -> dict:
        return {
            "kind": "quantized_linear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "activations": self.activations,
        }

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scale[:, None]  # (out, in)

    def _apply(self, fn, recurse=True):
        self._weight_t = self._packed = None  # device/dtype moves invalidate the derived copies
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self._weight_t = self._packed = None
        return super()._load_from_state_dict(*args, **kwargs)

    def _packed_weight(self):
        """fbgemm's packed weights (built once), or None where the quantized ops are unavailable."""
        if self._packed is None:
            zero = torch.zeros(self.out_features, dtype=torch.long)
            bias = self.bias.float() if self.bias is not None else None
            try:
                with warnings.catch_warnings():  # quantized tensor creation is deprecated (torch 2.10+)
                    warnings.simplefilter("ignore")
                    qweight = torch._make_per_channel_quantized_tensor(
                        self.weight_int8, self.weight_scale.double(), zero, 0
                    )
                    self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
            except (AttributeError, RuntimeError, NotImplementedError):
                self._packed = False
        return None if self._packed is False else self._packed

    def __deepcopy__(self, memo):
        clone = self.__class__(self.in_features, self.out_features, self.bias is not None, self.activations)
        clone.load_state_dict(self.state_dict())
        return clone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).float()  # (N, in)
        if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
            # export: a weight-only int8 graph (int8 initializer, Cast, Mul) that any runtime can run
            y = x2 @ self.dequantized_weight().t()  # (N, out)
            y = y + self.bias if self.bias is not None else y
            return y.reshape(*shape[:-1], self.out_features).to(x.dtype)
        fast = self.activations == "dynamic" and _FBGEMM and x2.device.type == "cpu"
        if fast and (packed := self._packed_weight()) is not None:
            y = torch.ops.quantized.linear_dynamic(x2, packed, True)  # (N, out), fbgemm int8
            return y.reshape(*shape[:-1], self.out_features).to(x.dtype)
        if self.activations == "dynamic":
            x_scale = (x2.abs().amax(dim=1, keepdim=True) / QMAX).clamp_min(1e-12)  # (N, 1)
        else:
            x_scale = self.input_scale.reshape(1, 1)
        xq = torch.round(x2 / x_scale).clamp(-QMAX, QMAX)  # (N, in) on the int8 grid
        if _INT_MM and x2.shape[0] > 16 and x2.device.type == "cpu":
            if self._weight_t is None:
                self._weight_t = self.weight_int8.t().contiguous()  # (in, out)
            acc = torch._int_mm(xq.to(torch.int8), self._weight_t).float()  # (N, out) int32 -> float
        else:
            acc = xq @ self.weight_int8.float().t()  # (N, out), exact integers in float32
        y = acc * x_scale * self.weight_scale[None, :]  # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activations={self.activations}"
