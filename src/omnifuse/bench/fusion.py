"""`omnifuse bench fusion`: every fusion strategy, same encoders and budget, two shapes-world tasks.

Tasks (see `omnifuse.data.synth.tasks`): VQA as classification over the answer vocabulary,
and caption-image match with swapped-object negatives. Every strategy gets the same encoders:
the towers of a small CLIP trained once on the same scenes' captions (a ViT whose conv-stem
tokens are exactly the scene's 3x3 grid cells, and a BERT whose word vocabulary also holds
the question words), frozen; and the same steps, batch and seed. The fusion module is
thus the only thing that differs. The reasoning strategies (``relation``: Relation
Networks over the 3x3 cells; ``memory``: a MAC cell, ``MEMORY_STEPS`` steps) get the same width. The table reports test accuracy overall and per question
type, parameters, training time and inference throughput. Late fusion combines
per-modality decisions, so it cannot answer questions that need both inputs: it is the
sanity row. (With `pretrain_steps: 0` the image tower trains from scratch instead; on this
budget no strategy then learns to bind words to places.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.readers import read_samples

logger = logging.getLogger("omnifuse.bench")

STRATEGIES = (
    "concat", "concat_mlp", "late", "gated", "attention", "pooling", "bilinear",
    "cross_attention", "co_attention", "single_stream", "relation", "memory",
)  # fmt: skip
TOKEN_STRATEGIES = ("cross_attention", "co_attention", "single_stream")
REASONING_STRATEGIES = ("relation", "memory")
MEMORY_STEPS = 4
TASKS = {
    # task -> (manifest prefix, text column, label column)
    "vqa": ("vqa", "question", "answer"),
    "match": ("match", "caption", "label"),
}
ENSEMBLE_MEMBERS = ("concat_mlp", "cross_attention", "single_stream")


@dataclass
class FusionBenchConfig:
    n_scenes: int = 6000
    image_size: int = 48
    pretrain_steps: int = 600
    """Steps of the shared CLIP whose frozen towers every strategy uses (0: each trains its own from scratch)."""
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    hidden: int = 64
    """Encoder width (both towers) and fusion width (x2)."""
    layers: int = 2
    strategies: tuple[str, ...] = STRATEGIES
    tasks: tuple[str, ...] = ("vqa", "match")
    ensemble: bool = True
    eval_items: int = 2000
    seed: int = 0
    threads: int | None = None
    workers: int = 2
    """Strategies trained at once, in separate processes with 1 thread each (2 on 2 cores)."""
    progress: bool = True
    fusion_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


def fusion_kwargs(strategy: str, width: int, layers: int) -> dict[str, Any]:
    """The same capacity knobs for every strategy that has them."""
    if strategy in ("concat",):
        return {}
    if strategy == "late":
        return {"head": "mlp", "hidden_dim": width}
    if strategy == "pooling":
        return {"project": True, "hidden_dim": width}
    if strategy == "bilinear":
        return {"rank": width}
    if strategy == "memory":
        return {"hidden_dim": width, "steps": MEMORY_STEPS}
    kwargs: dict[str, Any] = {"hidden_dim": width}
    if strategy in TOKEN_STRATEGIES:
        kwargs["layers"] = layers
    return kwargs


def bench_recipe(data_dir: Path, out_dir: Path, task: str, strategy: str, cfg: FusionBenchConfig) -> dict:
    prefix, text_col, label_col = TASKS[task]
    h = cfg.hidden
    tower = {
        "hidden_size": h,
        "intermediate_size": 2 * h,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": 4,
    }
    kwargs = {**fusion_kwargs(strategy, 2 * h, cfg.layers), **cfg.fusion_kwargs.get(strategy, {})}
    encoders: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    if cfg.pretrain_steps:  # the CLIP's towers, frozen, with their preprocessing
        shared = {
            "from_dual_encoder": str(out_dir.parent / "clip" / "best"),
            "dual_encoder_trainable_layers": 0,
        }
    else:
        patch = {"patch_size": cfg.image_size // 3}  # one token per grid cell
        encoders["text"] = {"arch": "bert", "pooling": "cls", "overrides": tower}
        encoders["image"] = {"arch": "vit", "pooling": "cls", "overrides": {**tower, **patch}}
    return {
        "name": f"{task}-{strategy}",
        "output_dir": str(out_dir),
        "data": {
            "train": str(data_dir / f"{prefix}_train.jsonl"),
            "val": str(data_dir / f"{prefix}_val.jsonl"),
            "columns": {"image": "image", "text": text_col},
            "labels": [label_col],
            "cache_decoded": True,
        },
        "processor": {"text": {"tokenizer": "word", "max_length": 16}, "image": {"size": cfg.image_size}},
        "model": {
            "type": "fusion_classifier",
            "encoders": encoders,
            **shared,
            "fusion": {"name": strategy, "kwargs": kwargs},
            "task": {"label": label_col},
            "dropout": 0.0,
        },
        "train": {
            "batch_size": cfg.batch_size,
            "max_steps": cfg.steps,
            "lr": cfg.lr,
            "weight_decay": 0.01,
            "warmup_steps": max(1, cfg.steps // 20),
            "log_every": max(1, cfg.steps // 5),
            "seed": cfg.seed,
            "threads": cfg.threads,
            "progress": cfg.progress,
        },
        "eval": {"max_items": 500, "group_key": "qtype"},
    }


def _throughput(model, samples, batch_size: int = 256) -> float:
    from omnifuse.eval.classification import predict_samples

    start = time.perf_counter()
    _, kept = predict_samples(model, samples, batch_size)
    return len(kept) / (time.perf_counter() - start)


def _row(task: str, strategy: str, metrics: dict[str, float], model, train_s: float, items_s: float) -> dict:
    row: dict[str, Any] = {"task": task, "fusion": strategy, "accuracy": metrics.get("accuracy")}
    row.update({k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("accuracy/")})
    row["params"] = sum(p.numel() for p in model.parameters())
    fusion = getattr(model, "fusion", None)
    row["fusion_params"] = sum(p.numel() for p in fusion.parameters()) if fusion is not None else None
    row["train_s"] = round(train_s, 1)  # includes the final validation pass
    row["infer_items_s"] = round(items_s, 1)
    return row


def pretrain_shared_clip(data_dir: Path, out_dir: Path, cfg: FusionBenchConfig) -> float:
    """Train the shared CLIP once (`out_dir/clip/best`); returns seconds (0 if already there)."""
    from omnifuse.data.synth.text import vocabulary
    from omnifuse.demos.clip import demo_recipe_dict
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    if (out_dir / "clip" / "best" / "config.json").exists():
        return 0.0
    recipe = demo_recipe_dict(data_dir, out_dir, cfg.pretrain_steps)
    recipe["name"] = "clip"
    recipe["processor"]["image"]["size"] = cfg.image_size
    recipe["processor"]["text"]["extra_words"] = vocabulary()  # question words too, not [UNK]
    recipe["model"]["encoders"]["image"]["overrides"]["patch_size"] = (
        cfg.image_size // 3
    )  # one token per cell
    n_train = len((data_dir / "train.jsonl").read_text().splitlines())
    batch = min(recipe["train"]["batch_size"], n_train - n_train % 2)  # tiny smoke runs have few scenes
    recipe["train"].update(
        batch_size=batch, checkpoint_every=None, seed=cfg.seed, threads=cfg.threads, progress=cfg.progress
    )
    start = time.perf_counter()
    run_recipe(recipe_from_dict(recipe))
    return time.perf_counter() - start


def _test_samples(data_dir: Path, task: str, cfg: FusionBenchConfig):
    prefix, text_col, label_col = TASKS[task]
    columns = {"image": "image", "text": text_col}
    return read_samples(data_dir / f"{prefix}_test.jsonl", columns=columns, label_columns=[label_col])[
        : cfg.eval_items
    ]


def train_one(job: tuple[Path, Path, str, str, FusionBenchConfig]) -> dict[str, Any]:
    """Train one strategy on one task, then evaluate it on the test split (runs in a worker)."""
    from omnifuse.eval.classification import ClassifierEvaluator
    from omnifuse.models.fusion_classifier import FusionClassifier
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    data_dir, out_dir, task, strategy, cfg = job
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recipe = recipe_from_dict(bench_recipe(data_dir, out_dir / "runs", task, strategy, cfg))
    start = time.perf_counter()
    run_recipe(recipe)
    train_s = time.perf_counter() - start
    model = FusionClassifier.from_pretrained(recipe.run_dir / "best")
    test = _test_samples(data_dir, task, cfg)
    metrics, _ = ClassifierEvaluator(test, group_key="qtype", prefix="").evaluate(model)
    row = _row(task, strategy, metrics, model, train_s, _throughput(model, test))
    logger.info("bench fusion: %s", row)
    return row


def ensure_task_world(
    data_dir: Path, n_scenes: int, seed: int, image_size: int, marker: str, progress: bool
) -> None:
    """The shapes world and its task manifests under `data_dir`, made only when missing (`marker` is
    the task manifest the caller reads)."""
    from omnifuse.data.synth import SynthConfig, generate
    from omnifuse.data.synth.tasks import write_task_manifests

    if not (data_dir / "train.jsonl").exists():
        synth = SynthConfig(n=n_scenes, seed=seed, image_size=image_size, minimal_pairs=True)
        generate(synth, data_dir, progress=progress)
    if not (data_dir / marker).exists():
        write_task_manifests(data_dir, seed=seed)


def run_jobs(fn, jobs: list, workers: int) -> list:
    """`fn` over `jobs`, in `workers` spawned processes (one job at a time each) or in this one."""
    if workers <= 1:
        return [fn(job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(fn, jobs, chunksize=1)


def bench_fusion(out_dir: str | Path, cfg: FusionBenchConfig | None = None) -> dict[str, Any]:
    """Train and evaluate every strategy on every task; returns rows and settings (JSON-able)."""
    from omnifuse.eval.classification import ClassifierEvaluator
    from omnifuse.models.ensemble import EnsembleClassifier
    from omnifuse.models.fusion_classifier import FusionClassifier

    cfg = cfg or FusionBenchConfig()
    unknown = [s for s in cfg.strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown fusion strategies {unknown}; known: {STRATEGIES}")
    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1; got {cfg.workers}")
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    ensure_task_world(data_dir, cfg.n_scenes, cfg.seed, cfg.image_size, "vqa_train.jsonl", cfg.progress)
    pretrain_s = pretrain_shared_clip(data_dir, out_dir, cfg) if cfg.pretrain_steps else 0.0
    if cfg.workers > 1:
        cfg = replace(cfg, threads=1, progress=False)
    jobs = [(data_dir, out_dir, task, s, cfg) for task in cfg.tasks for s in cfg.strategies]
    rows = run_jobs(train_one, jobs, cfg.workers)
    for task in cfg.tasks if cfg.ensemble else ():
        names = [s for s in ENSEMBLE_MEMBERS if s in cfg.strategies]
        if len(names) < 2:
            continue
        members = [FusionClassifier.from_pretrained(out_dir / "runs" / f"{task}-{s}" / "best") for s in names]
        ensemble = EnsembleClassifier(members).eval()
        test = _test_samples(data_dir, task, cfg)
        metrics, _ = ClassifierEvaluator(test, group_key="qtype", prefix="").evaluate(ensemble)
        rows.append(
            _row(task, f"ensemble({'+'.join(names)})", metrics, ensemble, 0.0, _throughput(ensemble, test))
        )
    return {
        "rows": rows,
        "settings": {k: v for k, v in vars(cfg).items() if k != "progress"},
        "threads": cfg.threads or torch.get_num_threads(),
        "pretrain_s": round(pretrain_s, 1),
        "summary": relation_gaps(rows),
    }


def relation_gaps(rows: list[dict]) -> dict[str, float]:
    """Accuracy on relation questions of each token-level and reasoning strategy minus concat's (VQA)."""
    vqa = {r["fusion"]: r.get("relation") for r in rows if r["task"] == "vqa"}
    base = vqa.get("concat")
    if base is None:
        return {}
    return {
        f"{s} - concat (relation)": round(vqa[s] - base, 4)
        for s in TOKEN_STRATEGIES + REASONING_STRATEGIES + ("late",)
        if vqa.get(s) is not None
    }
