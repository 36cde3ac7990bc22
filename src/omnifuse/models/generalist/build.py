"""Recipe config -> the generalist's training mixture, its processor and a fresh model.

The mixture's sources (episodes, shapes-world captioning and VQA, text) are read once; each
source then contributes `weight / sum(weights)` of the `samples_per_epoch` training samples
(cycling through its items in a seeded order), and episodes are balanced across environments.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from omnifuse.data.episodes.processor import MODALITY, GatoProcessor
from omnifuse.data.episodes.record import read_episodes
from omnifuse.data.episodes.tokenize import GatoTokenizer
from omnifuse.data.processors import Processor, TextProcessor, build_word_tokenizer
from omnifuse.data.sample import DataError, Sample
from omnifuse.models.generalist.config import GeneralistConfig, SourceConfig


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: manifest not found (make one with `omnifuse data synth --out DIR`)")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{i}: not JSON ({err})") from err
    return rows


def _resolve(path: Path, value: str) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else path.parent / p)


def source_items(source: SourceConfig, root: str | Path | None = None) -> list[dict[str, Any]]:
    """The items of one source (see `omnifuse.data.episodes.processor` for their form); relative
    paths are under `root` when given."""
    items: list[dict[str, Any]] = []
    for raw in source.paths:
        path = Path(raw)
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        if source.kind == "episodes":
            episodes = read_episodes(path)
            for ep in episodes:
                items.append({"kind": "episode", "episode": ep, "demos": episodes})
        elif source.kind == "text" and path.suffix == ".txt":
            if not path.is_file():
                raise DataError(f"{path}: text file not found")
            items += [{"kind": "text", "text": t.strip()} for t in path.read_text().splitlines() if t.strip()]
        else:
            for i, row in enumerate(_read_jsonl(path)):
                where = f"{path}:{i + 1}"
                if source.kind == "caption":
                    if "image" not in row or not row.get("captions"):
                        raise DataError(f"{where}: a caption row needs 'image' and 'captions'")
                    items.append(
                        {"kind": "caption", "image": _resolve(path, row["image"]), "text": row["captions"]}
                    )
                elif source.kind == "vqa":
                    for q in row.get("questions", []):
                        items.append(
                            {
                                "kind": "vqa",
                                "image": _resolve(path, row["image"]),
                                "question": q["question"],
                                "answer": str(q["answer"]),
                            }
                        )
                else:
                    items += [{"kind": "text", "text": c} for c in row.get("captions", [])[:1]]
    if source.limit is not None:
        items = items[: source.limit]
    if not items:
        raise DataError(f"mixture source {source.kind} {source.paths}: no items")
    return items


def _balanced(items: list[dict[str, Any]], n: int, rng: random.Random) -> list[dict[str, Any]]:
    """`n` items cycling through `items` (episodes: round-robin over environments) in a seeded order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        key = item["episode"].env_id if item["kind"] == "episode" else item["kind"]
        groups.setdefault(key, []).append(item)
    for group in groups.values():
        rng.shuffle(group)
    keys = sorted(groups)
    return [
        groups[keys[i % len(keys)]][(i // len(keys)) % len(groups[keys[i % len(keys)]])] for i in range(n)
    ]


def read_mixture(config: GeneralistConfig, seed: int = 0, root: str | Path | None = None) -> list[Sample]:
    """The training samples (`inputs = {"sequence": item}`) in the mixture's proportions."""
    if not config.mixture:
        raise DataError("model.mixture is empty: name at least one source (episodes, caption, vqa, text)")
    rng = random.Random(seed)
    sources = {
        name: source_items(src, root) for name, src in sorted(config.mixture.items()) if src.weight > 0
    }
    total = config.samples_per_epoch or sum(len(v) for v in sources.values())
    weights = sum(config.mixture[name].weight for name in sources)
    samples: list[Sample] = []
    for name, items in sources.items():
        n = max(1, round(total * config.mixture[name].weight / weights))
        for i, item in enumerate(_balanced(items, n, rng)):
            samples.append(
                Sample(inputs={MODALITY: item}, meta={"source": f"mixture:{name}:{i}", "mixture": name})
            )
    return samples


def mixture_texts(samples: Sequence[Sample]) -> list[str]:
    """Every text of the mixture (missions, captions, questions, answers), for a word-level tokenizer."""
    texts: set[str] = set()
    seen: set[int] = set()
    for s in samples:
        item = s.inputs[MODALITY]
        if item["kind"] == "episode":
            if id(item["episode"]) not in seen:
                seen.add(id(item["episode"]))
                texts.add(item["episode"].mission)
        elif item["kind"] == "caption":
            texts.update([item["text"]] if isinstance(item["text"], str) else item["text"])
        elif item["kind"] == "vqa":
            texts.update([item["question"], item["answer"]])
        else:
            texts.add(item["text"])
    return sorted(t for t in texts if t)


def build_processor(config: GeneralistConfig, samples: Sequence[Sample]) -> Processor:
    """The `sequence` processor: a Gato tokenizer over a text tokenizer (fitted on the mixture for `word`;
    a pretrained backbone brings its own, so that text ids keep their trained embeddings)."""
    from omnifuse.models.generalist.config import BACKBONES

    name = config.text_tokenizer
    if name == "word" and config.backbone not in BACKBONES:
        name = config.backbone
    if name == "word":
        text = build_word_tokenizer(mixture_texts(samples) or ["empty"])
    else:
        text = TextProcessor.from_pretrained(name).tokenizer
    tok = GatoTokenizer(
        text,
        n_bins=config.n_bins,
        mu=config.mu,
        m=config.m,
        n_discrete=config.n_discrete,
        image_size=config.image_size,
        patch_size=config.patch_size,
    )
    gato = GatoProcessor(
        tok, config.context_length, config.prompt_prob, config.prompt_steps, config.window_steps
    )
    return Processor({MODALITY: gato})


def tasks_of(samples: Sequence[Sample] | None) -> dict[str, Any]:
    """Environment id -> task space, for every environment the samples have episodes of."""
    tasks = {}
    for s in samples or ():
        item = s.inputs.get(MODALITY, {})
        if item.get("kind") == "episode":
            ep = item["episode"]
            tasks.setdefault(ep.env_id, ep.space)
    return tasks


@dataclass
class PreparedData:
    """What the training run gets from the kind's `prepare` hook."""

    train: list[Sample]
    val: list[Sample] | None
    processor: Processor


def prepare(recipe: Any, processor: Processor | None = None) -> PreparedData:
    """The spec's `prepare` hook: the mixture (paths relative to `data.train`, a directory) and its
    processor (a resumed run's `processor` is reused)."""
    root = Path(recipe.data.train)
    if not root.is_dir():
        raise DataError(
            f"data.train ({root}) must be the directory that the generalist's model.mixture paths are under"
        )
    train = read_mixture(recipe.model, seed=recipe.train.seed, root=root)
    return PreparedData(train, None, processor or build_processor(recipe.model, train))


def build(
    cls: type[nn.Module],
    cfg: GeneralistConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> nn.Module:
    """A fresh generalist; the environments it can act in are those of the training episodes."""
    if MODALITY not in processor.processors:
        processor = build_processor(cfg, samples or [])
    tasks = tasks_of(samples)
    for space in tasks.values():
        processor[MODALITY].check_space(space)
    return cls(cfg, processor, tasks).train()
