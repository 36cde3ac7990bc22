"""`omnifuse demo --modalities text,image,audio`: one embedding space for text, images and speech.

Synthesize a shapes world whose captions are also spoken (espeak-ng, several voices, speeds
and pitches), train text, image and audio towers from scratch with the contrastive loss
anchored on text (ImageBind-style binding, Girdhar et al. 2023, arXiv:2305.05665: each
modality is aligned with the anchor only, so image and audio are never paired in training),
and report retrieval for every pair of modalities, both ways, next to random chance.

Image <-> audio retrieval therefore measures *emergent* alignment: audio and images meet only
through the text they were each bound to. `anchor="image"` binds text and audio to the image
instead (then text <-> audio is the emergent pair); `anchor=None` trains every pair.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnifuse.data.readers import read_samples
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.eval.evaluator import embed_samples, same_text_targets
from omnifuse.eval.metrics import bidirectional_retrieval
from omnifuse.train.config import Recipe, recipe_from_dict
from omnifuse.train.run import run_recipe

KNOWN = ("audio", "image", "text")
COLUMNS = {"text": "captions", "image": "image", "audio": "audio"}


def trimodal_recipe_dict(
    data_dir: Path, out_dir: Path, steps: int, modalities: Sequence[str], anchor: str | None = "text"
) -> dict[str, Any]:
    """The demo recipe: small from-scratch towers (width 64), text-anchored CLIP loss.

    Audio: 64 log-mel bins over 2.56 s (256 frames of 10 ms), an AST with 16x16 patches (4 x 16
    tokens + CLS + distillation token), mean-pooled. Images: a 3-layer ViT with a convolutional
    stem on 64 px. Text: a 2-layer BERT over a word tokenizer, mean-pooled.
    """
    width = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}
    towers = {
        "text": {"arch": "bert", "pooling": "mean", "overrides": width},
        "image": {
            "arch": "vit",
            "pooling": "cls",
            "stem": "conv",
            "overrides": {**width, "patch_size": 16, "num_hidden_layers": 3},
        },
        "audio": {"arch": "ast", "pooling": "mean", "overrides": {**width, "num_hidden_layers": 3}},
    }
    return {
        "name": "trimodal",
        "output_dir": str(out_dir),
        "data": {
            "train": str(data_dir / "train.jsonl"),
            "val": str(data_dir / "val.jsonl"),
            "columns": {m: COLUMNS[m] for m in modalities},
            "cache_decoded": True,
        },
        "processor": {
            "text": {"tokenizer": "word", "max_length": 40},
            "image": {"size": 64},
            "audio": {"sample_rate": 16_000, "n_mels": 64, "max_seconds": 2.56},
        },
        "model": {
            "embed_dim": 64,
            "loss": "clip",
            "init_temperature": 0.05,
            "anchor": anchor,
            "encoders": {m: towers[m] for m in modalities},
        },
        "train": {
            "batch_size": 64,
            "max_steps": steps,
            "lr": 2e-3,
            "warmup_steps": 30,
            "min_lr_ratio": 0.1,
            "weight_decay": 0.05,
            "eval_every": steps,
            "checkpoint_every": steps,
            "log_every": 10,
        },
        "eval": {"max_items": 500},
    }


def retrieval_table(model, samples: Sequence[Sample], modalities: Sequence[str]) -> list[dict[str, Any]]:
    """R@1 / R@5 both ways for every pair of modalities, with random chance (k / N) beside them.

    Items are scenes; a query's correct answers are the items whose canonical caption equals
    its own (two scenes can share one, see `same_text_targets`), else its own item.
    """
    emb, kept = embed_samples(model, samples, sorted(modalities))
    n = len(kept)
    targets = same_text_targets(samples, kept) if "text" in samples[0].inputs else [[i] for i in range(n)]
    rows = []
    order = [m for m in ("text", "image", "audio") if m in modalities]
    for a, b in itertools.combinations(order, 2):
        metrics = bidirectional_retrieval(emb[a], emb[b], a, b, ks=(1, 5), a_to_b_targets=targets)
        for q, t in ((a, b), (b, a)):
            rows.append(
                {
                    "query -> target": f"{q} -> {t}",
                    "R@1": metrics[f"{q}_to_{t}/R@1"],
                    "R@5": metrics[f"{q}_to_{t}/R@5"],
                    "chance R@1": 1 / n,
                    "chance R@5": min(5, n) / n,
                    "trained pair": model.anchor in (q, t) if model.anchor else True,
                }
            )
    return rows


@dataclass
class TrimodalDemoResult:
    table: list[dict[str, Any]]
    """One row per (query, target) modality pair: R@1, R@5, random chance, trained or emergent."""
    n_test: int
    report: Path
    artifact: Path
    seconds: float
    train_seconds: float


def parse_modalities(spec: str | Sequence[str]) -> list[str]:
    mods = [m.strip() for m in spec.split(",")] if isinstance(spec, str) else list(spec)
    unknown = [m for m in mods if m not in KNOWN]
    if unknown or len(set(mods)) < 2:
        raise ValueError(
            f"--modalities needs two or more of {', '.join(KNOWN)} (comma-separated); got {spec!r}"
        )
    return sorted(set(mods))


def run_trimodal_demo(
    workdir: str | Path = "runs/trimodal-work",
    modalities: str | Sequence[str] = ("text", "image", "audio"),
    n: int = 1500,
    steps: int = 500,
    seed: int = 0,
    anchor: str | None = "text",
) -> TrimodalDemoResult:
    """Synthesize (with spoken captions), train, evaluate every modality pair on the test split, report."""
    from omnifuse.data.synth import SynthConfig, generate
    from omnifuse.eval.report import ImageSection, TableSection, TextSection, write_report
    from omnifuse.models import DualEncoder

    started = time.perf_counter()
    mods = parse_modalities(modalities)
    if anchor is not None and anchor not in mods:
        anchor = "text" if "text" in mods else mods[0]
    workdir = Path(workdir)
    data_dir = workdir / "data"
    if not (data_dir / "test.jsonl").exists():
        config = SynthConfig(
            n=n,
            seed=seed,
            max_objects=2,
            holdout=[],
            modalities=["image", "audio"],
            speech={"caption": "short", "rate": [160, 200], "pitch": [35, 65]},
        )
        generate(config, data_dir)
    elif "audio" not in json.loads((data_dir / "synth.json").read_text())["config"]["modalities"]:
        raise ValueError(f"{data_dir} holds a shapes world without spoken captions; use another --workdir")
    recipe: Recipe = recipe_from_dict(trimodal_recipe_dict(data_dir, workdir, steps, mods, anchor))
    result = run_recipe(recipe)
    run_dir = recipe.run_dir

    model = DualEncoder.from_pretrained(run_dir / "best")
    columns = {**recipe.data.columns, "text": "text"}  # evaluate on the canonical caption
    test = read_samples(
        str(data_dir / "test.jsonl"), columns=columns, policy=CorruptSamplePolicy(name="test")
    )
    table = retrieval_table(model, test, mods)
    seconds = time.perf_counter() - started
    (run_dir / "retrieval.json").write_text(json.dumps({"n_test": len(test), "rows": table}, indent=2))
    note = (
        f"{len(test)} test scenes; chance = k / N. Anchor: {anchor or 'none (all pairs trained)'}; "
        "pairs without the anchor were never trained together (emergent alignment)."
    )
    sections = [TableSection("Retrieval, every modality pair", table, note=note)]
    for png in sorted((run_dir / "plots").glob("*.png")):
        sections.append(ImageSection(f"Training curve: {png.stem}", png))
    sections.append(TextSection("Recipe", (run_dir / "config.yaml").read_text()))
    report = write_report(run_dir / "report.html", "omnifuse demo: text, image and speech", sections)
    return TrimodalDemoResult(table, len(test), report, run_dir / "best", seconds, result.seconds)
