"""`omnifuse bench infer`: inference speed, memory and agreement of deployment configurations.

In one process, on the same inputs, each configuration embeds the same items: the HF-eager
fp32 reference, torch bf16 autocast, torch dynamic int8, ONNX Runtime fp32, ONNX Runtime's
stock dynamic int8 and omnifuse's best CPU configuration. Per configuration: items/s at each
batch size (warm-up, then a fixed number of iterations or a time budget), p50/p99 latency at
batch 1, peak memory (RSS above the row's starting RSS, sampled from /proc/self/statm every
5 ms) and the mean cosine of its embeddings to the fp32 reference (plus the zero-shot
accuracy of an artifact on `--data`).
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.processors import ImageProcessor, Processor
from omnifuse.utils.cpu import cpu_info

log = logging.getLogger(__name__)

#: random-weight towers to time without downloading: name -> (modality, HF config class, fields, embed dim)
ARCHS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "clip-vit-b32-vision": (
        "image",
        "CLIPVisionConfig",
        dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            patch_size=32,
            image_size=224,
        ),
        512,
    ),
    "clip-vit-b16-vision": (
        "image",
        "CLIPVisionConfig",
        dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            patch_size=16,
            image_size=224,
        ),
        512,
    ),
    "clip-vit-tiny": (
        "image",
        "CLIPVisionConfig",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            patch_size=8,
            image_size=32,
        ),
        16,
    ),
}

CONFIGS = (
    "hf-eager-fp32",
    "torch-bf16",
    "torch-int8-dynamic",
    "ort-fp32",
    "ort-int8-dynamic",
    "omnifuse-best",
)


class TowerModel(nn.Module):
    """One HF tower + linear projection with a DualEncoder's `encode` (a random-weight bench model)."""

    model_type = "tower"

    def __init__(self, tower: nn.Module, projection: nn.Module, modality: str, processor: Processor):
        super().__init__()
        self.towers = nn.ModuleDict({modality: tower})
        self.projections = nn.ModuleDict({modality: projection})
        self.processor = processor

    @property
    def modalities(self) -> list[str]:
        return list(self.towers)

    def encode(self, modality: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = self.towers[modality](batch).pooled  # (B, D)
        return F.normalize(self.projections[modality](pooled).float(), dim=-1)  # (B, E)


def build_arch(name: str, seed: int = 0) -> TowerModel:
    """A randomly initialised tower of a named architecture (see ARCHS)."""
    import transformers

    from omnifuse.encoders.hf import HFEncoder, hf_model_class, instantiate

    if name not in ARCHS:
        raise ValueError(f"unknown bench architecture '{name}'; known: {sorted(ARCHS)}")
    modality, config_name, fields, embed_dim = ARCHS[name]
    config = getattr(transformers, config_name)(**fields)
    torch.manual_seed(seed)
    hf = instantiate(hf_model_class(config_name.replace("Config", "Model")), config, None)
    tower = HFEncoder(hf, modality, pooling="pooler")
    processor = Processor({modality: ImageProcessor(size=config.image_size)})
    return TowerModel(tower, nn.Linear(config.hidden_size, embed_dim, bias=False), modality, processor).eval()


# ---- measurement helpers ------------------------------------------------------------------


class RssSampler:
    """Peak resident set size above a baseline, sampled from /proc/self/statm in a thread."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.base = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self.page
        except OSError:  # not Linux: fall back to the process's lifetime peak
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def machine_info(threads: int) -> dict[str, Any]:
    info = cpu_info()
    return {
        "cpu": info.model,
        "cpu_line": info.describe(),
        "cores": os.cpu_count(),
        "threads": threads,
        "isa": info.isa,
        "onednn_isa": info.to_dict()["onednn_isa"],
        "onednn_max_isa": info.onednn_max_isa,
        "torch": torch.__version__,
    }


def kernel_of(name: str) -> str:
    """Which kernels a configuration runs on this CPU (omnifuse-best says it itself)."""
    info = cpu_info()
    if name in ("hf-eager-fp32", "ort-fp32"):
        if name.startswith("ort"):
            return "ONNX Runtime MLAS fp32 (ignores ONEDNN_MAX_CPU_ISA)"
        onednn = f"; oneDNN limited to {info.onednn_max_isa}" if info.onednn_max_isa else ""
        return f"ATen/oneDNN fp32 (ATen {torch.backends.cpu.get_cpu_capability()}{onednn})"
    if name == "torch-bf16":
        if not info.onednn_bf16_usable:
            return "oneDNN bf16 reference kernels (no AVX-512: slow; leave it out with --configs)"
        return "oneDNN bf16 " + ("native (AVX512-BF16/AMX)" if info.onednn_bf16 else "emulated (AVX-512)")
    if name == "torch-int8-dynamic":
        return "fbgemm u8s8 dynamic (7-bit activations: exact without VNNI)"
    if name == "ort-int8-dynamic":
        if "amx_int8" in info.flags:
            return "MLAS u8s8 AMX-INT8"
        if info.vnni:
            return "MLAS u8s8 VNNI"
        return "MLAS u8s8 AVX2 (vpmaddubsw: full-range int8 weights saturate)"
    return ""


@dataclass
class InferRow:
    name: str
    description: str
    items_per_s: dict[str, float] = field(default_factory=dict)
    """batch size -> items/s."""
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    peak_rss_mb: float = float("nan")
    mean_cosine: float = float("nan")
    min_cosine: float = float("nan")
    setup_s: float = 0.0
    """Preparation: build, quantize, calibrate, trials, compile and the warm-up runs."""
    kernel: str = ""
    zero_shot_acc: float | None = None
    error: str | None = None


Runner = Callable[[dict[str, torch.Tensor]], np.ndarray]


def _torch_runner(model: nn.Module, modality: str, dtype: torch.dtype | None = None) -> Runner:
    def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None),
        ):
            return model.encode(modality, batch).float().numpy()  # (B, E)

    return run


def _torch_int8_dynamic(model: nn.Module, modality: str) -> Runner:
    with warnings.catch_warnings():  # torch.ao eager quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8
        )
    return _torch_runner(quantized, modality)


def export_tower(model: nn.Module, modality: str, example: dict[str, torch.Tensor], path: Path) -> Path:
    """The tower's ONNX graph (the exporter `omnifuse export` uses)."""
    from omnifuse.deploy.export.graphs import GraphSpec, TowerGraph, modality_inputs
    from omnifuse.deploy.export.onnx import export_graph

    axes = modality_inputs(modality)
    names = list(axes)
    spec = GraphSpec(
        modality,
        TowerGraph(model, modality, names).eval(),
        names,
        "embedding",
        {**axes, "embedding": {0: "batch"}},
    )
    export_graph(spec, example, path, opset=17)
    return path


def _ort_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    from omnifuse.deploy.export.parity import session_inputs

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, session_inputs(session, batch))[0]


def _ort_int8_stock(fp32: Path, threads: int) -> Runner:
    from onnxruntime.quantization import quantize_dynamic

    path = fp32.with_name(fp32.stem + ".int8.onnx")
    quantize_dynamic(str(fp32), str(path))  # stock settings: what a user gets by default
    return _ort_runner(path, threads)


DESCRIPTIONS = {
    "hf-eager-fp32": "reference: the HF tower + projection in PyTorch eager fp32",
    "torch-bf16": "PyTorch eager, torch.autocast('cpu', bfloat16)",
    "torch-int8-dynamic": "PyTorch eager, torch.ao.quantization.quantize_dynamic(nn.Linear, qint8)",
    "ort-fp32": "ONNX Runtime fp32 (omnifuse export graph, ORT_ENABLE_ALL)",
    "ort-int8-dynamic": "ONNX Runtime, stock onnxruntime.quantization.quantize_dynamic",
}


def build_runner(
    name: str, model: nn.Module, modality: str, example: dict, workdir: Path, threads: int
) -> tuple[Runner, str]:
    if name == "hf-eager-fp32":
        return _torch_runner(model, modality), DESCRIPTIONS[name]
    if name == "torch-bf16":
        return _torch_runner(model, modality, torch.bfloat16), DESCRIPTIONS[name]
    if name == "torch-int8-dynamic":
        return _torch_int8_dynamic(model, modality), DESCRIPTIONS[name]
    if name in ("ort-fp32", "ort-int8-dynamic"):
        fp32 = workdir / f"{modality}.onnx"
        if not fp32.exists():
            export_tower(model, modality, example, fp32)
        runner = _ort_runner(fp32, threads) if name == "ort-fp32" else _ort_int8_stock(fp32, threads)
        return runner, DESCRIPTIONS[name]
    raise ValueError(f"unknown inference configuration '{name}'; known: {list(CONFIGS)}")


# ---- the benchmark ------------------------------------------------------------------------


def _latency(run: Runner, batch: dict[str, torch.Tensor], iters: int, budget_s: float) -> tuple[float, float]:
    run(batch)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _slice(batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v[:n].contiguous() for k, v in batch.items()}


def _embed_all(run: Runner, pool: dict[str, torch.Tensor], batch_size: int) -> np.ndarray:
    n = len(next(iter(pool.values())))
    return np.concatenate(
        [run({k: v[i : i + batch_size] for k, v in pool.items()}) for i in range(0, n, batch_size)]
    )


def random_inputs(model: nn.Module, modality: str, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    from omnifuse.deploy.export.samples import raw_samples

    return model.processor({modality: raw_samples(modality, model.processor, n, 12, seed)})


def _interleaved_throughput(
    runners: dict[str, Runner], batch: dict[str, torch.Tensor], warmup: int, iters: int, budget_s: float
) -> dict[str, float]:
    """items/s per runner, timed in round-robin rounds so that load from other processes on a
    shared machine hits every configuration alike (their ratio is what the bench reports)."""
    for run in runners.values():
        for _ in range(warmup):
            run(batch)
    spent = dict.fromkeys(runners, 0.0)
    done = dict.fromkeys(runners, 0)
    start = time.perf_counter()
    while True:
        active = [
            n for n in runners if done[n] < iters and (done[n] < 2 or time.perf_counter() - start < budget_s)
        ]
        if not active:
            break
        for name in active:
            t0 = time.perf_counter()
            runners[name](batch)
            spent[name] += time.perf_counter() - t0
            done[name] += 1
    size = len(next(iter(batch.values())))
    return {n: done[n] * size / spent[n] for n in runners}


def bench_infer(
    model: nn.Module,
    modality: str = "image",
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    configs: tuple[str, ...] = CONFIGS,
    threads: int | None = None,
    warmup: int = 2,
    iters: int = 20,
    budget_s: float = 60.0,
    latency_iters: int = 50,
    pool: dict[str, torch.Tensor] | None = None,
    zero_shot: Callable[[Runner], float] | None = None,
    compile_best: bool = True,
    static_best: bool = True,
    calibration: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Time every configuration on the same processed inputs; rows plus the ratios the goal asks.

    Each configuration is built and checked (agreement, zero-shot, memory) in turn; then, per
    batch size, all are timed in interleaved rounds for at most `iters` runs or `budget_s` s.
    """
    if modality not in model.modalities:
        raise ValueError(f"the model has no '{modality}' tower; it has {model.modalities}")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown inference configuration(s) {unknown}; known: {list(CONFIGS)}")
    configs = ("hf-eager-fp32", *[c for c in configs if c != "hf-eager-fp32"])
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    model = model.float().eval()
    largest = max(batch_sizes)
    pool = pool if pool is not None else random_inputs(model, modality, max(largest, 32))
    timing_batch = _slice(pool, largest)
    rows: dict[str, InferRow] = {}
    runners: dict[str, Runner] = {}
    reference: np.ndarray | None = None
    with tempfile.TemporaryDirectory(prefix="omnifuse-bench-infer-") as tmp:
        for name in configs:
            gc.collect()
            row = rows[name] = InferRow(name, "")
            try:
                with RssSampler() as rss:
                    t0 = time.perf_counter()
                    if name == "omnifuse-best":
                        from omnifuse.deploy.export.torch_cpu import best_cpu_runner

                        calib = (
                            calibration
                            if calibration is not None
                            else random_inputs(model, modality, 16, seed=1)
                        )
                        run, row.description = best_cpu_runner(
                            model,
                            modality,
                            timing_batch,
                            compile_best,
                            calib if static_best else None,
                        )
                        choice = run.choice
                        row.kernel = f"{choice.name} {choice.kernels or ''}".strip()
                        log.info("omnifuse-best: %s", row.description)
                    else:
                        run, row.description = build_runner(
                            name, model, modality, timing_batch, Path(tmp), threads
                        )
                        row.kernel = kernel_of(name)
                    for b in sorted(set(batch_sizes)):  # warm-up (and compilation) at every size
                        run(_slice(pool, b))
                    emb = _embed_all(run, pool, largest)
                    row.setup_s = round(time.perf_counter() - t0, 2)
                    if zero_shot is not None:
                        row.zero_shot_acc = zero_shot(run)
                row.peak_rss_mb = round(rss.delta_mb, 1)
                reference = emb if reference is None else reference
                cos = (emb * reference).sum(-1) / np.maximum(
                    np.linalg.norm(emb, axis=-1) * np.linalg.norm(reference, axis=-1), 1e-12
                )
                row.mean_cosine, row.min_cosine = float(cos.mean()), float(cos.min())
                runners[name] = run
            except Exception as err:  # one configuration failing must not hide the others
                if name == "hf-eager-fp32":
                    raise
                log.warning("configuration %s failed: %s", name, err)
                row.error = f"{type(err).__name__}: {err}"
            log.info("%s ready in %.1f s (mean cosine %.5f)", name, row.setup_s, row.mean_cosine)
        for b in batch_sizes:
            for name, speed in _interleaved_throughput(
                runners, _slice(pool, b), warmup, iters, budget_s
            ).items():
                rows[name].items_per_s[str(b)] = round(speed, 2)
            log.info("batch %d: %s", b, {n: rows[n].items_per_s[str(b)] for n in runners})
        if 1 in batch_sizes:
            for name, run in runners.items():
                rows[name].p50_ms, rows[name].p99_ms = _latency(
                    run, _slice(pool, 1), latency_iters, budget_s / 4
                )
    return summarize(list(rows.values()), batch_sizes, threads)


def summarize(rows: list[InferRow], batch_sizes: tuple[int, ...], threads: int) -> dict[str, Any]:
    by_name = {r.name: r for r in rows}
    largest = str(max(batch_sizes))
    result: dict[str, Any] = {
        "machine": machine_info(threads),
        "batch_sizes": list(batch_sizes),
        "rows": [asdict(r) for r in rows],
        "memory": "peak RSS above the RSS at the start of the row (setup + runs), sampled every 5 ms",
    }
    best, peer = by_name.get("omnifuse-best"), by_name.get("ort-int8-dynamic")
    if best and peer and not best.error and not peer.error:
        result["best_vs_ort_int8"] = round(best.items_per_s[largest] / peer.items_per_s[largest], 3)
        result["best_mean_cosine"] = round(best.mean_cosine, 5)
    ref = by_name["hf-eager-fp32"]
    if best and not best.error:
        result["best_vs_fp32"] = round(best.items_per_s[largest] / ref.items_per_s[largest], 3)
        if best.zero_shot_acc is not None and ref.zero_shot_acc is not None:
            result["zero_shot_delta_points"] = round(100 * (best.zero_shot_acc - ref.zero_shot_acc), 2)
    return result


def format_rows(result: dict[str, Any]) -> str:
    from omnifuse.eval.report import format_table

    sizes = result["batch_sizes"]
    rows = []
    for r in result["rows"]:
        if r["error"]:
            rows.append({"config": r["name"], "kernel": f"failed: {r['error'][:80]}"})
            continue
        rows.append(
            {
                "config": r["name"],
                **{f"b{b} items/s": r["items_per_s"].get(str(b), float("nan")) for b in sizes},
                "p50 ms b1": r["p50_ms"],
                "p99 ms b1": r["p99_ms"],
                "peak MB": round(r["peak_rss_mb"]),
                "prep s": r["setup_s"],
                "cosine": f"{r['mean_cosine']:.5f}",
                "zero-shot": f"{100 * r['zero_shot_acc']:.1f}%" if r["zero_shot_acc"] is not None else "-",
                "kernel": r.get("kernel", ""),
            }
        )
    table = format_table(rows)
    best = next((r for r in result["rows"] if r["name"] == "omnifuse-best" and not r["error"]), None)
    footer = f"\nCPU: {result['machine']['cpu_line']}; {result['machine']['threads']} threads"
    if best:
        footer += f"\nomnifuse-best: {best['description']}"
    return table + footer


def zero_shot_eval(
    model: nn.Module, modality: str, data: str | os.PathLike, label_key: str, max_items: int
) -> tuple[Callable[[Runner], float], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A function (runner -> zero-shot top-1 accuracy on `data`), the processed items (the bench
    pool) and a calibration batch of other items.

    Class prompts are embedded once by the fp32 text tower; each configuration embeds the items.
    """
    from omnifuse.data.readers import read_samples
    from omnifuse.models.zero_shot import ZeroShotClassifier

    samples = [s for s in read_samples(data) if label_key in s.labels and modality in s.inputs]
    if not samples:
        raise ValueError(f"{data} has no samples with a '{modality}' input and a '{label_key}' label")
    # static int8 scales are calibrated on items after the evaluated ones (or, if too few, the first 16)
    calibration_items = samples[max_items : max_items + 16] or samples[:16]
    samples = samples[:max_items]
    classes = sorted({str(s.labels[label_key]) for s in samples})
    classifier = ZeroShotClassifier(model, classes)  # the model's own templates
    targets = np.array([classes.index(str(s.labels[label_key])) for s in samples])
    pool = model.processor({modality: [s.inputs[modality] for s in samples]})

    def accuracy(run: Runner) -> float:
        emb = torch.from_numpy(_embed_all(run, pool, 64))
        return float((classifier.logits(emb).argmax(-1).numpy() == targets).mean())

    calibration = model.processor({modality: [s.inputs[modality] for s in calibration_items]})
    return accuracy, pool, calibration
