"""Gato-style tokenisation: text, image patches, observations and actions in one token stream.

Gato (Reed et al. 2022, https://arxiv.org/abs/2205.06175), section 2.1, and Hugging Face's
JAT (`jat/processing_jat.py`):

- text goes through any HF tokenizer (ids `[0, V)`);
- continuous values are mu-law companded, `sign(x) log(|x| mu + 1) / log(M mu + 1)` with
  mu = 100 and M = 256, clipped to [-1, 1] and cut into 1024 uniform bins (ids `[V, V + 1024)`);
- discrete values are integers (ids `[V + 1024, V + 1024 + n_discrete)`);
- then the special tokens: the separator between an observation and its action, the end of a
  text answer, padding, and one placeholder per patch kind;
- images (and minigrid's symbolic grids) are not tokens: they become patches (pixel patches;
  one-hot cells for grids) that the model embeds with a linear layer at the placeholder's
  position.

Every range is disjoint (:meth:`GatoTokenizer.ranges`). The loss mask is on for text and action
tokens only (never observations, separators, padding or patches).

An episode window is laid out as `[mission text] (obs_1 | act_1) (obs_2 | act_2) ...` and a
demonstration prompt (another episode of the same task) may come first, as Gato prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from omnifuse.data.episodes.episode import Episode
from omnifuse.data.episodes.spaces import TaskSpace
from omnifuse.data.sample import DataError

PATCH_KINDS = ("grid", "image")


def mu_law(x: np.ndarray, mu: float = 100.0, m: float = 256.0) -> np.ndarray:
    """Companding of Gato eq. (1): `sign(x) log(|x| mu + 1) / log(M mu + 1)`; |x| <= M maps into [-1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x) * mu) / math.log(m * mu + 1.0)


def inverse_mu_law(y: np.ndarray, mu: float = 100.0, m: float = 256.0) -> np.ndarray:
    """The inverse of :func:`mu_law`."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.expm1(np.abs(y) * math.log(m * mu + 1.0)) / mu


def discretize(y: np.ndarray, n_bins: int = 1024) -> np.ndarray:
    """Values in [-1, 1] -> bin indices `[0, n_bins)` of equal width (clipped at the ends)."""
    y = np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0)
    return np.clip(np.floor((y + 1.0) / 2.0 * n_bins), 0, n_bins - 1).astype(np.int64)


def bin_centers(bins: np.ndarray, n_bins: int = 1024) -> np.ndarray:
    """Bin indices -> the centre of each bin in [-1, 1]."""
    return (np.asarray(bins, dtype=np.float64) + 0.5) / n_bins * 2.0 - 1.0


@dataclass
class TokenSequence:
    """One tokenised example. `patches[kind]` is (P, dim) with `patch_at[kind]` (P,) positions."""

    tokens: np.ndarray
    """(T,) token ids; a patch position holds its kind's placeholder id."""
    loss_mask: np.ndarray
    """(T,) True where the token is a prediction target (text, actions)."""
    local_pos: np.ndarray
    """(T,) 1-based position inside the current observation or image (Gato's local position), 0 elsewhere."""
    patches: dict[str, np.ndarray] = field(default_factory=dict)
    patch_at: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


class _Builder:
    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.loss: list[bool] = []
        self.local: list[int] = []
        self.patches: dict[str, list[np.ndarray]] = {k: [] for k in PATCH_KINDS}
        self.patch_at: dict[str, list[int]] = {k: [] for k in PATCH_KINDS}

    def add(self, ids: Sequence[int], loss: bool, local_start: int | None = None) -> None:
        n = len(ids)
        self.tokens.extend(int(i) for i in ids)
        self.loss.extend([loss] * n)
        self.local.extend(range(local_start, local_start + n) if local_start is not None else [0] * n)

    def add_patches(self, kind: str, patches: np.ndarray, placeholder: int, local_start: int) -> None:
        for i, patch in enumerate(patches):
            self.patch_at[kind].append(len(self.tokens))
            self.patches[kind].append(patch)
            self.add([placeholder], False, local_start + i)

    def build(self) -> TokenSequence:
        patches = {k: np.stack(v).astype(np.float32) for k, v in self.patches.items() if v}
        patch_at = {k: np.asarray(self.patch_at[k], dtype=np.int64) for k in patches}
        return TokenSequence(
            np.asarray(self.tokens, dtype=np.int64),
            np.asarray(self.loss, dtype=bool),
            np.asarray(self.local, dtype=np.int64),
            patches,
            patch_at,
        )


class GatoTokenizer:
    """Turns text, images, observations and actions into one stream of ids with disjoint ranges."""

    def __init__(
        self,
        text_tokenizer: Any,
        n_bins: int = 1024,
        mu: float = 100.0,
        m: float = 256.0,
        n_discrete: int = 64,
        image_size: int = 32,
        patch_size: int = 8,
        grid_channels: Sequence[int] = (11, 6, 3),
        grid_shape: Sequence[int] = (7, 7),
    ):
        if n_bins < 2 or n_discrete < 2:
            raise ValueError(f"n_bins and n_discrete must be >= 2; got {n_bins}, {n_discrete}")
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
        self.text_tokenizer = text_tokenizer
        self.n_bins, self.mu, self.m = int(n_bins), float(mu), float(m)
        self.n_discrete = int(n_discrete)
        self.image_size, self.patch_size = int(image_size), int(patch_size)
        self.grid_channels = [int(c) for c in grid_channels]
        self.grid_shape = [int(s) for s in grid_shape]
        self.text_size = len(text_tokenizer)
        self.continuous_offset = self.text_size
        self.discrete_offset = self.continuous_offset + self.n_bins
        special = self.discrete_offset + self.n_discrete
        self.sep_id, self.eos_id, self.pad_id = special, special + 1, special + 2
        self.placeholder = {"grid": special + 3, "image": special + 4}
        self.vocab_size = special + 5

    # ---- layout ---------------------------------------------------------------------------
    def ranges(self) -> dict[str, tuple[int, int]]:
        """Half-open id ranges of each token kind; pairwise disjoint, covering `[0, vocab_size)`."""
        out = {
            "text": (0, self.text_size),
            "continuous": (self.continuous_offset, self.discrete_offset),
            "discrete": (self.discrete_offset, self.sep_id),
            "separator": (self.sep_id, self.sep_id + 1),
            "eos": (self.eos_id, self.eos_id + 1),
            "pad": (self.pad_id, self.pad_id + 1),
        }
        for kind, pid in self.placeholder.items():
            out[f"{kind}_patch"] = (pid, pid + 1)
        return out

    @property
    def patch_dims(self) -> dict[str, int]:
        cells = self.grid_shape[0] * self.grid_shape[1]
        return {"image": 3 * self.patch_size**2, "grid": cells * sum(self.grid_channels)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_bins": self.n_bins,
            "mu": self.mu,
            "m": self.m,
            "n_discrete": self.n_discrete,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "grid_channels": self.grid_channels,
            "grid_shape": self.grid_shape,
        }

    # ---- values -----------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return list(self.text_tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode_text(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids if 0 <= int(i) < self.text_size]
        return self.text_tokenizer.decode(ids, skip_special_tokens=True)

    def encode_continuous(self, values: np.ndarray) -> np.ndarray:
        bins = discretize(mu_law(np.ravel(values), self.mu, self.m), self.n_bins)
        return bins + self.continuous_offset

    def decode_continuous(self, tokens: np.ndarray) -> np.ndarray:
        bins = np.asarray(tokens, dtype=np.int64) - self.continuous_offset
        if bins.size and (bins.min() < 0 or bins.max() >= self.n_bins):
            raise ValueError(f"tokens outside the continuous range {self.ranges()['continuous']}")
        return inverse_mu_law(bin_centers(bins, self.n_bins), self.mu, self.m)

    def encode_discrete(self, values: np.ndarray, name: str = "value") -> np.ndarray:
        values = np.ravel(np.asarray(values)).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() >= self.n_discrete):
            raise DataError(
                f"discrete {name} {values.tolist()} outside [0, {self.n_discrete}); raise n_discrete"
            )
        return values + self.discrete_offset

    def decode_discrete(self, tokens: np.ndarray) -> np.ndarray:
        return np.asarray(tokens, dtype=np.int64) - self.discrete_offset

    def image_patches(self, image: Any) -> np.ndarray:
        """An RGB image (array or PIL) -> (P, 3 * p * p) patches in [-1, 1], row-major."""
        from PIL import Image

        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        img = img.convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
        x = np.asarray(img, dtype=np.float32) / 127.5 - 1.0  # (S, S, 3)
        p, g = self.patch_size, self.image_size // self.patch_size
        return x.reshape(g, p, g, p, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, p * p * 3)

    def grid_patches(self, grid: np.ndarray) -> np.ndarray:
        """A symbolic grid (H, W, C) of per-channel indices -> one (1, H * W * sum(n)) one-hot patch."""
        grid = np.asarray(grid, dtype=np.int64)
        if list(grid.shape) != [*self.grid_shape, len(self.grid_channels)]:
            raise DataError(
                f"grid of shape {list(grid.shape)}; this tokenizer takes {[*self.grid_shape, len(self.grid_channels)]}"
            )
        parts = []
        for c, n in enumerate(self.grid_channels):
            parts.append(np.eye(n, dtype=np.float32)[np.clip(grid[..., c], 0, n - 1)])
        return np.concatenate(parts, axis=-1).reshape(1, -1)

    # ---- spaces -----------------------------------------------------------------------------
    def check_space(self, space: TaskSpace) -> None:
        """Raise DataError naming the field this tokenizer cannot represent."""
        for spec in [*space.observation, space.action]:
            if spec.kind == "discrete" and max(spec.n) > self.n_discrete:
                raise DataError(
                    f"field '{spec.name}' has {max(spec.n)} discrete values; this tokenizer has n_discrete="
                    f"{self.n_discrete}"
                )
            if spec.kind == "grid" and (
                spec.shape[:2] != self.grid_shape or list(spec.n) != self.grid_channels[: len(spec.n)]
            ):
                raise DataError(
                    f"grid field '{spec.name}' {spec.shape} with channel sizes {spec.n}; this tokenizer "
                    f"takes {self.grid_shape} grids with channel sizes {self.grid_channels}"
                )

    def step_tokens(self, space: TaskSpace) -> int:
        """Tokens per (observation | action) step of `space`."""
        n = 0
        for spec in space.observation:
            if spec.kind == "image":
                n += (self.image_size // self.patch_size) ** 2
            elif spec.kind == "grid":
                n += 1
            else:
                n += spec.size
        return n + 1 + space.action.size

    def action_choices(self, space: TaskSpace) -> list[tuple[int, int]]:
        """Per action dimension, the half-open id range a prediction must fall in."""
        if space.action.kind == "discrete":
            return [(self.discrete_offset, self.discrete_offset + space.action.n[0])]
        return [(self.continuous_offset, self.discrete_offset)] * space.action.size

    def encode_action(self, space: TaskSpace, action: np.ndarray) -> np.ndarray:
        if space.action.kind == "discrete":
            return self.encode_discrete(action, "action")
        return self.encode_continuous(np.asarray(action, dtype=np.float64))

    def decode_action(self, space: TaskSpace, tokens: Sequence[int]) -> np.ndarray:
        """Action tokens -> the environment's action (an int, or a clipped float vector)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if space.action.kind == "discrete":
            return self.decode_discrete(tokens).reshape(space.action.shape)
        values = self.decode_continuous(tokens)
        return np.clip(values, space.action.low, space.action.high).astype(np.float32)

    # ---- sequences --------------------------------------------------------------------------
    def _observation(self, b: _Builder, space: TaskSpace, obs: dict[str, np.ndarray]) -> None:
        local = 1  # 0 is "not inside an observation"
        for spec in space.observation:
            value = obs[spec.name]
            if spec.kind == "continuous":
                b.add(self.encode_continuous(value), False, local)
                local += spec.size
            elif spec.kind == "discrete":
                b.add(self.encode_discrete(value, spec.name), False, local)
                local += spec.size
            else:
                patches = self.grid_patches(value) if spec.kind == "grid" else self.image_patches(value)
                b.add_patches(spec.kind, patches, self.placeholder[spec.kind], local)
                local += len(patches)

    def _steps(self, b: _Builder, space: TaskSpace, episode: Episode, start: int, stop: int) -> None:
        for t in range(start, stop):
            self._observation(b, space, episode.observation(t))
            b.add([self.sep_id], False)
            b.add(self.encode_action(space, episode.actions[t]), True)

    def episode_sequence(
        self,
        space: TaskSpace,
        episode: Episode,
        start: int = 0,
        stop: int | None = None,
        prompt: tuple[Episode, int, int] | None = None,
    ) -> TokenSequence:
        """Steps `[start, stop)` of `episode`; `prompt=(demo, a, b)` prepends steps [a, b) of a demo.

        The mission (BabyAI) opens the window (and the prompt) as text without loss.
        """
        stop = len(episode) if stop is None else stop
        if not 0 <= start < stop <= len(episode):
            raise ValueError(f"window [{start}, {stop}) outside an episode of {len(episode)} steps")
        b = _Builder()
        if prompt is not None:
            demo, a, z = prompt
            if space.mission and demo.mission:
                b.add(self.encode_text(demo.mission), False)
            self._steps(b, space, demo, a, z)
        if space.mission and episode.mission:
            b.add(self.encode_text(episode.mission), False)
        self._steps(b, space, episode, start, stop)
        return b.build()

    def act_prompt(
        self,
        space: TaskSpace,
        mission: str,
        history: Sequence[tuple[dict[str, np.ndarray], np.ndarray]],
        observation: dict[str, np.ndarray],
        prompt: TokenSequence | None = None,
    ) -> TokenSequence:
        """The sequence before an action: `[prompt] [mission] (obs | act)* obs |`."""
        b = _Builder()
        if prompt is not None:
            _extend(b, prompt)
        if space.mission and mission:
            b.add(self.encode_text(mission), False)
        for obs, action in history:
            self._observation(b, space, obs)
            b.add([self.sep_id], False)
            b.add(self.encode_action(space, action), True)
        self._observation(b, space, observation)
        b.add([self.sep_id], False)
        return b.build()

    def caption_sequence(self, image: Any, caption: str | None = None) -> TokenSequence:
        """`patches | caption <eos>`; the caption and its end are targets (None: a generation prompt)."""
        b = _Builder()
        b.add_patches("image", self.image_patches(image), self.placeholder["image"], 1)
        b.add([self.sep_id], False)
        if caption is not None:
            b.add(self.encode_text(caption), True)
            b.add([self.eos_id], True)
        return b.build()

    def vqa_sequence(self, image: Any, question: str, answer: str | None = None) -> TokenSequence:
        """`patches question | answer <eos>`; only the answer and its end are targets."""
        b = _Builder()
        b.add_patches("image", self.image_patches(image), self.placeholder["image"], 1)
        b.add(self.encode_text(question), False)
        b.add([self.sep_id], False)
        if answer is not None:
            b.add(self.encode_text(answer), True)
            b.add([self.eos_id], True)
        return b.build()

    def text_sequence(self, text: str) -> TokenSequence:
        """Plain text: every token (and the end) is a target."""
        b = _Builder()
        b.add(self.encode_text(text), True)
        b.add([self.eos_id], True)
        return b.build()

    # ---- batches ----------------------------------------------------------------------------
    def collate(
        self, sequences: Sequence[TokenSequence], max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Right-padded batch: `tokens`, `attention_mask`, `loss_mask`, `local_pos` (B, T) and per patch
        kind `<kind>_patches` (N, dim) with `<kind>_patch_at` (N,) flat positions `b * T + t`."""
        if not sequences:
            raise ValueError("collate needs at least one sequence")
        longest = max(len(s) for s in sequences)
        if max_length is not None and longest > max_length:
            raise DataError(f"a sequence of {longest} tokens exceeds the context of {max_length}")
        n, t = len(sequences), longest
        tokens = np.full((n, t), self.pad_id, dtype=np.int64)
        attn = np.zeros((n, t), dtype=np.int64)
        loss = np.zeros((n, t), dtype=bool)
        local = np.zeros((n, t), dtype=np.int64)
        patches: dict[str, list[np.ndarray]] = {k: [] for k in PATCH_KINDS}
        at: dict[str, list[np.ndarray]] = {k: [] for k in PATCH_KINDS}
        for i, s in enumerate(sequences):
            tokens[i, : len(s)] = s.tokens
            attn[i, : len(s)] = 1
            loss[i, : len(s)] = s.loss_mask
            local[i, : len(s)] = s.local_pos
            for kind, value in s.patches.items():
                patches[kind].append(value)
                at[kind].append(s.patch_at[kind] + i * t)
        batch = {
            "tokens": torch.from_numpy(tokens),  # (B, T)
            "attention_mask": torch.from_numpy(attn),  # (B, T)
            "loss_mask": torch.from_numpy(loss),  # (B, T)
            "local_pos": torch.from_numpy(local),  # (B, T)
        }
        for kind in PATCH_KINDS:
            if patches[kind]:
                batch[f"{kind}_patches"] = torch.from_numpy(np.concatenate(patches[kind]))  # (N, dim)
                batch[f"{kind}_patch_at"] = torch.from_numpy(np.concatenate(at[kind]))  # (N,)
        return batch


def _extend(b: _Builder, seq: TokenSequence) -> None:
    offset = len(b.tokens)
    b.tokens.extend(int(x) for x in seq.tokens)
    b.loss.extend(bool(x) for x in seq.loss_mask)
    b.local.extend(int(x) for x in seq.local_pos)
    for kind, value in seq.patches.items():
        b.patches[kind].extend(list(value))
        b.patch_at[kind].extend(int(p) + offset for p in seq.patch_at[kind])
