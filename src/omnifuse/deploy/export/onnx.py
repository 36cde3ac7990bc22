"""`export_onnx`: an omnifuse model -> a self-contained ONNX artifact directory, validated.

The artifact holds `config.json`, `processor.json` (+ `tokenizer/`) and `onnx/<graph>.onnx`
(+ `<graph>.int8.onnx` with `quantize="int8"`) and `onnx/export_report.json`. Export uses
`torch.onnx.export` (the TorchScript exporter, `dynamo=False`: with transformers 5 towers it
is the one that traces BERT/ViT/CLIP reliably with dynamic batch and sequence axes). Every
graph is run with ONNX Runtime against the PyTorch model before the directory appears: the
export happens in a temporary directory that replaces `out` at the end
(`omnifuse.utils.io.atomic_dir`), so a failed parity check leaves nothing behind and an
interrupted export leaves the previous artifact in place.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse._optional import require
from omnifuse.deploy.export.graphs import GraphSpec, graph_specs
from omnifuse.deploy.export.parity import ExportParityError, ParityResult, compare
from omnifuse.deploy.export.samples import sample_batches
from omnifuse.layers.quantized import int8_requirements
from omnifuse.models.artifact import CONFIG_FILE, write_config
from omnifuse.models.registry import spec_of
from omnifuse.runtime.contract import REPORT_FILE, runtime_config, session_inputs
from omnifuse.utils.cpu import cpu_info
from omnifuse.utils.io import atomic_dir, atomic_write

log = logging.getLogger(__name__)

FORMATS = ("onnx",)
QUANTIZE = ("int8",)
#: ORT transformer-optimizer model types per HF tower class (fused attention / layer norm / GELU).
ORT_MODEL_TYPES = {"BertModel": "bert", "ViTModel": "vit", "CLIPVisionModel": "clip", "CLIPTextModel": "clip"}


@dataclass
class ExportOptions:
    opset: int = 17
    optimize: bool = False
    """Apply ONNX Runtime's transformer fusions (falls back to its generic offline graph optimizations)."""
    quantize: str | None = None
    """"int8": also write `<graph>.int8.onnx` (ORT dynamic quantization, int8 weights)."""
    atol: float = 1e-4
    """fp32 graphs: max abs difference allowed against PyTorch."""
    min_cosine: float = 0.9999
    """fp32 graphs: minimum mean cosine to PyTorch's outputs."""
    int8_min_cosine: float = 0.99
    """int8 graphs: minimum mean cosine to the fp32 PyTorch outputs (no atol: rounding is intended)."""
    int8_weights: str | None = None
    """int8 graphs: 'reduced' (7-bit weights: right on every x86 CPU with AVX2), 'full' (int8
    weights: right only with VNNI or AMX-INT8; recorded, and checked by `runtime.load`) or None
    ('full' where this CPU has VNNI, else 'reduced')."""

    def __post_init__(self) -> None:
        if self.int8_weights not in (None, "full", "reduced"):
            raise ValueError(f"int8_weights must be 'full' or 'reduced', got '{self.int8_weights}'")
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise ValueError(f"unknown quantization '{self.quantize}'; known: {list(QUANTIZE)}")
        if not 7 <= self.opset <= 21:
            raise ValueError(f"opset {self.opset} is outside the supported range 7..21")
        if self.atol <= 0:
            raise ValueError(f"atol must be positive, got {self.atol}")


@dataclass
class ExportReport:
    """What was exported and how well it agrees with the PyTorch model (`export_report.json`)."""

    directory: str
    model_type: str
    format: str
    options: dict[str, Any]
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    parity: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _session(path: Path, threads: int | None = None):
    ort = require("onnxruntime", "deploy", "ONNX export")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_graph(spec: GraphSpec, example: dict[str, torch.Tensor], path: Path, opset: int) -> None:
    args = tuple(example[n] for n in spec.input_names)
    try:
        _torch_onnx_export(spec, args, path, opset)
    except torch.onnx.errors.OnnxExporterError as err:
        quantized = sorted(
            {type(m).__name__ for m in spec.module.modules() if "Quantized" in type(m).__name__}
        )
        hint = (
            f" The model has {quantized} layers (int8 matmuls, aten::_int_mm), which torch.onnx cannot "
            "export: export the fp32 (or fp16/pruned/low-rank) artifact with --quantize int8 instead."
            if quantized
            else ""
        )
        raise ValueError(f"torch.onnx cannot export the {spec.name} graph: {err}.{hint}") from err


def _torch_onnx_export(spec: GraphSpec, args: tuple, path: Path, opset: int) -> None:
    with torch.no_grad():
        torch.onnx.export(
            spec.module,
            args,
            str(path),
            input_names=spec.input_names,
            output_names=[spec.output_name],
            dynamic_axes=spec.dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def optimize_graph(path: Path, hf_config: Any | None) -> str:
    """Rewrite `path` in place with ORT's fusions; returns which optimizer was used."""
    ort = require("onnxruntime", "deploy", "ONNX graph optimization")
    model_type = ORT_MODEL_TYPES.get(type(hf_config).__name__.replace("Config", "Model"))
    if model_type is not None:
        try:
            from onnxruntime.transformers.optimizer import optimize_model

            heads, hidden = hf_config.num_attention_heads, hf_config.hidden_size
            optimized = optimize_model(str(path), model_type=model_type, num_heads=heads, hidden_size=hidden)
            optimized.save_model_to_file(str(path))
            fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
            return f"onnxruntime.transformers.optimizer ({model_type}): {fused}"
        except Exception as err:  # an unrecognised pattern: fall back to the generic passes
            log.warning("transformer fusions failed for %s (%s); using generic optimizations", path.name, err)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED

    def optimize(tmp: Path) -> None:
        options.optimized_model_filepath = str(tmp)
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    atomic_write(path, optimize)
    return "onnxruntime SessionOptions ORT_ENABLE_EXTENDED (offline)"


def int8_weight_range(requested: str | None) -> str:
    """The weight range of ONNX int8 graphs: as requested, else 'full' where this CPU has VNNI.

    ONNX Runtime (MLAS) multiplies uint8 activations by int8 weights; without VNNI its AVX2
    kernel (`vpmaddubsw`) saturates int16 pair sums for full-range weights, so those CPUs get
    7-bit weights (`reduce_range=True`, ONNX Runtime's own advice).
    """
    return requested or ("full" if cpu_info().vnni else "reduced")


def quantize_graph(src: Path, dst: Path, weight_range: str = "reduced") -> str:
    quant = require("onnxruntime.quantization", "deploy", "int8 quantization")
    import onnx

    quant.quantize_dynamic(
        str(src),
        str(dst),
        weight_type=quant.QuantType.QInt8,
        reduce_range=weight_range == "reduced",
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    bits = "7-bit (reduced-range)" if weight_range == "reduced" else "int8"
    return f"onnxruntime.quantization.quantize_dynamic ({bits} weights, dynamic uint8 activations)"


def check_graph(
    spec: GraphSpec,
    path: Path,
    batches: list[dict[str, torch.Tensor]],
    reference: list[np.ndarray],
    variant: str,
    atol: float | None,
    min_cosine: float,
) -> ParityResult:
    """Run the graph on every sample batch and compare with the PyTorch outputs; raise if off."""
    session = _session(path)
    exported = [session.run(None, session_inputs(session, b))[0] for b in batches]
    result = compare(spec.name, variant, reference, exported, batches, atol, min_cosine)
    if not result.passed:
        limit = f"max abs diff <= {atol} and " if atol is not None else ""
        raise ExportParityError(
            f"ONNX {spec.name} graph ({variant}) does not match the PyTorch model: max abs diff "
            f"{result.max_abs_diff:.3g}, mean cosine {result.mean_cosine:.6f} (required: {limit}"
            f"mean cosine >= {min_cosine}); no artifact was written. Try another --opset, or "
            "export without --optimize/--quantize to find the step that breaks parity"
        )
    return result


def _reference_outputs(spec: GraphSpec, batches: list[dict[str, torch.Tensor]]) -> list[np.ndarray]:
    with torch.no_grad():
        return [spec.module(*(b[n] for n in spec.input_names)).float().numpy() for b in batches]


def export_onnx(
    model_or_dir: nn.Module | str | os.PathLike,
    out: str | os.PathLike,
    options: ExportOptions | None = None,
    overwrite: bool = False,
) -> ExportReport:
    """Export, validate with ONNX Runtime and write the artifact at `out` (all or nothing)."""
    require("onnx", "deploy", "ONNX export")
    require("onnxruntime", "deploy", "ONNX export")
    options = options or ExportOptions()
    source = None
    if isinstance(model_or_dir, nn.Module):
        model = model_or_dir
    else:
        from omnifuse.models.artifact import read_config, resolve_artifact_dir

        source = read_config(resolve_artifact_dir(model_or_dir))
        model = _load(model_or_dir)
    was_training = model.training
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).float()  # export and parity run in fp32; leave the caller's as is
    model.eval()
    try:
        return _export_model(model, out, options, overwrite, source)
    finally:
        model.train(was_training)


def _export_model(
    model: nn.Module, out: str | os.PathLike, options: ExportOptions, overwrite: bool, source: dict | None
) -> ExportReport:
    specs = graph_specs(model)  # raises for a model type that cannot be exported
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} already exists; choose another --out or pass --overwrite")
    start = time.perf_counter()
    reports: list[ExportReport] = []

    def write(tmp: Path) -> None:
        report = _export_into(model, specs, tmp, options, source)
        report.directory = str(out)
        report.seconds = round(time.perf_counter() - start, 2)
        (tmp / "onnx" / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2))
        reports.append(report)

    atomic_dir(out, write, marker=CONFIG_FILE)  # the old artifact stays until the new one is in
    return reports[0]


def _load(directory: str | os.PathLike) -> nn.Module:
    from omnifuse.models.factory import load_model

    return load_model(directory)


def _export_into(
    model: nn.Module, specs: list[GraphSpec], tmp: Path, options: ExportOptions, source: dict | None
) -> ExportReport:
    (tmp / "onnx").mkdir()
    config = runtime_config(model, source)
    config["export"] = {"format": "onnx", "graphs": [s.name for s in specs], "quantize": options.quantize}
    weight_range = int8_weight_range(options.int8_weights)
    if options.quantize == "int8":  # what the int8 graphs need; runtime.load checks it
        config["export"]["int8"] = {"weight_range": weight_range, "requires": int8_requirements(weight_range)}
    write_config(config, tmp / CONFIG_FILE)
    model.processor.save(tmp)
    report = ExportReport("", spec_of(model).name, "onnx", asdict(options), versions=_versions())
    for spec in specs:
        batches = sample_batches(model, spec)
        reference = _reference_outputs(spec, batches)
        path = tmp / "onnx" / f"{spec.name}.onnx"
        export_graph(spec, batches[-1], path, options.opset)
        info: dict[str, Any] = {"inputs": spec.input_names, "output": spec.output_name, "files": [path.name]}
        if options.quantize == "int8":  # from the plain graph: ORT's quantizer does not know fused ops
            qpath = path.with_name(f"{spec.name}.int8.onnx")
            info["quantized_with"] = quantize_graph(path, qpath, weight_range)
            info["files"].append(qpath.name)
            int8 = check_graph(spec, qpath, batches, reference, "int8", None, options.int8_min_cosine)
        if options.optimize:
            info["optimized_with"] = optimize_graph(path, spec.hf_config)
        fp32 = check_graph(spec, path, batches, reference, "fp32", options.atol, options.min_cosine)
        report.parity.append(fp32.to_dict())
        if options.quantize == "int8":
            report.parity.append(int8.to_dict())
        report.graphs[spec.name] = info
        log.info(
            "exported %s: max abs diff %.2e, mean cosine %.6f", spec.name, fp32.max_abs_diff, fp32.mean_cosine
        )
    return report
