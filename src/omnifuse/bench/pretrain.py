"""`omnifuse bench pretrain`: what pre-training buys on the shapes world, same budget per row.

Rows (every model has the same encoders — a BERT and a ViT whose patches are the scene's 3x3
grid cells — and the same fusion module; every pre-training run has the same steps, every
fine-tuning run the same steps, batch and seed):

- **caption–image match** on minimal pairs (a true relation caption and its twin with the
  objects' colors swapped, `attribute`, or the relation's arguments swapped, `relation`):
  zero-shot after `vl_pretrain` (ITM head) and after CLIP-only pre-training (`vl_pretrain` with
  the contrastive loss alone: cosine similarity), then a match classifier fine-tuned from
  `vl_pretrain`, from CLIP-only and from scratch;
- **VQA** accuracy per question type, fine-tuned from `vl_pretrain` and from scratch (same
  fusion), and from scratch with concat fusion (the reference of the relation gap);
- **masked language modelling** on held-out shapes-world documents: masked-token accuracy beside
  the unigram baseline, perplexity, NSP accuracy beside 0.5.

Independent runs go to a pool of `workers` processes (1 thread each).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("omnifuse.bench")


@dataclass
class PretrainBenchConfig:
    n_scenes: int = 3000
    image_size: int = 48
    """Divisible by 3: the ViT's patches are the scene's grid cells."""
    pretrain_steps: int = 600
    """Steps of vl_pretrain and of CLIP-only pre-training."""
    finetune_steps: int = 400
    """Steps of every fine-tuning run (match, VQA)."""
    mlm_steps: int = 600
    """Steps of the masked_lm run."""
    batch_size: int = 64
    lr: float = 1e-3
    hidden: int = 64
    """Encoder width (both towers); the fusion is twice as wide."""
    layers: int = 2
    fusion: str = "single_stream"
    eval_items: int = 1000
    seed: int = 0
    workers: int = 2
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.image_size % 3:
            raise ValueError(
                f"image_size must be divisible by 3 (one patch per grid cell); got {self.image_size}"
            )
        for name in ("n_scenes", "pretrain_steps", "finetune_steps", "mlm_steps", "batch_size", "workers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")


def _towers(cfg: PretrainBenchConfig) -> dict[str, Any]:
    h = cfg.hidden
    size = {
        "hidden_size": h,
        "intermediate_size": 2 * h,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": 4,
    }
    return {
        "text": {"arch": "bert", "pooling": "cls", "overrides": size},
        "image": {"arch": "vit", "pooling": "cls", "overrides": {**size, "patch_size": cfg.image_size // 3}},
    }


def _fusion(cfg: PretrainBenchConfig, name: str | None = None) -> dict[str, Any]:
    name = name or cfg.fusion
    kwargs: dict[str, Any] = {} if name == "concat" else {"hidden_dim": 2 * cfg.hidden}
    if name in ("single_stream", "cross_attention", "co_attention"):
        kwargs.update(layers=cfg.layers, dropout=0.0)
    return {"name": name, "kwargs": kwargs}


def _train(cfg: PretrainBenchConfig, steps: int) -> dict[str, Any]:
    return {
        "batch_size": cfg.batch_size, "max_steps": steps, "lr": cfg.lr, "weight_decay": 0.01,
        "warmup_steps": max(1, steps // 20), "log_every": max(1, steps // 5), "seed": cfg.seed,
        "threads": cfg.threads, "progress": cfg.progress, "checkpoint_every": None,
    }  # fmt: skip


def _processor(cfg: PretrainBenchConfig) -> dict[str, Any]:
    from omnifuse.data.synth.text import vocabulary

    # every word of captions, questions and answers, so towers pre-trained on captions know question words
    return {
        "text": {"tokenizer": "word", "max_length": 20, "extra_words": vocabulary()},
        "image": {"size": cfg.image_size},
    }


def vl_recipe(data: Path, runs: Path, cfg: PretrainBenchConfig, name: str, weights: dict[str, float]) -> dict:
    negatives = ["in_batch", "minimal_pairs"] if weights.get("itm") else ["in_batch"]
    return {
        "name": name, "output_dir": str(runs),
        "data": {
            "train": str(data / "pretrain_train.jsonl"), "val": str(data / "pretrain_val.jsonl"),
            "columns": {"image": "image", "text": "caption"}, "labels": ["negative", "qtype"], "cache_decoded": True,
        },
        "processor": _processor(cfg),
        "model": {
            "type": "vl_pretrain", "encoders": _towers(cfg), "fusion": _fusion(cfg), "embed_dim": 2 * cfg.hidden,
            "loss_weights": weights, "itm_negatives": negatives,
        },
        "train": _train(cfg, cfg.pretrain_steps),
        "eval": {"max_items": 300, "group_key": "qtype"},
    }  # fmt: skip


def finetune_recipe(
    data: Path,
    runs: Path,
    cfg: PretrainBenchConfig,
    task: str,
    name: str,
    start: str | None,
    fusion: str | None = None,
) -> dict:
    """`task`: match (minimal_*.jsonl) or vqa; `start`: a pre-trained artifact or None (scratch)."""
    prefix, text, label = {"match": ("minimal", "caption", "label"), "vqa": ("vqa", "question", "answer")}[
        task
    ]
    model: dict[str, Any] = {"type": "fusion_classifier", "task": {"label": label}, "dropout": 0.0}
    if start:
        model["from_pretrained"] = start
    else:
        model.update(encoders=_towers(cfg), fusion=_fusion(cfg, fusion))
    return {
        "name": name, "output_dir": str(runs),
        "data": {
            "train": str(data / f"{prefix}_train.jsonl"), "val": str(data / f"{prefix}_val.jsonl"),
            "columns": {"image": "image", "text": text}, "labels": [label, "qtype"], "cache_decoded": True,
        },
        "processor": _processor(cfg),
        "model": model,
        "train": _train(cfg, cfg.finetune_steps),
        "eval": {"max_items": 300, "group_key": "qtype"},
    }  # fmt: skip


def mlm_recipe(data: Path, runs: Path, cfg: PretrainBenchConfig) -> dict:
    h = cfg.hidden
    return {
        "name": "masked-lm", "output_dir": str(runs),
        "data": {"train": str(data / "documents_train.txt"), "val": str(data / "documents_val.txt")},
        "model": {
            "type": "masked_lm", "vocab_size": 400, "min_frequency": 1, "max_length": 64, "nsp": True,
            "overrides": {"hidden_size": h, "intermediate_size": 2 * h, "num_hidden_layers": cfg.layers, "num_attention_heads": 4},
        },
        "train": _train(cfg, cfg.mlm_steps),
        "eval": {"max_items": 500},
    }  # fmt: skip


def _run(job: tuple[str, dict, int | None]) -> tuple[str, float]:
    """Train one recipe (in a worker); returns (name, seconds)."""
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    name, recipe, threads = job
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    run_recipe(recipe_from_dict(recipe))
    return name, time.perf_counter() - start


def _pool_run(jobs: list[tuple[str, dict, int | None]], workers: int) -> dict[str, float]:
    from omnifuse.bench.fusion import run_jobs

    return dict(run_jobs(_run, jobs, min(workers, len(jobs))))


def _strip(metrics: dict[str, float]) -> dict[str, float]:
    return {k.split("/", 1)[1] if k.startswith("val/") else k: v for k, v in metrics.items()}


def bench_pretrain(out_dir: str | Path, cfg: PretrainBenchConfig | None = None) -> dict[str, Any]:
    """Run every row; returns rows per table, settings and seconds (JSON-able)."""
    from omnifuse.data.readers import read_samples
    from omnifuse.data.synth import SynthConfig, generate
    from omnifuse.data.synth.pretraining import write_pretrain_manifests
    from omnifuse.data.synth.tasks import write_task_manifests
    from omnifuse.eval.classification import ClassifierEvaluator
    from omnifuse.models.factory import load_model
    from omnifuse.models.masked_lm.evaluate import MaskedLMEvaluator
    from omnifuse.models.masked_lm.model import prepare
    from omnifuse.models.vl_pretrain.evaluate import VLPretrainEvaluator
    from omnifuse.train.config import recipe_from_dict

    cfg = cfg or PretrainBenchConfig()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    data, runs = out_dir / "data", out_dir / "runs"
    if not (data / "pretrain_train.jsonl").exists():
        synth = SynthConfig(
            n=cfg.n_scenes, seed=cfg.seed, image_size=cfg.image_size, min_objects=2, holdout=[]
        )
        generate(synth, data, progress=cfg.progress)
        write_task_manifests(data, seed=cfg.seed)
        write_pretrain_manifests(data, seed=cfg.seed)
    threads = 1 if cfg.workers > 1 else cfg.threads
    run_cfg = replace(cfg, threads=threads, progress=cfg.progress and cfg.workers == 1)
    vl, clip = runs / "vl-pretrain" / "best", runs / "clip-only" / "best"
    # phase 1: the pre-training runs and the from-scratch fine-tunes (independent)
    phase1 = [
        ("vl-pretrain", vl_recipe(data, runs, run_cfg, "vl-pretrain", {"itc": 1.0, "itm": 1.0, "mlm": 1.0})),
        ("clip-only", vl_recipe(data, runs, run_cfg, "clip-only", {"itc": 1.0, "itm": 0.0, "mlm": 0.0})),
        ("masked-lm", mlm_recipe(data, runs, run_cfg)),
        ("match-scratch", finetune_recipe(data, runs, run_cfg, "match", "match-scratch", None)),
        ("vqa-scratch", finetune_recipe(data, runs, run_cfg, "vqa", "vqa-scratch", None)),
        (
            "vqa-scratch-concat",
            finetune_recipe(data, runs, run_cfg, "vqa", "vqa-scratch-concat", None, "concat"),
        ),
    ]
    seconds = _pool_run([(n, r, threads) for n, r in phase1], cfg.workers)
    phase2 = [
        ("match-vl-pretrain", finetune_recipe(data, runs, run_cfg, "match", "match-vl-pretrain", str(vl))),
        ("match-clip-only", finetune_recipe(data, runs, run_cfg, "match", "match-clip-only", str(clip))),
        ("vqa-vl-pretrain", finetune_recipe(data, runs, run_cfg, "vqa", "vqa-vl-pretrain", str(vl))),
    ]
    seconds.update(_pool_run([(n, r, threads) for n, r in phase2], cfg.workers))

    def test(prefix: str, text: str, label: str):
        cols = {"image": "image", "text": text}
        return read_samples(data / f"{prefix}_test.jsonl", columns=cols, label_columns=[label, "qtype"])

    # zero-shot caption-image match on the test minimal pairs (2AFC: the true caption scores higher)
    pretrain_test = test("pretrain", "caption", "negative")[: cfg.eval_items]
    match_rows = []
    for name, path in (("vl_pretrain (ITM head)", vl), ("CLIP-only (cosine)", clip)):
        m = _strip(VLPretrainEvaluator(pretrain_test, group_key="qtype")(load_model(path)))
        match_rows.append(
            {
                "start": name,
                "fine-tuned": "no",
                "pair_accuracy": m.get("match_pair_accuracy"),
                "pair_relation": m.get("match_pair_accuracy/relation"),
                "pair_attribute": m.get("match_pair_accuracy/attribute"),
                "accuracy": m.get("match_accuracy"),
                "relation": m.get("match_accuracy/relation"),
                "attribute": m.get("match_accuracy/attribute"),
            }  # fmt: skip
        )
    match_test = test("minimal", "caption", "label")[: 2 * cfg.eval_items]
    for start in ("vl-pretrain", "clip-only", "scratch"):
        model = load_model(runs / f"match-{start}" / "best")
        m, _ = ClassifierEvaluator(match_test, group_key="qtype", prefix="").evaluate(model)
        match_rows.append(
            {
                "start": start,
                "fine-tuned": f"{cfg.finetune_steps} steps",
                "accuracy": m.get("accuracy"),
                "relation": m.get("accuracy/relation"),
                "attribute": m.get("accuracy/attribute"),
            }  # fmt: skip
        )
    vqa_test = test("vqa", "question", "answer")[: cfg.eval_items]
    vqa_rows = []
    for name, start in (
        ("vl-pretrain", "vl-pretrain"),
        ("scratch", "scratch"),
        ("scratch, concat fusion", "scratch-concat"),
    ):
        m, _ = ClassifierEvaluator(vqa_test, group_key="qtype", prefix="").evaluate(
            load_model(runs / f"vqa-{start}" / "best")
        )
        vqa_rows.append(
            {
                "start": name,
                "accuracy": m.get("accuracy"),
                **{k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("accuracy/")},
            }
        )
    # masked LM on the held-out (test) documents, with the trained tokenizer and unigram counts
    mlm_model = load_model(runs / "masked-lm" / "best")
    recipe = recipe_from_dict(mlm_recipe(data, runs, run_cfg))
    recipe.data.val = str(data / "documents_test.txt")
    prepared = prepare(recipe, mlm_model.processor)
    from omnifuse.models.masked_lm.model import token_counts

    mlm_model.token_counts = token_counts(mlm_model.processor, prepared.train)
    mlm = _strip(MaskedLMEvaluator(prepared.val, max_items=cfg.eval_items)(mlm_model))
    summary = {
        "vqa relation: vl_pretrain - scratch concat": _diff(
            vqa_rows[0].get("relation"), vqa_rows[2].get("relation")
        ),
        "mlm accuracy / unigram baseline": round(
            mlm["mlm_accuracy"] / max(mlm["mlm_accuracy_unigram"], 1e-9), 2
        ),
    }
    return {
        "match": match_rows,
        "vqa": vqa_rows,
        "mlm": [mlm],
        "summary": summary,
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "settings": {k: v for k, v in vars(cfg).items() if k != "progress"},
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)
