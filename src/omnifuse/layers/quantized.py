"""Int8 linear layers: per-channel symmetric int8 weights, int8 activations, int32 accumulation.

The one int8 stack of omnifuse: compression (`omnifuse compress`), the runtime (compressed
artifacts load into these layers) and the CPU benchmark's best configuration all use
`QuantizedLinear` and `quantize_linears`.

Weights: one scale per output channel, ``w ≈ w_int8 * scale[o]``, ``scale = max|w[o]| / qmax``
(symmetric, zero point 0). ``qmax`` is 127 ("full" range) or 63 ("reduced" range, 7 bits).
Activations: ``dynamic`` computes a scale at run time; ``static`` uses one scale per layer
fixed by calibration (``max|x| / 127``, the "max" observer).

Kernels, chosen per CPU (`omnifuse.utils.cpu`) when a layer first runs:

- ``fbgemm``: PyTorch's dynamic int8 linear (`quantized.linear_dynamic`, 7-bit activations,
  exact on every x86 CPU with AVX2);
- ``onednn``: oneDNN's `qlinear_pointwise` (uint8 activations x int8 weights, bias fused, fp32 or
  bf16 out; AMX-INT8 / VNNI); opted into with `use_onednn` (the CPU benchmark's best config);
- ``int_mm``: `torch._int_mm` (int8 x int8 -> int32, oneDNN);
- ``exact-float``: a float32 matmul of the integers (exact; the portable fallback).

Without VNNI (AVX512-VNNI, AVX-VNNI, AMX-INT8) oneDNN multiplies uint8 x int8 with ``vpmaddubsw``,
whose int16 pair sums saturate for full-range weights: the result is wrong, not just rounded.
Reduced-range weights keep every pair sum below 2**15 (255 * 63 * 2 < 32768). So a full-range
layer on such a CPU runs ``exact-float`` instead of oneDNN, and says so once in the log.

References: Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", arXiv:1712.05877; Dettmers et al. 2022, "LLM.int8()",
arXiv:2208.07339; ONNX Runtime's quantization guide (reduce_range on CPUs without VNNI).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch
from torch import nn

from omnifuse.utils.cpu import cpu_info, missing_int8_feature

log = logging.getLogger(__name__)

QMAX = 127
REDUCED_QMAX = 63
ACTIVATIONS = ("dynamic", "static")
WEIGHT_RANGES = ("full", "reduced")
_WARNED: set[str] = set()


def weight_qmax(weight_range: str) -> int:
    if weight_range not in WEIGHT_RANGES:
        raise ValueError(f"weight_range must be one of {WEIGHT_RANGES}, got '{weight_range}'")
    return QMAX if weight_range == "full" else REDUCED_QMAX


def default_weight_range() -> str:
    """'full' where oneDNN's int8 kernels are exact (VNNI / AMX-INT8), else 'reduced'."""
    return "full" if cpu_info().onednn_vnni else "reduced"


def int8_requirements(weight_range: str) -> list[str]:
    """What a layer of this weight range needs for int8 kernels ('vnni': any of VNNI_FLAGS)."""
    return ["vnni"] if weight_range == "full" else []


def quantize_per_channel(weight: torch.Tensor, qmax: int = QMAX) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> ((out, in) int8, (out,) float32 scales), symmetric per output channel."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / qmax).clamp_min(1e-12)  # (out,)
    q = torch.round(w / scale[:, None]).clamp(-qmax, qmax).to(torch.int8)
    return q, scale


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, qmax: int = QMAX) -> torch.Tensor:
    """Round to the int grid and back, with a straight-through gradient (Bengio et al. 2013)."""
    q = torch.round(x / scale).clamp(-qmax, qmax) * scale
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


def onednn_int8_available() -> bool:
    """This PyTorch build has oneDNN's int8 linear (`torch.ops.onednn.qlinear_pointwise`)."""
    return (
        hasattr(torch.ops, "onednn")
        and hasattr(torch.ops.onednn, "qlinear_pointwise")
        and torch.backends.mkldnn.is_available()
    )


_INT_MM = _int_mm_ok()
_FBGEMM = _fbgemm_ok()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


class QuantizedLinear(nn.Module):
    """A drop-in `nn.Linear` with int8 weights (buffers `weight_int8`, `weight_scale`).

    activations: ``dynamic`` (scales computed at run time) or ``static`` (the calibrated
    per-layer `input_scale` buffer). weight_range: ``full`` (int8, -127..127) or ``reduced``
    (7 bits, -63..63: exact on CPUs without VNNI). The kernel is chosen per CPU (module docstring);
    `kernel` says which one runs.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activations: str = "dynamic",
        weight_range: str = "full",
    ):
        super().__init__()
        if activations not in ACTIVATIONS:
            raise ValueError(f"activations must be one of {ACTIVATIONS}, got '{activations}'")
        weight_qmax(weight_range)  # validates
        self.in_features, self.out_features, self.activations = in_features, out_features, activations
        self.weight_range = weight_range
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self.register_buffer("input_scale", torch.ones(()) if activations == "static" else None)
        self.use_onednn = False
        """Prefer oneDNN's qlinear_pointwise (set by `quantize_linears(..., onednn=True)`)."""
        self._reset_derived()

    def _reset_derived(self) -> None:
        self._weight_t: torch.Tensor | None = None  # (in, out) contiguous copy for _int_mm
        self._packed = None  # fbgemm packed weights, derived from the buffers on first use
        self._onednn_packed = None  # oneDNN packed weights
        self._kernel: str | None = None

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        activations: str = "dynamic",
        input_scale: float | None = None,
        weight_range: str = "full",
    ) -> QuantizedLinear:
        q = cls(linear.in_features, linear.out_features, linear.bias is not None, activations, weight_range)
        q.weight_int8, q.weight_scale = quantize_per_channel(linear.weight, weight_qmax(weight_range))
        if linear.bias is not None:
            q.bias = linear.bias.detach().float().clone()
        if activations == "static":
            if input_scale is None:
                raise ValueError("static int8 needs an input_scale from calibration")
            q.set_input_scale(input_scale)
        return q.to(linear.weight.device)

    def set_input_scale(self, scale: float) -> None:
        """Make the activations static with this scale (max|x| / 127 from calibration)."""
        self.activations = "static"
        self.input_scale = torch.tensor(float(scale)).clamp_min(1e-12)
        self._kernel = None

    def spec(self) -> dict:
        return {
            "kind": "quantized_linear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "activations": self.activations,
            "weight_range": self.weight_range,
        }

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scale[:, None]  # (out, in)

    def _apply(self, fn, recurse=True):
        self._reset_derived()  # device/dtype moves invalidate the derived copies
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self._reset_derived()
        return super()._load_from_state_dict(*args, **kwargs)

    def __deepcopy__(self, memo):
        clone = self.__class__(
            self.in_features, self.out_features, self.bias is not None, self.activations, self.weight_range
        )
        clone.load_state_dict(self.state_dict())
        clone.use_onednn = self.use_onednn
        return clone

    # ---- kernel choice ---------------------------------------------------------------------

    @property
    def kernel(self) -> str:
        """The kernel this layer runs on this CPU: fbgemm, onednn, int_mm or exact-float."""
        if self._kernel is None:
            self._kernel = self._choose_kernel()
        return self._kernel

    def _choose_kernel(self) -> str:
        if self.weight_int8.device.type != "cpu":
            return "exact-float"
        onednn_exact = self.weight_range == "reduced" or cpu_info().onednn_vnni
        if self.use_onednn and onednn_int8_available():
            if onednn_exact:
                return "onednn"
            self._warn_full_range()
        if self.activations == "dynamic" and _FBGEMM and self._packed_weight() is not None:
            return "fbgemm"  # 7-bit activations: exact on every x86 CPU
        if _INT_MM:
            if onednn_exact:
                return "int_mm"
            self._warn_full_range()
        return "exact-float"

    def _warn_full_range(self) -> None:
        _warn_once(
            "full-range",
            f"this CPU ({cpu_info().describe()}) has no {missing_int8_feature()}: full-range int8 "
            "weights would saturate in oneDNN's int8 kernels, so these layers run exact float "
            "matmuls instead (slower). Quantize with weight_range='reduced' (omnifuse compress "
            "--int8-weights reduced) for int8 kernels that are exact on this CPU.",
        )

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

    # ---- forward -------------------------------------------------------------------------

    def _onednn(self, x2: torch.Tensor) -> torch.Tensor:
        """oneDNN qlinear_pointwise: uint8 activations (per-tensor), int8 weights, bias fused."""
        out_dtype = torch.bfloat16 if x2.dtype == torch.bfloat16 else torch.float32
        if self._onednn_packed is None:
            packed = torch.ops.onednn.qlinear_prepack(self.weight_int8, None)
            zero = torch.zeros(self.out_features, dtype=torch.long)
            self._onednn_packed = (packed, zero)
        packed, w_zero = self._onednn_packed
        bias = None if self.bias is None else self.bias.to(out_dtype)
        if self.activations == "static":  # symmetric scale, uint8 with zero point 128: pointwise only
            scale, zero = float(self.input_scale), 128
            qx = torch.clamp(torch.round(x2.float() * (1.0 / scale)) + zero, 0, 255).to(torch.uint8)
            op = torch.ops.onednn.qlinear_pointwise.default
        else:  # dynamic: asymmetric per-tensor from this batch's range
            lo, hi = torch.aminmax(x2)
            lo, hi = lo.float().clamp(max=0.0), hi.float().clamp(min=0.0)
            scale = ((hi - lo) / 255.0).clamp_min(1e-8)
            zero = torch.round(-lo / scale).to(torch.long)
            qx = torch.clamp(torch.round(x2.float() / scale) + zero, 0, 255).to(torch.uint8)  # (M, K)
            op = torch.ops.onednn.qlinear_pointwise.tensor
        return op(qx, scale, zero, packed, self.weight_scale, w_zero, bias, 1.0, 0, out_dtype, "none", [], "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
            # export: a weight-only int8 graph (int8 initializer, Cast, Mul) that any runtime can run
            x2 = x.reshape(-1, self.in_features).float()
            y = x2 @ self.dequantized_weight().t()  # (N, out)
            y = y + self.bias if self.bias is not None else y
            return y.reshape(*shape[:-1], self.out_features).to(x.dtype)
        kernel = self.kernel
        if kernel == "onednn":
            y = self._onednn(x.reshape(-1, self.in_features))  # (N, out)
            return y.reshape(*shape[:-1], self.out_features)
        x2 = x.reshape(-1, self.in_features).float()  # (N, in)
        if kernel == "fbgemm":
            y = torch.ops.quantized.linear_dynamic(x2, self._packed_weight(), True)  # (N, out)
            return y.reshape(*shape[:-1], self.out_features).to(x.dtype)
        if self.activations == "dynamic":
            x_scale = (x2.abs().amax(dim=1, keepdim=True) / QMAX).clamp_min(1e-12)  # (N, 1) per token
        else:
            x_scale = self.input_scale.reshape(1, 1)
        xq = torch.round(x2 / x_scale).clamp(-QMAX, QMAX)  # (N, in) on the int8 grid
        if kernel == "int_mm" and x2.shape[0] > 16:
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
        return (
            f"in={self.in_features}, out={self.out_features}, activations={self.activations}, "
            f"weight_range={self.weight_range}"
        )


# ---- whole-model helpers ---------------------------------------------------------------------


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every `nn.Linear` by dotted path (subclasses such as NonDynamicallyQuantizable too)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def quantize_linears(
    model: nn.Module,
    activations: str = "dynamic",
    input_scales: dict[str, float] | None = None,
    weight_range: str | None = None,
    onednn: bool = False,
) -> dict[str, dict]:
    """Swap every nn.Linear under `model` for a QuantizedLinear in place; the module specs.

    weight_range: 'full', 'reduced' or None (`default_weight_range()`: this CPU's choice).
    onednn: run oneDNN's qlinear_pointwise where it is exact on this CPU.
    """
    layers = linear_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers to quantize")
    weight_range = weight_range or default_weight_range()
    specs = {}
    for name, linear in layers.items():
        scale = (input_scales or {}).get(name)
        q = QuantizedLinear.from_linear(linear, activations, scale, weight_range)
        q.use_onednn = onednn
        _set_module(model, name, q)
        specs[name] = q.spec()
    return specs


@torch.no_grad()
def observe_input_scales(model: nn.Module, run: Callable[[], object]) -> dict[str, float]:
    """Per-layer activation scale max|x| / 127 of every (quantized) linear's input while `run()` runs."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantizedLinear))}
    amax: dict[str, float] = dict.fromkeys(layers, 0.0)

    def hook(name):
        def record(_module, inputs):
            amax[name] = max(amax[name], float(inputs[0].detach().abs().max()))

        return record

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in layers.items()]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return {name: max(v, 1e-8) / QMAX for name, v in amax.items()}


def calibrate(model: nn.Module, run: Callable[[], object]) -> int:
    """Static activation scales for every QuantizedLinear under `model`, observed while `run()` runs."""
    scales = observe_input_scales(model, run)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    for name, layer in layers.items():
        layer.set_input_scale(scales[name])
    return len(layers)


def kernels_used(model: nn.Module) -> dict[str, int]:
    """How many QuantizedLinear layers under `model` run each kernel on this CPU."""
    counts: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, QuantizedLinear):
            counts[m.kernel] = counts.get(m.kernel, 0) + 1
    return counts
