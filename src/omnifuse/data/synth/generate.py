"""`generate`: write a shapes-world dataset (files per modality plus JSONL manifests)."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import zlib
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.synth import motion as _motion  # noqa: F401  (registers the 'video' renderer)
from omnifuse.data.synth import render as _render  # noqa: F401  (registers the 'image' renderer)
from omnifuse.data.synth import speech as _speech  # noqa: F401  (registers the 'audio' renderer)
from omnifuse.data.synth.config import SPLITS, SynthConfig
from omnifuse.data.synth.renderers import RENDERERS
from omnifuse.data.synth.rng import sample_rng
from omnifuse.data.synth.scene import Scene, sample_scene, scene_labels
from omnifuse.data.synth.text import describe, questions, vocabulary
from omnifuse.data.synth.vocab import (
    BACKGROUND_RGB,
    COLOR_RGB,
    COLORS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    color_shape_classes,
)
from omnifuse.utils.progress import progress_bar

# Independent random streams per sample, so one part (say a new renderer) never shifts another.
_STREAM_SCENE, _STREAM_CAPTIONS, _STREAM_QUESTIONS = 0, 1, 2

#: Samples per task handed to a worker process.
CHUNK_SIZE = 250


@dataclass
class SynthSummary:
    """What `generate` wrote."""

    out_dir: Path
    counts: dict[str, int]
    """Samples per split."""
    heldout: dict[str, int]
    """Samples per split containing a held-out color-shape combination (0 for train)."""
    manifests: dict[str, Path] = field(default_factory=dict)
    """Split -> JSONL manifest path."""
    seconds: float = 0.0


def sample_id(index: int, n: int) -> str:
    """Zero-padded id, e.g. "000123" (at least 6 digits, more when n needs them)."""
    return str(index).zfill(max(6, len(str(n - 1))))


def shape_swapped(scene: Scene, rng: np.random.Generator, exclude: Collection[str]) -> Scene:
    """The same scene with one object's shape changed (not to a combo in `exclude` or the scene)."""
    taken = set(scene.combos) | set(exclude)
    order = rng.permutation(len(scene.objects))
    for i in order:
        obj = scene.objects[i]
        shapes = [s for s in SHAPES if s != obj.shape and f"{obj.color} {s}" not in taken]
        if shapes:
            new = replace(obj, shape=shapes[rng.integers(len(shapes))])
            return replace(scene, objects=scene.objects[:i] + (new,) + scene.objects[i + 1 :])
    return scene  # every shape of every color is taken: keep the twin (vanishingly rare)


def make_scene(config: SynthConfig, index: int) -> tuple[str, Scene]:
    """The split and scene of sample ``index`` (holdout rules applied per split)."""
    split = config.split_of(index)
    rng = sample_rng(config.seed, index, _STREAM_SCENE)
    if split == "train":
        if config.video_direction_pairs and index % 2 == 1 and config.split_of(index - 1) == "train":
            return make_scene(config, index - 1)  # the same objects; the video renderer redirects one
        if config.minimal_pairs and index % 2 == 1 and config.split_of(index - 1) == "train":
            _, twin = make_scene(config, index - 1)
            return split, shape_swapped(twin, rng, config.holdout)
        return split, sample_scene(rng, config, exclude=config.holdout)
    if split == "test" and config.holdout and rng.random() < config.heldout_test_fraction:
        return split, sample_scene(rng, config, require=config.holdout)
    return split, sample_scene(rng, config)


def make_sample(config: SynthConfig, index: int, out_dir: Path) -> dict[str, Any]:
    """Make sample ``index``: write its files under ``out_dir`` and return its manifest row."""
    split, scene = make_scene(config, index)
    sid = sample_id(index, config.n)
    captions = describe(scene, sample_rng(config.seed, index, _STREAM_CAPTIONS))
    avoid = config.holdout if split == "train" else ()
    qa = questions(scene, sample_rng(config.seed, index, _STREAM_QUESTIONS), avoid=avoid)
    row: dict[str, Any] = {"id": sid, "split": split}
    for name in config.modalities:
        stream = zlib.crc32(name.encode())  # stable per renderer name
        row.update(RENDERERS[name](scene, sid, out_dir, sample_rng(config.seed, index, stream), config))
    held = set(config.holdout)
    row.update(
        {
            "text": captions[0],
            "captions": captions,
            "questions": qa,
            "objects": [o.to_dict() for o in scene.objects],
            "labels": scene_labels(scene),
            "heldout": any(c in held for c in scene.combos),
            "n_objects": len(scene.objects),
        }
    )
    return row


def _make_chunk(args: tuple[SynthConfig, int, int, str]) -> list[tuple[str, bool, str]]:
    """(split, heldout, JSON line) for samples ``start .. stop-1``; runs in a worker process."""
    config, start, stop, out_dir = args
    rows = (make_sample(config, i, Path(out_dir)) for i in range(start, stop))
    return [(row["split"], row["heldout"], json.dumps(row)) for row in rows]


def _default_workers(n: int) -> int:
    if n < 2 * CHUNK_SIZE:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8, n // CHUNK_SIZE))


def _fresh_process_pool(workers: int):
    """A pool that runs every chunk in a new process (`maxtasksperchild=1`), one torch thread each."""
    return multiprocessing.get_context().Pool(workers, initializer=_one_thread, maxtasksperchild=1)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the parent's OpenMP pool does not survive a fork


def generate(
    config: SynthConfig, out_dir: str | Path, progress: bool = True, workers: int | None = None
) -> SynthSummary:
    """Write ``config.n`` samples to ``out_dir``.

    Layout: ``images/<id>.png`` (and other modalities' files), one manifest per split
    ``{train,val,test}.jsonl`` (one JSON row per sample, paths relative to ``out_dir``), and
    ``synth.json`` (config, counts, vocabulary). The output is byte-identical for the same
    config whatever ``workers`` is (default: up to 8 processes for large ``n``, else 1).
    """
    start_time = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = _default_workers(config.n) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    chunks = [(config, s, min(s + CHUNK_SIZE, config.n), str(out)) for s in range(0, config.n, CHUNK_SIZE)]

    names = [s for s in SPLITS if s in config.splits]
    files = {s: open(out / f"{s}.jsonl", "w", encoding="utf-8") for s in names}
    counts = dict.fromkeys(names, 0)
    heldout = dict.fromkeys(names, 0)
    # The pool is started before the progress bar, so no tqdm thread exists when it forks.
    if "audio" in config.modalities:  # espeak-ng carries pitch-jitter state from one utterance to the
        pool = _fresh_process_pool(workers)  # next, so each chunk is spoken by a fresh process
    else:
        pool = multiprocessing.get_context().Pool(workers) if workers > 1 else None
    bar = progress_bar(total=config.n, desc="synth", unit="sample", disable=not progress)
    try:
        results = pool.imap(_make_chunk, chunks) if pool else map(_make_chunk, chunks)
        for rows in results:
            for split, held, line in rows:
                files[split].write(line + "\n")
                counts[split] += 1
                heldout[split] += held
            bar.update(len(rows))
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
        for f in files.values():
            f.close()

    meta = {
        "config": {k: v for k, v in asdict(config).items() if k != "speech" or "audio" in config.modalities},
        "counts": counts,
        "heldout": heldout,
        "manifests": {s: f"{s}.jsonl" for s in names},
        "vocabulary": {
            "shapes": list(SHAPES),
            "colors": {c: list(COLOR_RGB[c]) for c in COLORS},
            "background": list(BACKGROUND_RGB),
            "sizes": list(SIZES),
            "positions": [list(row) for row in POSITIONS],
            "relations": list(RELATIONS),
            "color_shape_classes": color_shape_classes(),
            "words": vocabulary(),
        },
    }
    (out / "synth.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return SynthSummary(
        out_dir=out,
        counts=counts,
        heldout=heldout,
        manifests={s: out / f"{s}.jsonl" for s in names},
        seconds=time.perf_counter() - start_time,
    )
