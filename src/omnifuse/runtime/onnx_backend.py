"""The ONNX Runtime backend: an artifact written by `omnifuse export --format onnx`.

Same API as the PyTorch backend (`embed`, `classify`, `modalities`, `fingerprint`,
`class_names`); preprocessing comes from the artifact's `processor.json`. `variant="int8"`
runs the `<graph>.int8.onnx` files (also chosen when they are the only ones present).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse._optional import require
from omnifuse.data.processors import Processor
from omnifuse.runtime.base import Predictor
from omnifuse.runtime.contract import ONNX_DIR, REPORT_FILE, placeholder_inputs, present_flag, session_inputs

VARIANTS = ("auto", "fp32", "int8")


def graph_path(directory: Path, name: str, variant: str) -> Path:
    """onnx/<name>.onnx (fp32) or onnx/<name>.int8.onnx; 'auto' prefers fp32 when both exist."""
    fp32, int8 = directory / "onnx" / f"{name}.onnx", directory / "onnx" / f"{name}.int8.onnx"
    if variant == "int8" or (variant == "auto" and not fp32.exists() and int8.exists()):
        path = int8
    else:
        path = fp32
    if not path.exists():
        have = sorted(p.name for p in (directory / "onnx").glob("*.onnx"))
        hint = " (export with --quantize int8)" if path is int8 else ""
        raise ValueError(f"{directory} has no {path.relative_to(directory)}{hint}; it has {have}")
    return path


class OnnxPredictor(Predictor):
    backend = "onnx"

    def __init__(
        self,
        directory: str | os.PathLike,
        batch_size: int = 32,
        threads: int | None = None,
        variant: str = "auto",
        providers: list[str] | None = None,
    ):
        from omnifuse.models.artifact import read_config

        directory = Path(directory)
        if variant not in VARIANTS:
            raise ValueError(f"unknown ONNX variant '{variant}'; known: {list(VARIANTS)}")
        if not (directory / "onnx").is_dir():
            raise ValueError(
                f"{directory} is not an exported ONNX artifact (no onnx/); run `omnifuse export`"
            )
        config = read_config(directory)
        super().__init__(config, Processor.load(directory), batch_size)
        self.directory, self.variant, self.threads = directory, variant, threads
        self.providers = providers or ["CPUExecutionProvider"]
        self._sessions: dict[str, Any] = {}
        graphs = config.get("export", {}).get("graphs") or []
        for name in graphs:  # fail at load time, not at the first request
            graph_path(directory, name, variant)
        self.graphs = list(graphs)
        if self.graphs and self.variant_used == "int8":
            self._check_int8(config.get("export", {}).get("int8") or {})

    def _check_int8(self, int8: dict[str, Any]) -> None:
        """Refuse int8 graphs whose weights this CPU's kernels would get wrong (full range, no VNNI)."""
        from omnifuse.utils.cpu import cpu_info, unmet_requirements

        # artifacts from before the field have full-range weights
        why = unmet_requirements(int8.get("requires", ["vnni"]), cpu_info(), onednn=False)
        if why is not None:
            weights = int8.get("weight_range", "full")
            raise ValueError(
                f"{self.directory}: the int8 ONNX graphs ({weights}-range weights) {why}, so their "
                "results would be wrong here. Re-export with --quantize int8 --int8-weights reduced "
                "(right on every x86 CPU with AVX2), or load variant='fp32'"
            )

    @property
    def variant_used(self) -> str:
        """'int8' or 'fp32': which files the sessions run."""
        return (
            "int8"
            if graph_path(self.directory, self.graphs[0], self.variant).name.endswith(".int8.onnx")
            else "fp32"
        )

    def session(self, name: str):
        if name not in self._sessions:
            ort = require("onnxruntime", "deploy", "the ONNX runtime backend")
            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            path = graph_path(self.directory, name, self.variant)
            self._sessions[name] = ort.InferenceSession(str(path), options, providers=self.providers)
        return self._sessions[name]

    def _run(self, name: str, batch: dict[str, torch.Tensor]) -> np.ndarray:
        session = self.session(name)
        return session.run(None, session_inputs(session, batch))[0]

    def _embed_batch(self, modality: str, batch: dict[str, torch.Tensor]) -> np.ndarray:
        if modality not in self.graphs:
            raise ValueError(f"{self.directory} has no '{modality}' graph; it has {self.graphs}")
        return self._run(modality, batch).astype(np.float32, copy=False)  # (B, E)

    def _classify_batch(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        if "classifier" not in self.graphs:
            return super()._classify_batch(batch)
        n = next(iter(batch.values())).shape[0]
        feeds = dict(batch)
        for m in self.modalities:
            present = m in {k for k in batch if not k.endswith("_mask")}
            if not present:  # stand-ins, ignored by the model through the flag
                feeds.update(placeholder_inputs(m, self.processor, n))
            feeds.setdefault(present_flag(m), torch.full((n,), present, dtype=torch.bool))
        return self._run("classifier", feeds)  # (B, C)

    def describe(self) -> dict[str, Any]:
        report = self.directory / ONNX_DIR / REPORT_FILE
        return json.loads(report.read_text()) if report.exists() else {}


def load_onnx(directory: str | os.PathLike, batch_size: int = 32, **options: Any) -> OnnxPredictor:
    """`BACKENDS["onnx"]`: options are `threads`, `variant` ('auto', 'fp32', 'int8'), `providers`."""
    return OnnxPredictor(directory, batch_size=batch_size, **options)
