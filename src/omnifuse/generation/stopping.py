"""Stopping on strings (beside EOS and `max_new_tokens`, which HF `generate` handles)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StoppingCriteria


def truncate_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to (not including) the first occurrence of any stop string."""
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


class StopOnStrings(StoppingCriteria):
    """Ends each sequence once its newly generated text contains one of `stops`.

    Only the tokens after the prompt (`prompt_length`) are decoded; a finished row stays
    finished (HF keeps padding it).
    """

    def __init__(self, tokenizer, stops: Sequence[str], prompt_length: int):
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.prompt_length :]  # (B, T_new)
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
