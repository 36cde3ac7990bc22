"""`omnifuse demo`: the main job on an embedded default, offline, in a few minutes on 2 CPU cores.

Synthesize a shapes world, train a small CLIP-style model from scratch, evaluate on held-out
data (retrieval over 1,000 test pairs; zero-shot color x shape accuracy on single-object test
images, with held-out combinations reported apart), save the artifact and write a report.

Budget-aware: before training, the demo times a few real training steps (data decoding
included) on this machine and sizes the schedule (steps, warm-up, evaluation points) to fit
the training budget (`--budget`, default 240 s), and says what it chose.
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
from omnifuse.utils.cpu import cpu_info

logger = logging.getLogger("omnifuse.demo")


DEFAULT_BUDGET_S = 240.0
#: The fewest and most steps a budget may buy (below the floor the demo is not worth running).
MIN_STEPS, MAX_STEPS = 20, 4000
#: Evaluation points on the validation split (the report's training curves).
EVAL_POINTS = 5


def demo_recipe_dict(
    data_dir: Path, out_dir: Path, steps: int, eval_points: int = EVAL_POINTS
) -> dict[str, Any]:
    """The embedded default recipe (also shipped as recipes/shapes_clip.yaml).

    Choices measured on the shapes world (validation zero-shot color x shape): a convolutional
    ViT stem with BatchNorm (three stride-2 conv + BN + ReLU layers to 8 px tokens: 0.87 and
    0.96 at 1,000 steps with two seeds, where the same stem without normalisation reached 0.72 and 16 px tokens 0.59;
    on these small images the stem costs more than the 64 tokens' attention) with CLS pooling
    (mean pooling dilutes a small object among background tokens),
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
            "encoders": {
                "text": {"arch": "bert", "preset": "tiny", "pooling": "mean", "overrides": width},
                "image": {
                    "arch": "vit",
                    "preset": "tiny",
                    "pooling": "cls",
                    "stem": "conv_bn",
                    "overrides": {**width, "patch_size": 8, "num_hidden_layers": 3},
                },
            },
        },
        "train": {
            "batch_size": 128,
            "max_steps": steps,
            "lr": 2e-3,
            # 50 warm-up steps even in short runs: with fewer, lr 2e-3 collapses the embeddings
            # (loss stuck at ln(batch)); measured on the shapes world
            "warmup_steps": min(50, max(steps // 2, 1)),
            "min_lr_ratio": 0.1,
            "weight_decay": 0.05,
            # At width 96 bf16 autocast costs more in casts than it saves (measured: 0.7x);
            # it pays from the `small` presets up (see `omnifuse bench train`).
            "precision": "fp32",
            "eval_every": max(steps // max(eval_points, 1), 1),
            "checkpoint_every": max(steps // 2, 1),
            "log_every": max(min(10, steps // 20), 1),
        },
        "eval": {
            "max_items": 500,
            "label_key": "color_shape",
            "only_single_object": True,
        },
    }


@dataclass
class Schedule:
    """What the demo chose for its budget, and the measurement behind it."""

    steps: int
    step_seconds: float | None
    budget_s: float | None
    measured_s: float = 0.0
    eval_seconds: float = 0.0
    eval_points: int = EVAL_POINTS

    def describe(self) -> str:
        if self.step_seconds is None:
            return f"{self.steps} steps (set by --steps), {self.eval_points} evaluation points"
        return (
            f"measured {self.step_seconds:.2f} s per training step (batch 128, data decoding included) "
            f"and {self.eval_seconds:.1f} s per validation on {cpu_info().describe()} with "
            f"{torch.get_num_threads()} threads in {self.measured_s:.0f} s; training budget "
            f"{self.budget_s:.0f} s -> {self.steps} steps and {self.eval_points} evaluation points"
        )


def measure_speed(recipe: Recipe, steps: int = 8, warmup: int = 3) -> tuple[float, float]:
    """(median seconds per training step, seconds per validation) of `recipe` on this machine:
    its real data, model, optimizer and step (`Trainer.train_step`, first-epoch decoding
    included) and its validation evaluator. Eight timed steps, not three: with three, one
    slow step on a shared machine made the median 25 % too high (701 steps planned where about 830
    fitted)."""
    import statistics
    import tempfile

    from omnifuse.models.factory import build_model
    from omnifuse.train.loop import Trainer
    from omnifuse.train.run import build_evaluator, build_processor, load_recipe_data

    data = load_recipe_data(recipe)
    processor = build_processor(recipe, data.train)
    model = build_model(recipe.model, processor, data.train)
    with tempfile.TemporaryDirectory(prefix="omnifuse-demo-probe-") as tmp:
        trainer = Trainer(model, data.train, recipe.data, recipe.train, tmp)
        stream = trainer.batches()
        times = []
        for _ in range(warmup + steps):
            t0 = time.perf_counter()
            trainer.train_step([next(stream)])
            times.append(time.perf_counter() - t0)
    evaluator = build_evaluator(recipe, data.val, model)
    t0 = time.perf_counter()
    if evaluator is not None:
        model.eval()
        evaluator(model)
    return statistics.median(times[warmup:]), time.perf_counter() - t0


def plan_schedule(data_dir: Path, workdir: Path, budget_s: float, steps: int | None) -> Schedule:
    """The number of steps: `steps` if given, else what fits `budget_s` at the measured speed,
    evaluation points included (fewer of them, down to 2, when they would take over a quarter)."""
    if steps is not None:
        return Schedule(steps, None, None)
    if budget_s <= 0:
        raise ValueError(f"--budget must be a positive number of seconds, got {budget_s}")
    t0 = time.perf_counter()
    probe = recipe_from_dict(demo_recipe_dict(data_dir, workdir / "probe", MAX_STEPS))
    step_s, eval_s = measure_speed(probe)
    points = EVAL_POINTS
    while points > 2 and points * eval_s > 0.25 * budget_s:
        points -= 1
    fit = int(max(budget_s - points * eval_s, 0.0) / step_s)
    steps = min(max(fit, MIN_STEPS), MAX_STEPS)
    return Schedule(steps, step_s, budget_s, time.perf_counter() - t0, eval_s, points)


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
    workdir: str | Path = "runs/demo-work",
    n: int = 12_000,
    steps: int | None = None,
    seed: int = 0,
    budget_s: float = DEFAULT_BUDGET_S,
) -> DemoResult:
    """Synthesize, train (`steps`, or as many as fit `budget_s` seconds), evaluate, report."""
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
    schedule = plan_schedule(data_dir, workdir, budget_s, steps)
    logger.info("demo schedule: %s", schedule.describe())
    print(f"demo: {schedule.describe()}", flush=True)
    recipe: Recipe = recipe_from_dict(
        demo_recipe_dict(data_dir, workdir, schedule.steps, schedule.eval_points)
    )
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
    metrics["train/steps"] = float(schedule.steps)
    if schedule.step_seconds is not None:
        metrics["train/budget_s"] = float(schedule.budget_s)
        metrics["train/probe_step_s"] = schedule.step_seconds
    metrics["demo/seconds"] = time.perf_counter() - started
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2))

    headline = [
        {
            "metric": "zero-shot color x shape top-1 (single-object test images)",
            "value": metrics.get("test/zero_shot/top1"),
        },
        {
            "metric": "  ... on color-shape combinations seen in training",
            "value": metrics.get("test/zero_shot/seen_top1"),
        },
        {
            "metric": "  ... on held-out color-shape combinations (never seen in training)",
            "value": metrics.get("test/zero_shot/heldout_top1"),
        },
        {"metric": "text->image R@1 (1,000 test pairs)", "value": metrics.get("test/text_to_image/R@1")},
        {"metric": "text->image R@5", "value": metrics.get("test/text_to_image/R@5")},
        {"metric": "image->text R@1", "value": metrics.get("test/image_to_text/R@1")},
        {"metric": "training time (s)", "value": result.seconds},
    ]
    sections = [
        TableSection(
            "Headline", headline, note=f"CPU: {cpu_info().describe()}. Schedule: {schedule.describe()}."
        ),
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
