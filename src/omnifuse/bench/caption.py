"""`omnifuse bench caption`: what a captioner learns on the shapes world, beside blind baselines.

One run: a fresh shapes world (captions, free-form answers, few-shot color -> nonce-word
sequences), then a captioner per connector (`xattn`: Flamingo's gated cross-attention;
`prefix`: LLaVA's projected visual tokens) trained for the same number of steps on the same
data, each evaluated on the held-out test split by the `captioner` evaluator:

- CIDEr-D (and BLEU-4, ROUGE-L) of greedy captions, beside the same model with blanked images
  and with images shuffled across the batch;
- free-form VQA accuracy per question type (color, shape, count, exist, relation), and blind;
- the object-hallucination rate of the captions;
- few-shot accuracy on sequences whose color -> word mapping is defined only in context,
  with the 4 examples (4-shot) and without them (0-shot; chance is 1 in 10 nonce words).

As in Flamingo, the image tower is contrastively pre-trained and frozen: the run first trains a
small CLIP on the same world's training scenes (`--vision-steps`; its zero-shot accuracy is
reported), and each captioner reads its image tower through `vision_from`. With
`--vision-steps 0` the tower trains from scratch with the captioner instead (a BatchNorm
convolutional stem), the comparison that shows what the pre-training buys. The language model is
a small GPT-2 trained from scratch: no pretrained language model is available offline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.bench.infer import machine_info

#: Rows of each task in the training mix, per scene (answers: every question of the scene, so
#: they outnumber the rest; few-shot sequences thrice because in-context copying is learned last).
TRAIN_MIX = {"caption": 2, "answer": 1, "fewshot": 3}


def bench_recipe(
    data: Path,
    out: Path,
    connector: str,
    steps: int,
    batch_size: int,
    seed: int,
    gate_scale: float = 1.0,
    vision_from: Path | None = None,
) -> dict[str, Any]:
    """A captioner recipe: the image tower from `vision_from` (a trained CLIP, frozen), or a ViT
    with a BatchNorm conv stem trained from scratch with the rest."""
    model: dict[str, Any] = {
        "type": "captioner",
        "connector": connector,
        "lm": {"source": "scratch", "preset": "small", "trainable": True},
        "num_latents": 8,
        "resampler_depth": 1,
        "heads": 4,
        "head_dim": 32,
        "max_length": 80,
        "gate_scale": gate_scale,
    }
    if vision_from is not None:
        # the CLIP's penultimate layer, as LLaVA reads its tower
        model.update(vision_from=str(vision_from), freeze_vision=True, vision_layer=-2)
    else:
        model["vision"] = {
            "arch": "vit",
            "preset": "tiny",
            "pooling": "cls",
            "stem": "conv_bn",
            "overrides": {
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_attention_heads": 2,
                "patch_size": 8,
            },
        }
        model["freeze_vision"] = False
    return {
        "name": f"captioner-{connector}",
        "output_dir": str(out),
        "data": {
            "train": str(data / "bench_train.jsonl"),
            "columns": {"image": "image", "text": "text"},
            "cache_decoded": True,
        },
        "processor": {"image": {"size": 32}},
        "model": model,
        "train": {
            "batch_size": batch_size,
            "max_steps": steps,
            "lr": 2e-3,
            "warmup_steps": max(1, steps // 20),
            "min_lr_ratio": 0.05,
            "weight_decay": 0.01,
            "log_every": max(1, steps // 20),
            "checkpoint_every": steps,
            "progress": False,
            "seed": seed,
        },
    }


def vision_recipe(data: Path, out: Path, steps: int, seed: int) -> dict[str, Any]:
    """The demo's shapes CLIP (BatchNorm conv stem), at the captioners' 32 px, on the world's
    training scenes; evaluated by zero-shot color x shape accuracy on its validation scenes."""
    from omnifuse.demos.clip import demo_recipe_dict

    recipe = demo_recipe_dict(data, out, steps, eval_points=2)
    recipe["name"] = "vision-clip"
    recipe["data"]["group_size"] = 1  # this world has no minimal pairs
    recipe["processor"]["image"]["size"] = 32
    recipe["train"].update(progress=False, seed=seed)
    recipe["eval"]["max_items"] = 300
    scenes = sum(1 for line in (data / "train.jsonl").read_text().splitlines() if line)
    recipe["train"]["batch_size"] = min(recipe["train"]["batch_size"], scenes)  # tiny worlds
    return recipe


def write_bench_data(out: Path, n: int, seed: int, mix: dict[str, int] | None = None) -> dict[str, Path]:
    """A shapes world with up to two objects per scene, all combinations seen in training,
    and a training mix with each task's rows repeated as `mix` says (default `TRAIN_MIX`)."""
    from omnifuse.data.synth import SynthConfig, generate
    from omnifuse.data.synth.captions import write_captioner_manifests

    generate(SynthConfig(n=n, seed=seed, image_size=32, max_objects=2, holdout=[]), out, progress=False)
    written = write_captioner_manifests(out, seed=seed)
    rows = []
    for name, repeat in (mix or TRAIN_MIX).items():
        lines = written[f"{name}_train"].read_text().splitlines()
        rows += lines * repeat
    (out / "bench_train.jsonl").write_text("\n".join(rows) + "\n")
    return written


def train_vision(data: Path, out: Path, steps: int, seed: int) -> dict[str, Any]:
    """Pre-train the image tower; returns where it is, its zero-shot accuracy and the time taken."""
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    t0 = time.perf_counter()
    recipe = recipe_from_dict(vision_recipe(data, out, steps, seed))
    result = run_recipe(recipe)
    evals = [r for r in result.metrics if "val/zero_shot/top1" in r]
    return {
        "path": recipe.run_dir / "best",
        "steps": steps,
        "train_s": time.perf_counter() - t0,
        "zero_shot_top1": evals[-1]["val/zero_shot/top1"] if evals else None,
    }


def bench_caption(
    out_dir: str | Path,
    n: int = 3000,
    steps: int = 4000,
    batch_size: int = 32,
    connectors: Sequence[str] = ("xattn", "prefix"),
    eval_items: int = 100,
    seed: int = 0,
    threads: int | None = None,
    vision_steps: int = 1000,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    from omnifuse.data.readers import read_samples
    from omnifuse.eval.captioning import CaptionerEvaluator
    from omnifuse.models import load_model
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    data = out / "data"
    started = time.perf_counter()
    written = write_bench_data(data, n, seed)
    if progress:
        progress(f"data: {n} scenes in {time.perf_counter() - started:.0f} s")
    vision = train_vision(data, out / "runs", vision_steps, seed) if vision_steps > 0 else None
    if progress and vision:
        progress(
            f"vision: CLIP pre-trained {vision['steps']} steps in {vision['train_s'] / 60:.1f} min, "
            f"zero-shot color x shape {vision['zero_shot_top1']:.3f}"
        )
    vision_s = vision["train_s"] if vision else 0.0
    test = read_samples(written["captioner_test"], columns={"image": "image", "text": "text"})
    rows, runs = [], {}
    for connector in connectors:
        t0 = time.perf_counter()
        recipe = recipe_from_dict(
            bench_recipe(
                data, out / "runs", connector, steps, batch_size, seed, vision_from=vision and vision["path"]
            )
        )
        result = run_recipe(recipe)
        train_s = time.perf_counter() - t0
        model = load_model(recipe.run_dir / "best")
        t1 = time.perf_counter()
        metrics, details = CaptionerEvaluator(test, batch_size=50, max_items=eval_items).evaluate(model)
        eval_s = time.perf_counter() - t1
        final_loss = next((r["train/loss"] for r in reversed(result.metrics) if "train/loss" in r), None)
        runs[connector] = {
            "metrics": metrics,
            "examples": details.get("captions", [])[:8],
            "train_s": train_s,
            "eval_s": eval_s,
            "final_loss": final_loss,
        }
        row = {
            "connector": connector,
            "vision": "clip (frozen)" if vision else "scratch",
            "steps": steps,
            "train_min": (vision_s + train_s) / 60,
            "final_loss": final_loss,
        }
        row.update({k.replace("/", "_"): v for k, v in metrics.items()})
        rows.append(row)
        if progress:
            progress(
                f"{connector}: trained {train_s / 60:.1f} min, cider {metrics.get('caption/cider', 0):.3f} "
                f"(blank {metrics.get('caption/cider_blank', 0):.3f}, shuffled {metrics.get('caption/cider_shuffled', 0):.3f})"
            )
    result = {
        "rows": rows,
        "runs": runs,
        "vision": {**vision, "path": str(vision["path"])} if vision else None,
        "settings": {
            "n": n,
            "steps": steps,
            "vision_steps": vision_steps,
            "batch_size": batch_size,
            "eval_items": eval_items,
            "seed": seed,
            "mix": TRAIN_MIX,
        },
        "machine": machine_info(torch.get_num_threads()),
        "wall_s": time.perf_counter() - started,
    }
    (out / "bench_caption.json").write_text(json.dumps(result, indent=2, default=float))
    return result


SUMMARY_KEYS = (
    "connector", "vision", "train_min", "final_loss", "caption_cider", "caption_cider_blank", "caption_cider_shuffled",
    "caption_bleu4", "caption_rouge_l", "caption_hallucination", "caption_hallucination_1_objects",
    "caption_hallucination_2_objects", "answer_accuracy", "answer_accuracy_blank",
    "answer_accuracy_color", "answer_accuracy_shape", "answer_accuracy_count", "fewshot_accuracy",
    "fewshot_accuracy_0shot",
)  # fmt: skip


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per connector with the headline figures."""
    return [{k: r.get(k) for k in SUMMARY_KEYS} for r in result["rows"]]
