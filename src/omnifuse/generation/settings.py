"""Sampling controls for every generative kind, validated, mapped onto HF `GenerationConfig`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

STRATEGIES = ("greedy", "beam", "sample")

MAX_NEW_TOKENS_LIMIT = 512
"""Default ceiling on `max_new_tokens` (the server and the CLI may set a lower one)."""


class GenerationError(ValueError):
    """A request that cannot be generated as asked (names the field and the limit): a 4xx."""


@dataclass
class GenerationSettings:
    """How to decode. Defaults: greedy, 32 new tokens, KV cache on."""

    max_new_tokens: int = 32
    """Most tokens generated per sequence (not counting the prompt); at most the caller's limit."""
    min_new_tokens: int = 0
    """Fewest tokens generated before EOS may end a sequence (benchmarks set it = max_new_tokens)."""
    strategy: str = "greedy"
    """`greedy` (arg-max), `beam` (beam search with `num_beams`) or `sample` (multinomial)."""
    num_beams: int = 4
    """Beams for `beam`; ignored otherwise."""
    temperature: float = 1.0
    """Softmax temperature for `sample` (> 0); lower is more conservative."""
    top_k: int = 0
    """Keep the k most likely tokens when sampling (0: all)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens with this total probability (0 < p <= 1)."""
    repetition_penalty: float = 1.0
    """> 1 discourages repeating tokens already in the sequence (CTRL, Keskar et al. 2019)."""
    num_return_sequences: int = 1
    """Sequences returned per prompt (<= num_beams for beam search)."""
    use_cache: bool = True
    """Reuse the attention keys/values of earlier positions (KV cache); off recomputes them."""
    stop: list[str] = field(default_factory=list)
    """Stop strings: a sequence ends when its decoded text contains one (it is cut there)."""
    seed: int | None = None
    """Seed for `sample` (None: torch's current random state)."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise GenerationError(f"strategy must be one of {', '.join(STRATEGIES)}; got '{self.strategy}'")
        if int(self.max_new_tokens) < 1:
            raise GenerationError(f"max_new_tokens must be >= 1; got {self.max_new_tokens}")
        if not 0 <= int(self.min_new_tokens) <= int(self.max_new_tokens):
            raise GenerationError(
                f"min_new_tokens must be in [0, max_new_tokens={self.max_new_tokens}]; got {self.min_new_tokens}"
            )
        if self.num_beams < 1:
            raise GenerationError(f"num_beams must be >= 1; got {self.num_beams}")
        if not self.temperature > 0:
            raise GenerationError(f"temperature must be > 0; got {self.temperature}")
        if self.top_k < 0:
            raise GenerationError(f"top_k must be >= 0; got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p must be in (0, 1]; got {self.top_p}")
        if not self.repetition_penalty > 0:
            raise GenerationError(f"repetition_penalty must be > 0; got {self.repetition_penalty}")
        if self.num_return_sequences < 1:
            raise GenerationError(f"num_return_sequences must be >= 1; got {self.num_return_sequences}")
        if self.strategy == "beam" and self.num_return_sequences > self.num_beams:
            raise GenerationError(
                f"num_return_sequences ({self.num_return_sequences}) must be <= num_beams ({self.num_beams})"
            )
        if self.strategy == "greedy" and self.num_return_sequences > 1:
            raise GenerationError("greedy decoding returns one sequence; use strategy 'sample' or 'beam'")
        self.stop = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if any(not s for s in self.stop):
            raise GenerationError("stop strings must be non-empty")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GenerationSettings:
        """From a JSON/YAML mapping; unknown keys are an error naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise GenerationError(f"unknown generation setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_limit(self, limit: int | None) -> None:
        """Refuse `max_new_tokens` above `limit` (the server's or the caller's ceiling)."""
        if limit is not None and self.max_new_tokens > limit:
            raise GenerationError(f"max_new_tokens={self.max_new_tokens} is above the limit of {limit}")

    def hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for HF `generate` / `GenerationConfig`."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(self.max_new_tokens),
            "min_new_tokens": int(self.min_new_tokens),
            "use_cache": bool(self.use_cache),
            "num_return_sequences": int(self.num_return_sequences),
            "repetition_penalty": float(self.repetition_penalty),
        }
        if self.strategy == "greedy":
            kwargs.update(do_sample=False, num_beams=1)
        elif self.strategy == "beam":
            kwargs.update(do_sample=False, num_beams=int(self.num_beams), early_stopping=True)
        else:
            kwargs.update(
                do_sample=True,
                num_beams=1,
                temperature=float(self.temperature),
                top_k=int(self.top_k),
                top_p=float(self.top_p),
            )
        return kwargs
