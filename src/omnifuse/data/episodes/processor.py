"""The `sequence` modality: mixture items (episodes, captions, VQA, text) -> one Gato batch.

A training sample of the generalist has `inputs = {"sequence": item}` with `item` one of

- `{"kind": "episode", "episode": Episode, "demos": [Episode, ...]}`: a window of the episode
  (a random one in training, the first otherwise) of as many steps as fit the context, at most
  `window_steps`; with probability `prompt_prob` a
  demonstration (the last steps of another episode of the same task) is prepended, as Gato does;
- `{"kind": "caption", "image": ..., "text": str | [paraphrases]}`;
- `{"kind": "vqa", "image": ..., "question": str, "answer": str}`;
- `{"kind": "text", "text": str}`.

:class:`GatoProcessor` is registered as processor kind `gato`: its settings and text tokenizer are
saved with the model (`processor.json`, `tokenizer/`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.decode import load_image, register_decoder
from omnifuse.data.episodes.episode import Episode
from omnifuse.data.episodes.spaces import TaskSpace
from omnifuse.data.episodes.tokenize import GatoTokenizer, TokenSequence
from omnifuse.data.processors import PROCESSOR_KINDS
from omnifuse.data.sample import CorruptSampleError, DataError

MODALITY = "sequence"
ITEM_KINDS = ("episode", "caption", "vqa", "text")


def check_item(value: Any, source: str = "") -> dict[str, Any]:
    """The `sequence` decoder: validates an item (and decodes its image once)."""
    if not isinstance(value, dict) or value.get("kind") not in ITEM_KINDS:
        raise CorruptSampleError(f"{source}: a sequence item is a dict with kind in {ITEM_KINDS}")
    if value["kind"] in ("caption", "vqa") and not hasattr(value["image"], "size"):
        value = {**value, "image": load_image(value["image"])}
    return value


register_decoder(MODALITY, check_item)


class GatoProcessor:
    """Builds Gato token sequences from mixture items and collates them (`tokens`, masks, patches)."""

    modality = MODALITY

    def __init__(
        self,
        tokenizer: GatoTokenizer,
        context_length: int = 512,
        prompt_prob: float = 0.25,
        prompt_steps: int = 8,
        window_steps: int | None = None,
    ):
        if not 0 <= prompt_prob <= 1:
            raise ValueError(f"prompt_prob must be in [0, 1]; got {prompt_prob}")
        self.tokenizer = tokenizer
        self.context_length = int(context_length)
        self.prompt_prob = float(prompt_prob)
        self.prompt_steps = int(prompt_steps)
        if window_steps is not None and window_steps < 1:
            raise ValueError(f"window_steps must be >= 1 or None; got {window_steps}")
        self.window_steps = None if window_steps is None else int(window_steps)

    # ---- items -> sequences -----------------------------------------------------------------
    def episode_window(
        self, episode: Episode, demos: Sequence[Episode], rng: random.Random | None
    ) -> TokenSequence:
        space = episode.space
        if space is None:
            raise DataError(f"episode {episode.env_id} seed {episode.seed} has no task space")
        tok = self.tokenizer
        per_step = tok.step_tokens(space)
        budget = self.context_length
        mission = len(tok.encode_text(episode.mission)) if space.mission else 0
        prompt = None
        others = [d for d in demos if d is not episode]
        if rng is not None and others and rng.random() < self.prompt_prob:
            demo = others[rng.randrange(len(others))]
            k = min(self.prompt_steps, len(demo))
            cost = k * per_step + (len(tok.encode_text(demo.mission)) if space.mission else 0)
            if cost + mission + per_step <= budget:
                prompt = (demo, len(demo) - k, len(demo))  # the demonstration's last steps
                budget -= cost
        steps = max(1, (budget - mission) // per_step)
        if steps * per_step + mission > self.context_length:
            raise DataError(
                f"one step of {episode.env_id} takes {per_step} tokens; it does not fit a context of "
                f"{self.context_length}"
            )
        n = min(steps, len(episode), self.window_steps or steps)
        start = rng.randrange(len(episode) - n + 1) if rng is not None else 0
        return tok.episode_sequence(space, episode, start, start + n, prompt)

    def sequence(self, item: dict[str, Any], rng: random.Random | None = None) -> TokenSequence:
        tok = self.tokenizer
        kind = item["kind"]
        if kind == "episode":
            seq = self.episode_window(item["episode"], item.get("demos", ()), rng)
        elif kind == "caption":
            text = item["text"]
            if not isinstance(text, str):
                text = text[rng.randrange(len(text))] if rng is not None else text[0]
            seq = tok.caption_sequence(item["image"], text)
        elif kind == "vqa":
            seq = tok.vqa_sequence(item["image"], item["question"], item["answer"])
        else:
            seq = tok.text_sequence(item["text"])
        return _clip(seq, self.context_length)

    def __call__(
        self,
        values: Sequence[dict[str, Any]],
        train: bool = False,
        rngs: Sequence[random.Random] | None = None,
    ) -> dict[str, torch.Tensor]:
        seqs = [self.sequence(v, rngs[i] if (train and rngs) else None) for i, v in enumerate(values)]
        return self.tokenizer.collate(seqs, self.context_length)

    def check_space(self, space: TaskSpace) -> None:
        self.tokenizer.check_space(space)
        if self.tokenizer.step_tokens(space) * 2 > self.context_length:
            raise DataError(
                f"a step takes {self.tokenizer.step_tokens(space)} tokens; the context of "
                f"{self.context_length} holds fewer than two"
            )

    # ---- saving -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "gato",
            "tokenizer": "tokenizer",
            "context_length": self.context_length,
            "prompt_prob": self.prompt_prob,
            "prompt_steps": self.prompt_steps,
            "window_steps": self.window_steps,
            **self.tokenizer.to_dict(),
        }

    def save(self, directory: Path) -> dict[str, Any]:
        self.tokenizer.text_tokenizer.save_pretrained(str(Path(directory) / "tokenizer"))
        return self.to_dict()

    @classmethod
    def load(cls, directory: Path, settings: dict[str, Any]) -> GatoProcessor:
        from transformers import AutoTokenizer

        text = AutoTokenizer.from_pretrained(str(Path(directory) / settings["tokenizer"]))
        tok = GatoTokenizer(
            text,
            n_bins=settings["n_bins"],
            mu=settings["mu"],
            m=settings["m"],
            n_discrete=settings["n_discrete"],
            image_size=settings["image_size"],
            patch_size=settings["patch_size"],
            grid_channels=settings["grid_channels"],
            grid_shape=settings["grid_shape"],
        )
        return cls(
            tok,
            settings["context_length"],
            settings["prompt_prob"],
            settings["prompt_steps"],
            settings.get("window_steps"),
        )


PROCESSOR_KINDS["gato"] = GatoProcessor


def _clip(seq: TokenSequence, limit: int) -> TokenSequence:
    """Cut a text/caption sequence that is longer than the context (episodes are sized to fit)."""
    if len(seq) <= limit:
        return seq
    keep = {k: v < limit for k, v in seq.patch_at.items()}
    return TokenSequence(
        seq.tokens[:limit],
        seq.loss_mask[:limit],
        seq.local_pos[:limit],
        {k: v[keep[k]] for k, v in seq.patches.items() if keep[k].any()},
        {k: v[keep[k]] for k, v in seq.patch_at.items() if keep[k].any()},
    )
