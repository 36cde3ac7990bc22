"""The generalist's recipe config (`model.type: generalist`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BACKBONES = ("gpt2", "gpt_neo", "llama")
SOURCE_KINDS = ("episodes", "caption", "vqa", "text")


@dataclass
class SourceConfig:
    """One part of the training mixture."""

    kind: str = "episodes"
    """`episodes` (shard directories from `omnifuse data episodes`), `caption` or `vqa` (a shapes-world
    JSONL manifest with `image`, `captions`, `questions`), `text` (a .txt file, one text per line, or a
    manifest whose captions serve as text)."""
    paths: list[str] = field(default_factory=list)
    """Where the data is (several episode directories make one source, balanced per environment)."""
    weight: float = 1.0
    """Share of the training samples drawn from this source (weights are normalised)."""
    limit: int | None = None
    """Use at most this many items of the source (None: all)."""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(
                f"model.mixture.*.kind must be one of {', '.join(SOURCE_KINDS)}; got '{self.kind}'"
            )
        if self.weight < 0:
            raise ValueError(f"model.mixture.*.weight must be >= 0; got {self.weight}")
        if not self.paths:
            raise ValueError("model.mixture.*.paths needs at least one path")


@dataclass
class GeneralistConfig:
    """A Gato-style decoder over one token stream (Reed et al. 2022, https://arxiv.org/abs/2205.06175)."""

    type: Literal["generalist"] = "generalist"
    """The model kind; selects this config in a recipe."""
    backbone: str = "gpt2"
    """`gpt2`, `gpt_neo` or `llama`: an HF causal LM config built from scratch with the sizes below;
    any other value is an HF causal LM name or directory whose weights are loaded (and whose
    embeddings are resized to the Gato vocabulary)."""
    hidden_size: int = 128
    """Width of the transformer."""
    num_layers: int = 4
    """Transformer blocks (from-scratch backbones)."""
    num_heads: int = 4
    """Attention heads per block (from-scratch backbones)."""
    context_length: int = 512
    """Tokens per training sequence and per acting prompt (episode windows are sized to fit)."""
    max_local_positions: int = 64
    """Learned positions inside one observation (Gato's local position encodings)."""
    dropout: float = 0.0
    """Dropout of the from-scratch backbone (residual, attention and embeddings)."""
    value_embedding: bool = True
    """Add a learned function (Fourier features, then a linear layer) of each continuous token's
    companded value to its embedding, so that neighbouring bins start out alike and the order of
    the 1024 bins need not be learned from data alone. Not in Gato (which learns each bin's
    embedding independently); off reproduces it."""
    n_bins: int = 1024
    """Uniform bins of mu-law companded continuous values."""
    mu: float = 100.0
    """mu of the mu-law companding of continuous values (Gato: 100)."""
    m: float = 256.0
    """M of the mu-law companding: values are scaled by log(mu * |x| + 1) / log(M * mu + 1) (Gato: 256)."""
    n_discrete: int = 64
    """Discrete values (actions, directions) the vocabulary has ids for."""
    image_size: int = 32
    """Images are resized to this square before they are cut into patches."""
    patch_size: int = 8
    """Side of the square image patches, each one token (image_size must be a multiple)."""
    text_tokenizer: str = "word"
    """`word`: a word-level tokenizer fitted on the mixture's texts and missions (with a pretrained
    `backbone`: that model's own tokenizer); else an HF tokenizer name or dir."""
    prompt_prob: float = 0.25
    """Chance that an episode window is preceded by a demonstration of the same task (Gato: 0.25)."""
    prompt_steps: int = 8
    """Steps of the demonstration prompt (its last ones)."""
    window_steps: int | None = None
    """Most episode steps per training window (None: as many as fit the context). Short windows make
    the model read the current observation rather than copy the pattern of its past actions, and
    make training steps cheaper; act with a history shorter than this (`max_history`)."""
    mixture: dict[str, SourceConfig] = field(default_factory=dict)
    """Name -> source: the training mixture (episodes, captioning, VQA, text) with its weights."""
    samples_per_epoch: int | None = None
    """Training samples drawn from the mixture per pass (None: the total number of items)."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "context_length", "max_local_positions"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.{name} must be positive; got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})"
            )
        if self.window_steps is not None and self.window_steps < 1:
            raise ValueError(f"model.window_steps must be >= 1 or null; got {self.window_steps}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"model.image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        self.mixture = {
            k: v if isinstance(v, SourceConfig) else SourceConfig(**v) for k, v in self.mixture.items()
        }
        if self.mixture and not sum(s.weight for s in self.mixture.values()) > 0:
            raise ValueError("model.mixture: at least one source needs a positive weight")
