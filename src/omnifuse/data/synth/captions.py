"""Image-to-text data over a generated shapes world: captions, free-form answers, few-shot sequences.

Manifests in the interleaved format of captioners: a `text` in which `<image>` marks where each
image goes and `<|endofchunk|>` closes the text of an image; `image` holds one path or a list
of paths (one per `<image>`, in order). Each row also carries what evaluation needs
(`task`; `references` and `objects` for captions; `question`, `answer`, `qtype` for answers;
`answer` and `shots` for few-shot sequences).

- captions: the canonical caption (every object with size, color, shape and position, in reading
  order) is the target; all six paraphrases are the references.
- answers: one row per question of the scene ("what color is the circle?" -> "red").
- few-shot: an in-context task that no single example defines. Each sequence draws its own
  mapping from two colors to two nonce words; four single-object images show the mapping
  ("<image>Output: dax<|endofchunk|>" ...) and a fifth image asks for the word of its color.
  Without the examples the answer is a guess among the nonce words (chance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.synth.config import SynthConfig
from omnifuse.data.synth.render import render_image
from omnifuse.data.synth.scene import Scene, SceneObject
from omnifuse.data.synth.vocab import COLORS, GRID, SHAPES, SIZE_RADIUS

IMAGE_TOKEN = "<image>"
END_OF_CHUNK = "<|endofchunk|>"
CAPTION_PROMPT = "<image>Caption:"
QUESTION_PROMPT = "<image>Question: {question} Answer:"
FEWSHOT_PROMPT = "<image>Output:"

#: Made-up words a few-shot sequence maps colors to (none is a word of the shapes world).
NONCE_WORDS: tuple[str, ...] = ("dax", "wug", "blick", "fep", "toma", "zup", "kiki", "lorp", "mib", "tev")


def caption_text(caption: str) -> str:
    return f"{CAPTION_PROMPT} {caption}{END_OF_CHUNK}"


def answer_text(question: str, answer: str) -> str:
    return f"{QUESTION_PROMPT.format(question=question)} {answer}{END_OF_CHUNK}"


def caption_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One caption row per scene: the canonical caption as target, every paraphrase as reference."""
    objects = [f"{o['color']} {o['shape']}" for o in row["objects"]]
    return [
        {
            "id": f"{row['id']}-c",
            "task": "caption",
            "image": row["image"],
            "text": caption_text(row["captions"][0]),
            "references": list(row["captions"]),
            "objects": objects,
        }
    ]


def answer_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per question of the scene, answered in words (free-form, not a class)."""
    return [
        {
            "id": f"{row['id']}-a{k}",
            "task": "answer",
            "image": row["image"],
            "text": answer_text(q["question"], q["answer"]),
            "question": q["question"],
            "answer": q["answer"],
            "answers": [q["answer"]],
            "qtype": q["type"],
        }
        for k, q in enumerate(row["questions"])
    ]


def single_object_scene(rng: np.random.Generator, color: str, image_size: int) -> Scene:
    """One object of `color` (random shape, size and cell): the images of few-shot sequences."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    size = ("small", "large")[int(rng.integers(2))]
    row, col = (int(v) for v in rng.integers(GRID, size=2))
    cell = image_size / GRID
    room = max(0.0, cell / 2 - SIZE_RADIUS[size] * cell - 1)
    dx, dy = rng.uniform(-room, room, size=2)
    x, y = int(round((col + 0.5) * cell + dx)), int(round((row + 0.5) * cell + dy))
    return Scene(objects=(SceneObject(shape, color, size, row, col, x, y),), image_size=image_size)


def fewshot_rows(
    n: int, out_dir: Path, split: str, seed: int, image_size: int, shots: int = 4
) -> list[dict[str, Any]]:
    """`n` sequences of `shots` examples + 1 query (images written under `fewshot/<split>/`).

    Each sequence: two colors, two nonce words (a fresh mapping), shots alternating so both
    colors are shown; the query's color is one of the two.
    """
    rng = np.random.default_rng([seed, 7919, len(split)])
    folder = out_dir / "fewshot" / split
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colors = [COLORS[int(k)] for k in rng.permutation(len(COLORS))[:2]]
        names = [NONCE_WORDS[int(k)] for k in rng.permutation(len(NONCE_WORDS))[:2]]
        order = [k % 2 for k in range(shots)]
        order = [order[int(k)] for k in rng.permutation(shots)]
        if len(set(order)) < 2 and shots >= 2:
            order[-1] = 1 - order[0]
        query = int(rng.integers(2))
        images, chunks = [], []
        for j, which in enumerate([*order, query]):
            rel = f"fewshot/{split}/{i:06d}-{j}.png"
            render_image(single_object_scene(rng, colors[which], image_size)).save(
                out_dir / rel, format="PNG"
            )
            images.append(rel)
            chunks.append(f"{FEWSHOT_PROMPT} {names[which]}{END_OF_CHUNK}")
        rows.append(
            {
                "id": f"fewshot-{split}-{i:06d}",
                "task": "fewshot",
                "image": images,
                "text": "".join(chunks),
                "answer": names[query],
                "shots": shots,
                "mapping": dict(zip(colors, names, strict=True)),
            }
        )
    return rows


#: Examples per few-shot training sequence. More than the 4 of evaluation: each example after
#: the first of its color is an in-context copy to learn from. On the shapes world an xattn
#: captioner reached 4-shot accuracy 1.00 after 4,000 steps on 8-shot sequences, and 0.10-0.47
#: after 1,500 steps on 4-shot ones (docs/benchmarks/captioner.md).
TRAIN_SHOTS = 8


def write_captioner_manifests(
    shapes_dir: str | Path,
    seed: int = 0,
    fewshot: int | None = None,
    shots: int = 4,
    train_shots: int | None = TRAIN_SHOTS,
) -> dict[str, Path]:
    """Write captioner manifests beside a shapes world's `train/val/test.jsonl`.

    Per split: `caption_<split>.jsonl`, `answer_<split>.jsonl`, `fewshot_<split>.jsonl`, and
    `captioner_<split>.jsonl` (all three mixed: the training and validation data of a
    captioner). `fewshot`: sequences per split (default: as many as scenes in the split), with
    `shots` examples before the query, `train_shots` in the train split (None: `shots`; a
    captioner needs `max_images` >= train_shots + 1). Returns "<name>_<split>" -> path.
    """
    shapes_dir = Path(shapes_dir)
    splits = sorted(p.stem for p in shapes_dir.glob("*.jsonl") if p.stem in ("train", "val", "test"))
    if not splits:
        raise FileNotFoundError(f"{shapes_dir}: no train/val/test.jsonl; run `omnifuse data synth` first")
    written: dict[str, Path] = {}
    for split in splits:
        rows = [json.loads(line) for line in (shapes_dir / f"{split}.jsonl").read_text().splitlines() if line]
        size = _image_size(shapes_dir / rows[0]["image"])
        parts = {
            "caption": [r for row in rows for r in caption_rows(row)],
            "answer": [r for row in rows for r in answer_rows(row)],
            "fewshot": fewshot_rows(
                len(rows) if fewshot is None else fewshot,
                shapes_dir,
                split,
                seed,
                size,
                train_shots if split == "train" and train_shots else shots,
            ),
        }
        parts["captioner"] = [r for name in ("caption", "answer", "fewshot") for r in parts[name]]
        for name, part in parts.items():
            path = shapes_dir / f"{name}_{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in part))
            written[f"{name}_{split}"] = path
    return written


def _image_size(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return int(img.size[0])


__all__ = [
    "CAPTION_PROMPT",
    "END_OF_CHUNK",
    "FEWSHOT_PROMPT",
    "IMAGE_TOKEN",
    "NONCE_WORDS",
    "QUESTION_PROMPT",
    "TRAIN_SHOTS",
    "SynthConfig",
    "write_captioner_manifests",
]
