"""Decoding shared by every generative model kind, over HF `generate`.

- :class:`GenerationSettings`: sampling controls (greedy, beam search, sampling with
  temperature / top-k / top-p), stopping (EOS, stop strings, `max_new_tokens` under a limit),
  KV cache on or off; validated with errors that name the field.
- :func:`hf_generate`: run a causal LM's `generate` on left-padded prompts with those settings,
  checking the prompt against the LM's context, and return typed :class:`GenerationOutput`.
- :func:`stream_generate`: the same, yielding text pieces as they are decoded (for the server's
  server-sent events and the CLI's `--stream`).
- :class:`ClassifierFreeGuidance`: classifier-free guidance as a logits processor for `generate`;
  :func:`outside_range`: the ids to suppress so only a token range is sampled.
- :class:`DecodeWorkload`: what `omnifuse bench generate` times for a kind (its spec's
  `decode_workload` extra returns one).

No model kind lives here; kinds (captioner, text_to_image, generalist) call these helpers.
"""

from omnifuse.generation.decode import (
    GenerationOutput,
    context_length,
    ensure_pad_token,
    hf_generate,
    left_pad,
    outside_range,
)
from omnifuse.generation.guidance import MAX_GUIDANCE_SCALE, ClassifierFreeGuidance, check_guidance_scale
from omnifuse.generation.settings import (
    MAX_NEW_TOKENS_LIMIT,
    STRATEGIES,
    GenerationError,
    GenerationSettings,
)
from omnifuse.generation.stopping import StopOnStrings, truncate_at_stop
from omnifuse.generation.streaming import stream_generate
from omnifuse.generation.workload import DecodeWorkload

__all__ = [
    "MAX_GUIDANCE_SCALE",
    "MAX_NEW_TOKENS_LIMIT",
    "STRATEGIES",
    "ClassifierFreeGuidance",
    "DecodeWorkload",
    "GenerationError",
    "GenerationOutput",
    "GenerationSettings",
    "StopOnStrings",
    "check_guidance_scale",
    "context_length",
    "ensure_pad_token",
    "hf_generate",
    "left_pad",
    "outside_range",
    "stream_generate",
    "truncate_at_stop",
]
