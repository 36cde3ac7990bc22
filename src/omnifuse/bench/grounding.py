"""`omnifuse bench grounding`: token labelling on the shapes world, text-only beside multimodal.

Task (see `omnifuse.data.synth.grounding`): captions that mention every object with its size,
color, shape and position, some attribute words swapped for wrong ones; every word is tagged
``O`` / ``B-wrong`` / ``I-wrong``. Every row is a `token_classifier` on the same frozen towers
as `omnifuse bench fusion` (a small CLIP trained once on the scenes' captions; frozen unless
`trainable_layers` says otherwise), the same steps,
batch and seed; only the fusion differs. The text-only row (the text tower alone, no image)
cannot know which words are false of the image: it is the chance baseline. Reported on the test
split: token accuracy and entity-level precision / recall / F1 (seqeval's rules) of the
``wrong`` spans.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.readers import read_samples

logger = logging.getLogger("omnifuse.bench")

ROWS = ("text_only", "concat", "cross_attention", "single_stream")
"""`text_only`: the text tower alone; the others: text + image through that fusion strategy."""


@dataclass
class GroundingBenchConfig:
    n_scenes: int = 6000
    image_size: int = 48
    pretrain_steps: int = 600
    """Steps of the shared CLIP (the same one `bench fusion` trains, reused when present)."""
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    hidden: int = 64
    """Encoder width (from the CLIP); fusion width is 2x."""
    layers: int = 2
    trainable_layers: int | None = 0
    """Layers of the CLIP towers trained with each row: 0 freezes them (as `bench fusion`), null trains them fully."""
    rows: tuple[str, ...] = ROWS
    eval_items: int = 1000
    seed: int = 0
    threads: int | None = None
    workers: int = 2
    progress: bool = True


def grounding_recipe(data_dir: Path, out_dir: Path, row: str, cfg: GroundingBenchConfig) -> dict[str, Any]:
    width = 2 * cfg.hidden
    fusion: dict[str, Any] = {"name": "concat", "kwargs": {}}
    if row in ("cross_attention", "single_stream"):
        fusion = {"name": row, "kwargs": {"hidden_dim": width, "layers": cfg.layers}}
    columns = {"text": "caption"} if row == "text_only" else {"text": "caption", "image": "image"}
    return {
        "name": f"grounding-{row}",
        "output_dir": str(out_dir),
        "data": {
            "train": str(data_dir / "grounding_train.jsonl"),
            "val": str(data_dir / "grounding_val.jsonl"),
            "columns": columns,
            "labels": ["tags"],
            "cache_decoded": True,
        },
        "processor": {"text": {"tokenizer": "word", "max_length": 40}, "image": {"size": cfg.image_size}},
        "model": {
            "type": "token_classifier",
            "from_dual_encoder": str(out_dir.parent / "clip" / "best"),
            "dual_encoder_towers": sorted(columns),
            "dual_encoder_trainable_layers": cfg.trainable_layers,
            "fusion": fusion,
            "label": "tags",
            "label_names": ["O", "B-wrong", "I-wrong"],
            "head_hidden": width,
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
        "eval": {"max_items": 500},
    }


def train_row(job: tuple[Path, Path, str, GroundingBenchConfig]) -> dict[str, Any]:
    """Train one row's token classifier, then score it on the test split (runs in a worker)."""
    from omnifuse.eval.token_labels import TokenLabelEvaluator
    from omnifuse.models.factory import load_model
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    data_dir, out_dir, row, cfg = job
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recipe = recipe_from_dict(grounding_recipe(data_dir, out_dir / "runs", row, cfg))
    start = time.perf_counter()
    run_recipe(recipe)
    train_s = time.perf_counter() - start
    model = load_model(recipe.run_dir / "best")
    columns = {"text": "caption", "image": "image"}
    test = read_samples(data_dir / "grounding_test.jsonl", columns=columns, label_columns=["tags"])
    metrics, details = TokenLabelEvaluator(test, "tags", max_items=cfg.eval_items, prefix="").evaluate(model)
    wrong = details["per_label"].get("wrong", {})
    result = {
        "fusion": row,
        "token_accuracy": round(metrics["accuracy"], 4),
        "precision": round(metrics["precision"], 4),
        "recall": round(metrics["recall"], 4),
        "f1": round(metrics["f1"], 4),
        "support": wrong.get("support"),
        "params": sum(p.numel() for p in model.parameters()),
        "train_s": round(train_s, 1),
    }
    logger.info("bench grounding: %s", result)
    return result


def bench_grounding(out_dir: str | Path, cfg: GroundingBenchConfig | None = None) -> dict[str, Any]:
    """Train and score every row; returns rows and settings (JSON-able)."""
    from omnifuse.bench.fusion import FusionBenchConfig, ensure_task_world, pretrain_shared_clip, run_jobs

    cfg = cfg or GroundingBenchConfig()
    unknown = [r for r in cfg.rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown grounding rows {unknown}; known: {ROWS}")
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    ensure_task_world(data_dir, cfg.n_scenes, cfg.seed, cfg.image_size, "grounding_train.jsonl", cfg.progress)
    clip_cfg = FusionBenchConfig(
        image_size=cfg.image_size, pretrain_steps=cfg.pretrain_steps, seed=cfg.seed, threads=cfg.threads,
        progress=cfg.progress,
    )  # fmt: skip
    pretrain_s = pretrain_shared_clip(data_dir, out_dir, clip_cfg)
    if cfg.workers > 1:
        cfg = replace(cfg, threads=1, progress=False)
    jobs = [(data_dir, out_dir, row, cfg) for row in cfg.rows]
    rows = run_jobs(train_row, jobs, cfg.workers)
    return {
        "rows": rows,
        "settings": {k: v for k, v in vars(cfg).items() if k != "progress"},
        "threads": cfg.threads or torch.get_num_threads(),
        "pretrain_s": round(pretrain_s, 1),
    }
