"""`omnifuse demo`: the main job on an embedded default, offline, in a few minutes on 2 CPU cores.

Synthesize a shapes world, train a small CLIP-style model from scratch, evaluate on held-out
data (retrieval over 1,000 test pairs; zero-shot color x shape accuracy on single-object test
images, with held-out combinations reported apart), save the artifact and write a report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.processors import first_text
from omnifuse.data.readers import read_samples
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.eval.evaluator import DualEncoderEvaluator, embed_samples, same_text_targets
from omnifuse.train.config import Recipe, recipe_from_dict
from omnifuse.train.run import run_recipe

logger = logging.getLogger("omnifuse.demo")


def demo_recipe_dict(data_dir: Path, out_dir: Path, steps: int) -> dict[str, Any]:
    """The embedded default recipe (also shipped as recipes/shapes_clip.yaml).

    Choices measured on the shapes world (validation zero-shot color x shape): a convolutional
    ViT stem (four stride-2 convs to 16 px tokens: CNN shape bias, 4x fewer tokens than 8 px
    patches) with CLS pooling (mean pooling dilutes a small object among background tokens),
    shape-swapped minimal pairs kept in one batch as hard negatives, and a low initial
    temperature (0.02) so that one-word differences matter early.
    """
    width = {"hidden_size": 96, "intermediate_size": 192, "num_attention_heads": 4}
    return {
        "name": "demo",
        "output_dir": str(out_dir),
        "data": {
            "train": str(data_dir / "train.jsonl"),
            "val": str(data_dir / "val.jsonl"),
            "group_size": 2,
            "cache_decoded": True,
        },
        "processor": {"text": {"tokenizer": "word", "max_length": 40}, "image": {"size": 64}},
        "model": {
            "embed_dim": 128,
            "loss": "clip",
            "init_temperature": 0.02,
            "towers": {
                "text": {"arch": "bert", "preset": "tiny", "pooling": "mean", "overrides": width},
                "image": {
                    "arch": "vit",
                    "preset": "tiny",
                    "pooling": "cls",
                    "stem": "conv",
                    "overrides": {**width, "patch_size": 16, "num_hidden_layers": 3},
                },
            },
        },
        "train": {
            "batch_size": 128,
            "max_steps": steps,
            "lr": 2e-3,
            "warmup_steps": 50,
            "min_lr_ratio": 0.1,
            "weight_decay": 0.05,
            # At width 96 bf16 autocast costs more in casts than it saves (measured: 0.7x);
            # it pays from the `small` presets up (see `omnifuse bench train`).
            "precision": "fp32",
            "eval_every": steps,
            "checkpoint_every": max(steps // 2, 1),
            "log_every": 10,
        },
        "eval": {
            "max_items": 1000,
            "label_key": "color_shape",
            "only_single_object": True,
        },
    }


def bf16_is_fast() -> bool:
    """bf16 autocast pays off on GPUs and on CPUs with AMX or AVX512-BF16; elsewhere fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@dataclass
class DemoResult:
    metrics: dict[str, float]
    report: Path
    artifact: Path
    seconds: float


def retrieval_examples(model, samples: list[Sample], n_queries: int = 8, k: int = 5):
    """Top-k text->image results for a few test captions, for the report grid."""
    from omnifuse.eval.report import RetrievalExample

    emb, kept = embed_samples(model, samples, ["image", "text"])
    sim = emb["text"] @ emb["image"].T  # (N, N)
    targets = same_text_targets(samples, kept)
    examples = []
    for q in range(min(n_queries, len(kept))):
        scores, top = sim[q].topk(k)
        examples.append(
            RetrievalExample(
                query=first_text(samples[kept[q]].inputs["text"]),
                images=[samples[kept[i]].inputs["image"] for i in top.tolist()],
                correct=[i in targets[q] for i in top.tolist()],
                scores=scores.tolist(),
            )
        )
    return examples


def run_demo(
    workdir: str | Path = "runs/demo-work", n: int = 12_000, steps: int = 1600, seed: int = 0
) -> DemoResult:
    from omnifuse.data.synth import SynthConfig, generate
    from omnifuse.eval.report import (
        ImageSection,
        RetrievalGridSection,
        TableSection,
        TextSection,
        write_report,
    )

    started = time.perf_counter()
    workdir = Path(workdir)
    data_dir = workdir / "data"
    if not (data_dir / "test.jsonl").exists():
        generate(SynthConfig(n=n, seed=seed, minimal_pairs=True), data_dir)
    recipe: Recipe = recipe_from_dict(demo_recipe_dict(data_dir, workdir, steps))
    result = run_recipe(recipe)
    run_dir = recipe.run_dir

    from omnifuse.models import DualEncoder

    model = DualEncoder.from_pretrained(run_dir / "best")
    test = read_samples(
        str(data_dir / "test.jsonl"),
        columns=recipe.data.columns,
        policy=CorruptSamplePolicy(name="test data"),
    )
    evaluator = DualEncoderEvaluator(
        test,
        max_items=1000,
        label_key="color_shape",
        only_single_object=True,
        prefix="test/",
    )
    metrics = evaluator(model)
    metrics["train/seconds"] = result.seconds
    metrics["train/samples_per_s"] = result.samples_per_second
    metrics["demo/seconds"] = time.perf_counter() - started
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2))

    headline = [
        {
            "metric": "zero-shot color x shape top-1 (single-object test images)",
            "value": metrics.get("test/zero_shot/top1"),
        },
        {
            "metric": "  ... on held-out color-shape combinations",
            "value": metrics.get("test/zero_shot/heldout_top1"),
        },
        {"metric": "text->image R@1 (1,000 test pairs)", "value": metrics.get("test/text_to_image/R@1")},
        {"metric": "text->image R@5", "value": metrics.get("test/text_to_image/R@5")},
        {"metric": "image->text R@1", "value": metrics.get("test/image_to_text/R@1")},
        {"metric": "training time (s)", "value": result.seconds},
    ]
    sections = [
        TableSection("Headline", headline, note="Targets: zero-shot >= 0.90, text->image R@1 >= 0.5."),
        TableSection("All test metrics", [{"metric": k, "value": v} for k, v in sorted(metrics.items())]),
    ]
    for png in sorted((run_dir / "plots").glob("*.png")):
        sections.append(ImageSection(f"Training curve: {png.stem}", png))
    sections.append(
        RetrievalGridSection(
            "Text -> image retrieval (top 5; green = the caption's image)",
            retrieval_examples(model, test[:1000]),
        )
    )
    sections.append(TextSection("Recipe", (run_dir / "config.yaml").read_text()))
    report = write_report(run_dir / "report.html", "omnifuse demo: CLIP-style shapes world", sections)
    return DemoResult(metrics, report, run_dir / "best", time.perf_counter() - started)
