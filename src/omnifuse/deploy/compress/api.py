"""`compress(model_dir, method, out, data=...)`: run a method, write the artifact, measure before/after."""

from __future__ import annotations

import copy
import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from omnifuse.deploy.compress.artifact import load_source, save_compressed
from omnifuse.deploy.compress.base import METHODS, CompressContext, CompressOptions, MethodResult
from omnifuse.deploy.compress.data import fixed_batch, read_split
from omnifuse.deploy.compress.measure import compare_speed, size_stats
from omnifuse.deploy.compress.qat import quantization_aware_finetune
from omnifuse.deploy.compress.quality import measure_quality
from omnifuse.models.factory import load_model
from omnifuse.utils.io import atomic_write

REPORT_FILE = "compress_report.json"
INT8_METHODS = {"dynamic-int8": "dynamic", "static-int8": "static"}


@dataclass
class CompressReport:
    """Before/after figures of one compression run (also written as `out/compress_report.json`).

    before / after: params, nonzero, weight_bytes, file_bytes, dir_bytes, items_per_s and
    `quality` (metric -> value); ratios: after / before for sizes and speed; quality_delta:
    after - before per metric.
    """

    method: str
    source: str
    out: str
    before: dict[str, Any]
    after: dict[str, Any]
    ratios: dict[str, float]
    quality_delta: dict[str, float]
    primary_metric: str
    details: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    qat: dict[str, Any] | None = None
    speed: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        """One row per figure: before, after, change."""
        rows = []
        for key in ("params", "nonzero", "file_bytes", "items_per_s"):
            b, a = self.before[key], self.after[key]
            rows.append({"figure": key, "before": b, "after": a, "change": f"x{a / b:.3f}" if b else "-"})
        for key, b in self.before["quality"].items():
            a = self.after["quality"].get(key, float("nan"))
            rows.append(
                {"figure": key, "before": round(b, 4), "after": round(a, 4), "change": f"{a - b:+.4f}"}
            )
        return rows


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _measure(model, directory: Path, samples, opts: CompressOptions) -> dict[str, Any]:
    quality = measure_quality(model, samples, opts.label_key, batch_size=128)
    return {**size_stats(model, directory).to_dict(), "quality": quality.metrics, "_primary": quality.primary}


def compress(
    model: str | Path,
    method: str,
    out: str | Path,
    data: str | Path,
    calib: str | Path | None = None,
    train: str | Path | None = None,
    options: CompressOptions | None = None,
    text_column: str = "captions",
) -> CompressReport:
    """Compress the artifact `model` with `method` into the new artifact `out` and report.

    data: the split quality is measured on (and the speed batch taken from); calib: the
    calibration split (static int8); train: fine-tuning data (recovery, QAT, distillation).
    """
    opts = options or CompressOptions()
    if method not in METHODS:
        raise ValueError(f"unknown compression method '{method}'; known: {', '.join(sorted(METHODS))}")
    out = Path(out)
    source, config, source_dir = load_source(model)
    if out.resolve() == source_dir.resolve():
        raise ValueError(f"--out {out} is the source artifact; write the compressed model to a new directory")
    if opts.max_drop is not None and method in INT8_METHODS and train is None:
        raise ValueError(
            "--max-drop runs quantization-aware training when the drop is too large: pass --train"
        )
    ctx = CompressContext(
        source_dir,
        config,
        opts,
        eval_samples=read_split(str(data), source, "evaluation", text_column),
        calib_samples=read_split(str(calib), source, "calibration", text_column, allow_empty=True)
        if calib is not None
        else None,
        train_samples=read_split(str(train), source, "training", text_column) if train is not None else None,
    )
    torch.manual_seed(opts.seed)
    result: MethodResult = METHODS[method](copy.deepcopy(source), ctx)
    save_compressed(result.model, result.config or config, out, result.compression)
    compressed = load_model(out)  # what a user gets: measured after a round trip through the files

    before = _measure(source, source_dir, ctx.eval_samples, opts)
    after = _measure(compressed, out, ctx.eval_samples, opts)
    primary = before.pop("_primary")
    after.pop("_primary")
    qat_info = None
    drop = before["quality"][primary] - after["quality"][primary]
    if opts.max_drop is not None and method in INT8_METHODS and drop > opts.max_drop:
        qat_result = quantization_aware_finetune(copy.deepcopy(source), ctx, INT8_METHODS[method])
        save_compressed(qat_result.model, config, out, qat_result.compression)
        compressed = load_model(out)
        ptq_quality = after["quality"]
        after = _measure(compressed, out, ctx.eval_samples, opts)
        after.pop("_primary")
        qat_info = {
            "triggered_by_drop": drop,
            "max_drop": opts.max_drop,
            "ptq_quality": ptq_quality,
            **qat_result.details,
        }
        result = qat_result

    batch = fixed_batch(source, ctx.eval_samples, opts.speed_batch)
    speed = compare_speed({"before": source, "after": compressed}, batch, rounds=opts.speed_rounds)
    before["items_per_s"], after["items_per_s"] = speed["before"], speed["after"]
    report = CompressReport(
        method=method,
        source=str(source_dir),
        out=str(out),
        before=before,
        after=after,
        ratios={
            "params": _ratio(after["params"], before["params"]),
            "file_bytes": _ratio(after["file_bytes"], before["file_bytes"]),
            "speedup": _ratio(after["items_per_s"], before["items_per_s"]),
        },
        quality_delta={k: after["quality"].get(k, math.nan) - v for k, v in before["quality"].items()},
        primary_metric=primary,
        details=result.details,
        options={k: v for k, v in asdict(opts).items() if k != "progress"},
        qat=qat_info,
        speed={
            "batch": len(next(iter(batch.values()))),
            "threads": torch.get_num_threads(),
            "device": "cpu",
            "machine": platform.processor() or platform.machine(),
        },
    )
    atomic_write(Path(out) / REPORT_FILE, json.dumps(report.to_dict(), indent=2, default=str))
    return report
