"""`omnifuse bench generalist`: one set of weights on control tasks, captioning and VQA.

In one run:

1. demonstrations: the expert of each task (scripted controllers, BabyAI's bot) plays
   `demo_episodes` episodes on seeds from 1000 on, written as episode shards; a shapes world
   gives captioning and VQA data;
2. the generalist is trained with `omnifuse train` on the mixture (recipe built here);
3. the random policy, the expert and the generalist each play `eval_episodes` episodes per task
   on the same fixed seeds 0..N-1 (never seen in training); the expert-normalised score is
   `(model - random) / (expert - random)`, as in Gato and JAT (`jat/utils.py`), with the random
   and expert returns measured here, not quoted;
4. captioning (CIDEr-D, BLEU-4) and VQA accuracy of the same weights on held-out shapes-world
   images, beside a specialist of the same size trained on captioning and VQA alone for the same
   number of caption/VQA samples, and beside shuffled baselines (each image's caption scored
   against another image's references; each question asked about another image).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.episodes.envs import TASKS

logger = logging.getLogger("omnifuse.bench")


@dataclass
class GeneralistBenchConfig:
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    """Environment ids (each needs an expert)."""
    demo_episodes: int = 30
    """Expert demonstrations per task for training (seeds 1000, 1001, ...)."""
    eval_episodes: int = 20
    """Episodes per task for random, expert and model (seeds 0..N-1)."""
    scenes: int = 600
    """Shapes-world scenes (train/val/test split by the generator)."""
    steps: int = 500
    """Optimizer steps of the generalist."""
    batch_size: int = 32
    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    context_length: int = 128
    lr: float = 1e-3
    weights: dict[str, float] = field(
        default_factory=lambda: {"control": 0.7, "caption": 0.12, "vqa": 0.12, "text": 0.06}
    )
    """The mixture: share of training samples per source."""
    specialist: bool = True
    """Also train the same-size captioning/VQA specialist (for as many caption/VQA samples)."""
    caption_eval: int = 100
    """Held-out images captioned (and questions answered: 2 per image)."""
    window_steps: int | None = 1
    """Most episode steps per training window (short windows: the model reads the observation
    instead of copying its past actions, and steps are cheaper)."""
    max_history: int | None = 0
    """Past steps the model sees when acting (None: as many as fit the context)."""
    prompt: bool = False
    """Prompt each evaluation episode with an expert demonstration (seeds 5000+)."""
    threads: int | None = 2
    seed: int = 0


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _recipe(
    cfg: GeneralistBenchConfig, root: Path, runs: Path, name: str, weights: dict[str, float], steps: int
):
    mixture = {}
    episodes = [f"episodes/{t}" for t in cfg.tasks]
    kinds = {"control": ("episodes", episodes), "caption": ("caption", ["shapes/train.jsonl"])}
    kinds.update(vqa=("vqa", ["shapes/train.jsonl"]), text=("text", ["shapes/train.jsonl"]))
    for source, weight in weights.items():
        if weight > 0:
            kind, paths = kinds[source]
            mixture[source] = {"kind": kind, "paths": paths, "weight": weight}
    return {
        "name": name,
        "output_dir": str(runs),
        "data": {"train": str(root)},
        "model": {
            "type": "generalist",
            "hidden_size": cfg.hidden_size,
            "num_layers": cfg.num_layers,
            "num_heads": cfg.num_heads,
            "context_length": cfg.context_length,
            "window_steps": cfg.window_steps,
            "samples_per_epoch": max(2000, steps * cfg.batch_size // 4),
            "mixture": mixture,
        },
        "train": {
            "batch_size": cfg.batch_size,
            "max_steps": steps,
            "lr": cfg.lr,
            "warmup_steps": min(100, steps // 10),
            "log_every": max(1, steps // 20),
            "progress": False,
            "threads": cfg.threads,
            "seed": cfg.seed,
        },
    }


def _train(recipe_dict: dict[str, Any]):
    from omnifuse.models import load_model
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    recipe = recipe_from_dict(recipe_dict)
    start = time.time()
    result = run_recipe(recipe)
    seconds = time.time() - start
    losses = [r["train/loss"] for r in result.metrics if "train/loss" in r]
    model = load_model(recipe.run_dir / "best")
    return model, {
        "train_s": seconds,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
    }


def _text_eval(model, rows: list[dict[str, Any]], shapes_dir: Path, n_questions: int = 2) -> dict[str, float]:
    """CIDEr-D / BLEU-4 of greedy captions, VQA accuracy, and the shuffled-caption baseline."""
    from PIL import Image

    from omnifuse.generation import GenerationSettings

    images = [Image.open(shapes_dir / r["image"]).convert("RGB") for r in rows]
    settings = GenerationSettings(max_new_tokens=20)
    captions: list[str] = []
    for i in range(0, len(images), 32):
        captions += model.generate_text(images[i : i + 32], settings=settings).texts
    refs = [list(r["captions"]) for r in rows]
    questions = [(i, q) for i, r in enumerate(rows) for q in r.get("questions", [])[:n_questions]]
    answers: list[str] = []
    shuffled_answers: list[str] = []  # each question asked about the next image: the shuffled baseline
    for j in range(0, len(questions), 32):
        chunk = questions[j : j + 32]
        asked = [q["question"] for _, q in chunk]
        for target, offset in ((answers, 0), (shuffled_answers, 1)):
            imgs = [images[(i + offset) % len(images)] for i, _ in chunk]
            target += model.generate_text(imgs, asked, GenerationSettings(max_new_tokens=4)).texts
    out: dict[str, float] = {"examples": len(rows), "questions": len(questions)}
    from omnifuse.eval.captioning import caption_scores, vqa_accuracy

    scores = caption_scores(refs, captions)
    shuffled = captions[1:] + captions[:1]
    blind = caption_scores(refs, shuffled)
    out.update({f"caption/{k}": float(v) for k, v in scores.items()})
    out.update({f"shuffled/{k}": float(v) for k, v in blind.items()})
    out["vqa/accuracy"] = _mean(
        [vqa_accuracy(a, [str(q["answer"])]) for a, (_, q) in zip(answers, questions)]
    )
    out["shuffled/vqa_accuracy"] = _mean(
        [vqa_accuracy(a, [str(q["answer"])]) for a, (_, q) in zip(shuffled_answers, questions)]
    )
    out["caption_sample"] = captions[0] if captions else ""
    return out


def bench_generalist(work_dir: str | Path, cfg: GeneralistBenchConfig | None = None) -> dict[str, Any]:
    """Run the whole benchmark; returns rows per task, the summary and the text figures."""
    import torch

    from omnifuse.data.episodes.experts import has_expert
    from omnifuse.data.episodes.record import collect_episodes, write_episodes
    from omnifuse.data.synth import SynthConfig, generate
    from omnifuse.runtime.rollout import rollout, save_gif
    from omnifuse.utils.cpu import cpu_info

    cfg = cfg or GeneralistBenchConfig()
    missing = [t for t in cfg.tasks if not has_expert(t)]
    if missing:
        raise ValueError(f"no expert for {missing}; the benchmark needs one per task")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(work_dir)
    root = work / "data"
    t0 = time.time()
    returns: dict[str, dict[str, list[float]]] = {}
    demos = {}
    for env_id in cfg.tasks:
        episodes = collect_episodes(env_id, cfg.demo_episodes, seed=1000)
        write_episodes(episodes, root / "episodes" / env_id)
        returns[env_id] = {
            "random": [
                e.total_return for e in collect_episodes(env_id, cfg.eval_episodes, seed=0, policy="random")
            ],
            "expert": [e.total_return for e in collect_episodes(env_id, cfg.eval_episodes, seed=0)],
        }
        if cfg.prompt:
            demos[env_id] = collect_episodes(env_id, 4, seed=5000)
        logger.info(
            "%s: random %.2f expert %.2f",
            env_id,
            _mean(returns[env_id]["random"]),
            _mean(returns[env_id]["expert"]),
        )
    generate(SynthConfig(n=cfg.scenes, seed=cfg.seed), root / "shapes", progress=False)
    data_s = time.time() - t0

    model, train_info = _train(_recipe(cfg, root, work / "runs", "generalist", cfg.weights, cfg.steps))
    params = sum(p.numel() for p in model.parameters())
    rows = []
    gifs: list[str] = []
    t1 = time.time()
    for env_id in cfg.tasks:
        result = rollout(
            model,
            env_id,
            cfg.eval_episodes,
            seed=0,
            demonstrations=demos.get(env_id),
            max_history=cfg.max_history,
            record=env_id == cfg.tasks[0]
            or (env_id.startswith("BabyAI-") and not any("BabyAI-" in g for g in gifs)),
        )
        if result.frames:
            gifs.append(str(save_gif(result.frames, work / f"{env_id}.gif")))
        rnd, exp, got = _mean(returns[env_id]["random"]), _mean(returns[env_id]["expert"]), result.mean_return
        span = exp - rnd
        rows.append(
            {
                "task": env_id,
                "random": round(rnd, 3),
                "expert": round(exp, 3),
                "generalist": round(got, 3),
                "normalised": round((got - rnd) / span, 3) if abs(span) > 1e-9 else float("nan"),
            }
        )
        logger.info("rollout %s: %.2f (normalised %.2f)", env_id, got, rows[-1]["normalised"])
    rollout_s = time.time() - t1

    test_rows = [
        json.loads(line) for line in (root / "shapes/test.jsonl").read_text().splitlines() if line.strip()
    ]
    test_rows = test_rows[: cfg.caption_eval]
    text = {"generalist": _text_eval(model, test_rows, root / "shapes")}
    if cfg.specialist:
        share = (cfg.weights.get("caption", 0) + cfg.weights.get("vqa", 0)) / sum(cfg.weights.values())
        steps = max(50, round(cfg.steps * share))
        spec_weights = {"caption": cfg.weights.get("caption", 0), "vqa": cfg.weights.get("vqa", 0)}
        specialist, spec_info = _train(_recipe(cfg, root, work / "runs", "specialist", spec_weights, steps))
        text["specialist"] = _text_eval(specialist, test_rows, root / "shapes")
        text["specialist"].update(steps=steps, train_s=round(spec_info["train_s"], 1))
    normalised = [r["normalised"] for r in rows]
    cpu = cpu_info()
    summary = {
        "tasks": len(rows),
        "tasks_above_0.5": int(sum(1 for v in normalised if v > 0.5)),
        "mean_normalised": round(_mean(normalised), 3),
        "params_m": round(params / 1e6, 2),
        "train_s": round(train_info["train_s"], 1),
        "first_loss": train_info["first_loss"],
        "final_loss": train_info["final_loss"],
        "data_s": round(data_s, 1),
        "rollout_s": round(rollout_s, 1),
        "wall_s": round(time.time() - t0, 1),
        "cpu": cpu.model,
        "isa": " ".join(cpu.isa),
        "threads": cfg.threads,
    }
    result = {"config": asdict(cfg), "rows": rows, "summary": summary, "text": text, "gifs": gifs}
    (work / "bench_generalist.json").write_text(json.dumps(result, indent=2, default=str))
    return result
