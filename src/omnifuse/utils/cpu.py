"""What this CPU can do: its model name and the ISA extensions that choose our int8 and bf16 kernels.

One function, `cpu_info()`, used by the benchmarks, export, compression, the runtime and the demo.

Two views of the same CPU:

- `flags`: what the hardware has (``/proc/cpuinfo``). ONNX Runtime (MLAS) and fbgemm pick their
  kernels from it.
- `onednn_flags`: what oneDNN (PyTorch's ``torch._int_mm``, ``qlinear_pointwise``, bf16 matmuls)
  will use: the hardware flags limited by ``ONEDNN_MAX_CPU_ISA`` when it is set (e.g. ``AVX2``
  runs oneDNN's AVX2 code on a bigger CPU, which is how the AVX2 path is tested anywhere).

Why it matters: without VNNI (AVX512-VNNI, AVX-VNNI or AMX-INT8), x86 int8 kernels multiply
uint8 x int8 with ``vpmaddubsw``, whose int16 pair sums saturate for full-range int8 weights;
7-bit ("reduced range") weights keep every pair sum below 2**15 and the result exact. Without
AVX512-BF16 or AMX-BF16, bf16 math is emulated; on an AVX2-only oneDNN it falls to reference
kernels that are tens of times slower than fp32.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache

#: The ISA extensions we report, in order (Linux /proc/cpuinfo names).
ISA_FLAGS: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx_vnni",
    "avx512_vnni",
    "avx512_bf16",
    "amx_int8",
    "amx_bf16",
)

#: Any of these gives exact full-range int8 dot products (no int16 saturation).
VNNI_FLAGS = frozenset({"avx_vnni", "avx512_vnni", "amx_int8"})
#: Any of these runs bf16 arithmetic natively.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

_BASE = {"avx2"}
_AVX512 = _BASE | {"avx512f"}
_VNNI512 = _AVX512 | {"avx512_vnni", "avx_vnni"}
_BF16 = _VNNI512 | {"avx512_bf16"}
_AMX = _BF16 | {"amx_int8", "amx_bf16"}
#: ONEDNN_MAX_CPU_ISA value -> the flags of ISA_FLAGS oneDNN may use under it.
ONEDNN_ISA_LIMITS: dict[str, frozenset[str]] = {
    "SSE41": frozenset(),
    "AVX": frozenset(),
    "AVX2": frozenset(_BASE),
    "AVX2_VNNI": frozenset(_BASE | {"avx_vnni"}),
    "AVX2_VNNI_2": frozenset(_BASE | {"avx_vnni"}),
    "AVX512_CORE": frozenset(_AVX512),
    "AVX512_CORE_VNNI": frozenset(_VNNI512),
    "AVX512_CORE_BF16": frozenset(_BF16),
    "AVX512_CORE_FP16": frozenset(_BF16),
    "AVX10_1_512": frozenset(_BF16),
    "AVX512_CORE_AMX": frozenset(_AMX),
    "AVX10_1_512_AMX": frozenset(_AMX),
    "AVX512_CORE_AMX_FP16": frozenset(_AMX),
    "AVX10_1_512_AMX_FP16": frozenset(_AMX),
    "AVX10_2_512": frozenset(_BF16),
    "AVX10_2_512_AMX_2": frozenset(_AMX),
    "ALL": frozenset(ISA_FLAGS),
    "DEFAULT": frozenset(ISA_FLAGS),
}


@dataclass(frozen=True)
class CpuInfo:
    """A CPU's model name and ISA flags (see the module docstring for the two views)."""

    model: str
    """The model name, e.g. 'AMD EPYC 7B13' or 'Intel(R) Xeon(R) Platinum 8480+'."""
    flags: frozenset[str]
    """The flags of ISA_FLAGS the hardware has."""
    onednn_max_isa: str | None = None
    """ONEDNN_MAX_CPU_ISA as set in the environment (upper-cased), or None."""

    @property
    def isa(self) -> list[str]:
        """The hardware's flags of ISA_FLAGS, in that order."""
        return [f for f in ISA_FLAGS if f in self.flags]

    @property
    def onednn_flags(self) -> frozenset[str]:
        """The flags oneDNN will use: the hardware's, limited by ONEDNN_MAX_CPU_ISA."""
        if self.onednn_max_isa is None:
            return self.flags
        limit = ONEDNN_ISA_LIMITS.get(self.onednn_max_isa)
        return self.flags if limit is None else self.flags & limit

    @property
    def vnni(self) -> bool:
        """The hardware has exact int8 dot products (ONNX Runtime's and fbgemm's view)."""
        return bool(self.flags & VNNI_FLAGS)

    @property
    def onednn_vnni(self) -> bool:
        """oneDNN's int8 kernels (torch._int_mm, qlinear_pointwise) have exact int8 dot products."""
        return bool(self.onednn_flags & VNNI_FLAGS)

    @property
    def onednn_bf16(self) -> bool:
        """oneDNN runs bf16 natively (AVX512-BF16 or AMX-BF16 within ONEDNN_MAX_CPU_ISA)."""
        return bool(self.onednn_flags & BF16_FLAGS)

    @property
    def onednn_bf16_usable(self) -> bool:
        """bf16 in oneDNN is native or emulated with AVX-512; on AVX2 it falls to slow reference code."""
        return self.onednn_bf16 or "avx512f" in self.onednn_flags

    def describe(self) -> str:
        """One line for logs and reports: model, ISA, and oneDNN's limit if any."""
        isa = " ".join(self.isa) or "no AVX2"
        text = f"{self.model} ({isa})"
        if self.onednn_max_isa is not None:
            used = " ".join(f for f in ISA_FLAGS if f in self.onednn_flags) or "no AVX2"
            text += f"; oneDNN limited by ONEDNN_MAX_CPU_ISA={self.onednn_max_isa} to: {used}"
        return text

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "isa": self.isa,
            "onednn_max_isa": self.onednn_max_isa,
            "onednn_isa": [f for f in ISA_FLAGS if f in self.onednn_flags],
        }


def missing_int8_feature() -> str:
    """The words that name what a CPU without VNNI lacks (for error messages)."""
    return "AVX512-VNNI, AVX-VNNI or AMX-INT8 (exact int8 dot products)"


def unmet_requirements(requires: list[str] | tuple[str, ...], info: CpuInfo, onednn: bool) -> str | None:
    """None when this CPU meets an int8 artifact's `requires` (e.g. ['vnni']), else why not.

    onednn: judge oneDNN's view (PyTorch int8 kernels) rather than the hardware's (ONNX Runtime).
    """
    missing = []
    for need in requires:
        if need == "vnni":
            if not (info.onednn_vnni if onednn else info.vnni):
                missing.append(missing_int8_feature())
        else:
            missing.append(f"unknown requirement '{need}'")
    if not missing:
        return None
    return f"needs {', '.join(missing)}, which this CPU ({info.describe()}) lacks"


@lru_cache(maxsize=1)
def _hardware() -> tuple[str, frozenset[str]]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux: no flags we can trust
        pass
    return model or platform.processor() or platform.machine() or "unknown CPU", frozenset(flags)


def cpu_info() -> CpuInfo:
    """This machine's CPU; ONEDNN_MAX_CPU_ISA is read on every call (tests set it)."""
    model, flags = _hardware()
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return CpuInfo(model, flags & frozenset(ISA_FLAGS), limit.strip().upper() if limit else None)


def bf16_is_fast() -> bool:
    """bf16 autocast pays off on GPUs and where oneDNN runs bf16 natively (AMX or AVX512-BF16)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_info().onednn_bf16
