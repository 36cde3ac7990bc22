"""Run a causal LM's HF `generate` with :class:`GenerationSettings`; typed output, clear errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from omnifuse.generation.settings import GenerationError, GenerationSettings
from omnifuse.generation.stopping import StopOnStrings, truncate_at_stop

_CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass
class GenerationOutput:
    """What a generation call returns, one entry per generated sequence.

    With `num_return_sequences = n`, the sequences of prompt i are rows i*n ... i*n + n - 1.
    """

    texts: list[str]
    """Decoded new text (special tokens skipped, cut at a stop string)."""
    token_ids: list[list[int]]
    """New token ids, up to (not including) EOS or padding."""
    finish_reasons: list[str]
    """`eos` (the model ended it), `stop` (a stop string) or `length` (max_new_tokens)."""
    prompt_tokens: int = 0
    """Prompt length in tokens (padded batch width, including image placeholder tokens)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Kind-specific extras (e.g. scores)."""

    @property
    def new_tokens(self) -> int:
        """Tokens generated over all sequences (the figure `bench generate` divides by time)."""
        return sum(len(t) for t in self.token_ids)


def context_length(config: Any) -> int | None:
    """The longest sequence an HF LM config allows (positions), or None when unbounded (RoPE ...)."""
    for name in _CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def ensure_pad_token(tokenizer, lm=None) -> int:
    """A pad id for batching: the tokenizer's, else its EOS (GPT-2, Llama have none); set on both."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise GenerationError("the tokenizer has neither a pad nor an EOS token; add a pad token")
        tokenizer.pad_token = tokenizer.eos_token
    if lm is not None and getattr(lm.config, "pad_token_id", None) is None:
        lm.config.pad_token_id = tokenizer.pad_token_id
    return int(tokenizer.pad_token_id)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists (decoder-only LMs continue from the right end).

    Returns `input_ids` (B, T) and `attention_mask` (B, T) with 0 on padding.
    """
    if not rows:
        raise GenerationError("no prompts to generate from")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, width - len(row) :] = torch.as_tensor(list(row), dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


def check_context(prompt_tokens: int, settings: GenerationSettings, limit: int | None) -> None:
    """A prompt plus `max_new_tokens` must fit the LM's positions."""
    if limit is None:
        return
    if prompt_tokens >= limit:
        raise GenerationError(
            f"the prompt is {prompt_tokens} tokens; the language model's context is {limit} tokens"
        )
    if prompt_tokens + settings.max_new_tokens > limit:
        raise GenerationError(
            f"prompt ({prompt_tokens} tokens) + max_new_tokens ({settings.max_new_tokens}) exceeds the "
            f"language model's context of {limit} tokens; lower max_new_tokens to "
            f"{limit - prompt_tokens} or shorten the prompt"
        )


def hf_generate(
    lm,
    tokenizer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: GenerationSettings,
    *,
    eos_token_id: int | Sequence[int] | None = None,
    suppress_token_ids: Sequence[int] = (),
    streamer=None,
    **generate_kwargs: Any,
) -> GenerationOutput:
    """Decode from `lm` (an HF causal LM) with `settings`, prompts left-padded.

    `eos_token_id` (one id or several) ends a sequence (default: the tokenizer's EOS);
    `suppress_token_ids` are never generated (e.g. image placeholders); `streamer` is an HF
    streamer (batch size 1); other keyword arguments go to `generate` as they are.
    """
    from transformers import GenerationConfig, StoppingCriteriaList

    prompt_tokens = int(input_ids.shape[1])
    check_context(prompt_tokens, settings, context_length(lm.config))
    pad_id = ensure_pad_token(tokenizer)
    if eos_token_id is None:
        eos_token_id = tokenizer.eos_token_id
    eos_ids = (
        []
        if eos_token_id is None
        else [eos_token_id]
        if isinstance(eos_token_id, int)
        else list(eos_token_id)
    )
    config = GenerationConfig(
        **settings.hf_kwargs(),
        pad_token_id=pad_id,
        eos_token_id=eos_ids or None,
        suppress_tokens=list(suppress_token_ids) or None,
    )
    stopping = StoppingCriteriaList()
    if settings.stop:
        stopping.append(StopOnStrings(tokenizer, settings.stop, prompt_tokens))
    if settings.strategy == "sample" and settings.seed is not None:
        torch.manual_seed(settings.seed)
    if (
        streamer is not None
        and input_ids.shape[0]
        * settings.num_return_sequences
        * (settings.num_beams if settings.strategy == "beam" else 1)
        != 1
    ):
        raise GenerationError("streaming decodes one sequence: batch size 1, greedy or sampling")
    with torch.inference_mode():
        sequences = lm.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=config,
            stopping_criteria=stopping,
            streamer=streamer,
            **generate_kwargs,
        )
    new = sequences[:, prompt_tokens:]  # (B * n, T_new)
    texts, ids, reasons = [], [], []
    for row in new.tolist():
        end, reason = len(row), "length"
        for j, tok in enumerate(row):
            if tok in eos_ids:
                end, reason = j, "eos"
                break
        if reason == "length" and pad_id not in eos_ids and len(row) < settings.max_new_tokens:
            end = len(row)  # generation stopped early for the whole batch (stop string)
        row = row[:end]
        text = tokenizer.decode(row, skip_special_tokens=True)
        if settings.stop:
            cut = truncate_at_stop(text, settings.stop)
            if cut != text:
                text, reason = cut, "stop"
        texts.append(text.strip())
        ids.append(row)
        reasons.append(reason)
    return GenerationOutput(texts=texts, token_ids=ids, finish_reasons=reasons, prompt_tokens=prompt_tokens)


def outside_range(vocab_size: int, start: int, stop: int) -> list[int]:
    """Token ids outside [start, stop): pass them as `suppress_token_ids` to :func:`hf_generate` so
    that only that range is sampled (e.g. the image codes of a text-to-image prior)."""
    if not 0 <= start < stop <= vocab_size:
        raise GenerationError(f"token range [{start}, {stop}) is not inside the vocabulary [0, {vocab_size})")
    return [*range(0, start), *range(stop, vocab_size)]
