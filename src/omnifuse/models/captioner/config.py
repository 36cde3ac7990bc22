"""The captioner's recipe config (`model.type: captioner`): vision tower, language model, connector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omnifuse.data.synth.captions import CAPTION_PROMPT, END_OF_CHUNK, IMAGE_TOKEN, QUESTION_PROMPT
from omnifuse.encoders.config import TowerConfig
from omnifuse.encoders.lora import LoraSettings

CONNECTORS = ("xattn", "prefix")
__all__ = [
    "CONNECTORS",
    "END_OF_CHUNK",
    "IMAGE_TOKEN",
    "LM_PRESETS",
    "CaptionerConfig",
    "LanguageModelConfig",
]

#: From-scratch language models: (layers, hidden, heads) of a GPT-2 config.
LM_PRESETS = {"tiny": (2, 64, 2), "small": (4, 128, 4), "base": (12, 768, 12)}


@dataclass
class LanguageModelConfig:
    """Where the causal language model comes from, and what of it trains."""

    source: Literal["scratch", "hf"] = "scratch"
    """`scratch`: a GPT-2 preset with random init and the recipe's word tokenizer; `hf`: any
    causal LM by hub name or local directory (`AutoModelForCausalLM`) with its own tokenizer."""
    name_or_path: str | None = None
    """Hub name or directory, for source `hf` (GPT-2, Llama, Qwen, ...)."""
    preset: Literal["tiny", "small", "base"] = "tiny"
    """From-scratch size: tiny (2 layers, 64 wide), small (4 x 128), base (12 x 768)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """GPT-2 config fields for from-scratch presets (e.g. `n_positions: 256`)."""
    trainable: bool = False
    """Train every LM weight (needed for a from-scratch LM); default frozen, as in Flamingo."""
    lora: LoraSettings | None = None
    """LoRA adapters on the (frozen) LM through PEFT; `target_modules` default: the attention
    projections (`c_attn` for GPT-2, query/value elsewhere)."""

    def __post_init__(self) -> None:
        if self.source == "hf" and not self.name_or_path:
            raise ValueError("model.lm.source 'hf' needs model.lm.name_or_path")
        if self.trainable and self.lora is not None:
            raise ValueError("model.lm: choose trainable (all weights) or lora (adapters), not both")


@dataclass
class CaptionerConfig:
    """Flamingo-style (Alayrac et al. 2022, arXiv:2204.14198) or LLaVA-style image-to-text model.

    images -> vision tower (frozen by default) -> Perceiver resampler (`num_latents` tokens per
    image) -> connector into a causal LM: `xattn` adds tanh-gated cross-attention blocks before
    every `cross_attn_every`-th LM layer (gates start at 0: the untrained model is the LM);
    `prefix` (Liu et al. 2023, arXiv:2304.08485) projects the latents with an MLP into the LM's
    input embeddings, in place of the `<image>` placeholders.
    """

    type: Literal["captioner"] = "captioner"
    """The model kind; selects this config in a recipe."""
    connector: Literal["xattn", "prefix"] = "xattn"
    """How images reach the LM: gated cross-attention (`xattn`) or projected prefix tokens (`prefix`)."""
    vision: TowerConfig = field(default_factory=lambda: TowerConfig(arch="vit", preset="tiny", pooling="cls"))
    """The image tower (an omnifuse tower config: from scratch or HF by name)."""
    vision_from: str | None = None
    """A trained DualEncoder artifact whose image tower (and image preprocessing) to use instead."""
    vision_layer: int = -1
    """Which layer's tokens the resampler reads: -1 the tower's output, -2 the layer before (as
    LLaVA reads CLIP; a contrastive tower trains only its pooled token at the last layer, so
    the earlier layer keeps more of what each patch shows). Other than -1 needs an HF tower."""
    freeze_vision: bool = True
    """Keep the image tower's weights fixed (Flamingo freezes it)."""
    lm: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    """The causal language model."""
    num_latents: int = 8
    """Visual tokens per image out of the Perceiver resampler."""
    resampler_depth: int = 2
    """Perceiver resampler layers (each: latents attend to [image tokens; latents], then an MLP)."""
    heads: int = 4
    """Attention heads of the resampler and of the cross-attention blocks."""
    head_dim: int = 32
    """Width of one attention head."""
    ff_mult: int = 2
    """MLP width multiplier of the resampler and the gated blocks."""
    cross_attn_every: int = 1
    """A gated cross-attention block before every N-th LM layer (`xattn`)."""
    gate_scale: float = 1.0
    """Multiplies the tanh gates' parameters (a larger value lets the gates open in fewer steps;
    they still start at exactly 0)."""
    only_attend_immediate_media: bool = True
    """Each text token attends only to the most recent preceding image (else to all before it)."""
    max_images: int = 16
    """Most images per sequence (size of the resampler's media-position embeddings)."""
    max_length: int = 128
    """Most text tokens per training sequence (longer ones are cut)."""
    caption_prompt: str = CAPTION_PROMPT
    """Prompt for captions; `<image>` marks where the image goes."""
    question_prompt: str = QUESTION_PROMPT
    """Prompt for answers; `{question}` is replaced by the question."""

    def __post_init__(self) -> None:
        if self.connector not in CONNECTORS:
            raise ValueError(f"model.connector must be one of {CONNECTORS}; got '{self.connector}'")
        for name in (
            "num_latents",
            "resampler_depth",
            "heads",
            "head_dim",
            "ff_mult",
            "cross_attn_every",
            "max_images",
            "max_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1; got {getattr(self, name)}")
        if not self.gate_scale > 0:
            raise ValueError(f"model.gate_scale must be > 0; got {self.gate_scale}")
        if IMAGE_TOKEN not in self.caption_prompt:
            raise ValueError(f"model.caption_prompt must contain {IMAGE_TOKEN}; got '{self.caption_prompt}'")
        if IMAGE_TOKEN not in self.question_prompt or "{question}" not in self.question_prompt:
            raise ValueError(
                f"model.question_prompt must contain {IMAGE_TOKEN} and {{question}}; got '{self.question_prompt}'"
            )
