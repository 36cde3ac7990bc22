"""Classifier-free guidance as an HF logits processor.

Classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598; for
autoregressive token models, Gafni et al. 2022 "Make-A-Scene", https://arxiv.org/abs/2203.13131):
at each step the next-token log-probabilities of the conditional sequence are pushed away from
those of an unconditional twin (the same sequence with the condition replaced by a null prompt),

    guided = uncond + scale * (cond - uncond),     on log-softmax scores;

scale 1 is plain conditional sampling (the scores are returned unchanged), 0 is unconditional.
The twin runs through the same model inside the processor with its own KV cache, fed the tokens
HF `generate` samples for the conditional rows, so both stay in step. Use with `generate`:

    lm.generate(input_ids=cond, logits_processor=LogitsProcessorList(
        [ClassifierFreeGuidance(lm, uncond_prefix, scale=3.0)]), do_sample=True, ...)

HF's own `UnbatchedClassifierFreeGuidanceLogitsProcessor` does the same for one prompt format;
this one checks shapes, keeps tokens that the other processors forbade (-inf) forbidden for every
scale, and works with the current cache API.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import LogitsProcessor

from omnifuse.generation.settings import GenerationError

MAX_GUIDANCE_SCALE = 20.0
"""Largest guidance scale accepted (beyond it samples saturate; servers may set a lower limit)."""


def check_guidance_scale(scale: float, limit: float = MAX_GUIDANCE_SCALE) -> float:
    """A guidance scale in [0, limit], or a GenerationError (a 4xx) naming the limit."""
    scale = float(scale)
    if not 0.0 <= scale <= limit:
        raise GenerationError(f"guidance_scale must be in [0, {limit:g}]; got {scale:g}")
    return scale


class ClassifierFreeGuidance(LogitsProcessor):
    """Mixes conditional and unconditional next-token scores; see the module docstring.

    `unconditional_ids` (B, P) is the unconditional prompt, as long as the conditional one (so
    positions agree) and with the same batch size; every position is attended to (unpadded
    prompts, as for the conditional rows). Create one processor per `generate` call.
    """

    def __init__(self, model, unconditional_ids: torch.Tensor, scale: float, use_cache: bool = True):
        self.model = model
        self.scale = check_guidance_scale(scale)
        self.prefix = unconditional_ids
        self.use_cache = use_cache
        self.prompt_length: int | None = None
        self.cache = None

    @torch.no_grad()
    def unconditional_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, V) of the unconditional twin of `input_ids`."""
        if self.prompt_length is None:  # first step: nothing sampled yet
            if input_ids.shape != self.prefix.shape:
                raise ValueError(
                    f"the unconditional prompt has shape {tuple(self.prefix.shape)}; the conditional one "
                    f"{tuple(input_ids.shape)} (they must match: same batch, same length)"
                )
            self.prompt_length = input_ids.shape[1]
            step_ids = self.prefix.to(input_ids.device)
        elif self.use_cache:
            step_ids = input_ids[:, -1:]  # the token just sampled for the conditional row
        else:
            step_ids = torch.cat([self.prefix.to(input_ids.device), input_ids[:, self.prompt_length :]], 1)
        seen = self.prefix.shape[1] + input_ids.shape[1] - self.prompt_length  # twin length so far
        mask = torch.ones(step_ids.shape[0], seen, dtype=torch.long, device=input_ids.device)
        out = self.model(input_ids=step_ids, attention_mask=mask, cache=self.cache, use_cache=self.use_cache)
        self.cache = out.get("cache") if self.use_cache else None
        return out.logits[:, -1].float()  # (B, V)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cond = F.log_softmax(scores.float(), dim=-1)  # (B, V)
        if self.scale == 1.0:
            return cond
        allowed = torch.isfinite(cond)  # tokens earlier processors forbade stay forbidden
        uncond = self.unconditional_logits(input_ids).masked_fill(~allowed, float("-inf"))
        uncond = F.log_softmax(uncond, dim=-1)
        guided = uncond + self.scale * (cond - uncond)
        return torch.where(allowed, guided, torch.full_like(guided, float("-inf")))
