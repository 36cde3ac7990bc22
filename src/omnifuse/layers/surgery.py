"""Module surgery: swap submodules by dotted path, and rebuild a compressed model from its config.

A compressed artifact's `config.json` carries a ``"compression"`` entry::

    {"method": "dynamic-int8",
     "dtype": "float16",                       # optional: cast the whole model first
     "modules": {"towers.text.model.encoder.layer.0.attention.self.query":
                     {"kind": "quantized_linear", "in_features": 64, "out_features": 64,
                      "bias": true, "activations": "dynamic", "weight_range": "full"}, ...},
     "attrs": {"towers.text.model.encoder.layer.0.attention.self": {"num_attention_heads": 1}},
     ...}                                      # anything else is information (sparsity, ranks)

`apply_compression(model, compression)` turns a freshly built model (random weights) into the
compressed architecture, so that `model.safetensors` then loads strictly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnifuse.layers.low_rank import LowRankLinear
from omnifuse.layers.quantized import QuantizedLinear

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def get_module(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise ValueError(f"the model has no submodule '{path}'") from err


def set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = get_module(model, parent_path) if parent_path else model
    if not hasattr(parent, name):
        raise ValueError(f"the model has no submodule '{path}'")
    setattr(parent, name, module)


def build_module(spec: dict[str, Any]) -> nn.Module:
    """A module (random weights) from its spec: `linear`, `quantized_linear` or `low_rank_linear`."""
    kind = spec.get("kind")
    i, o, bias = spec["in_features"], spec["out_features"], spec.get("bias", True)
    if kind == "linear":
        return nn.Linear(i, o, bias=bias)
    if kind == "quantized_linear":
        return QuantizedLinear(
            i, o, bias, spec.get("activations", "dynamic"), spec.get("weight_range", "full")
        )
    if kind == "low_rank_linear":
        return LowRankLinear(i, o, spec["rank"], bias)
    raise ValueError(
        f"unknown compressed module kind {kind!r}; known: linear, quantized_linear, low_rank_linear"
    )


def apply_compression(model: nn.Module, compression: dict[str, Any]) -> nn.Module:
    """Rebuild the compressed architecture described by a config's ``"compression"`` entry."""
    if not isinstance(compression, dict):
        raise ValueError(f"'compression' in config.json must be an object, got {type(compression).__name__}")
    dtype = compression.get("dtype")
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"unknown compression dtype {dtype!r}; known: {sorted(DTYPES)}")
        model.to(DTYPES[dtype])
    for path, spec in (compression.get("modules") or {}).items():
        set_module(model, path, build_module(spec))
    for path, attrs in (compression.get("attrs") or {}).items():
        module = get_module(model, path)
        for name, value in attrs.items():
            setattr(module, name, value)
    return model
