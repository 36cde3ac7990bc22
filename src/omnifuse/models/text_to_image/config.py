"""The text-to-image prior's recipe config (`model.type: text_to_image`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class TextToImageConfig:
    """A decoder-only transformer over [text tokens; <image>; image codes] (DALL-E's prior).

    The image codes come from a trained `image_tokenizer` artifact, frozen and saved inside the
    prior's own artifact. The text context is `processor.text.max_length` tokens.
    """

    type: Literal["text_to_image"] = "text_to_image"
    """The model kind; selects this config in a recipe."""
    image_tokenizer: str = ""
    """Directory of a trained `image_tokenizer` artifact (required)."""
    grid: int | None = None
    """Expected token grid of the tokenizer; null takes the tokenizer's. A tokenizer with another
    grid is refused."""
    codebook_size: int | None = None
    """Expected codebook size of the tokenizer; null takes the tokenizer's. A mismatch is refused."""
    hidden: int = 128
    """Transformer width (GPT-2 `n_embd`)."""
    layers: int = 4
    """Transformer blocks (GPT-2 `n_layer`)."""
    heads: int = 4
    """Attention heads (GPT-2 `n_head`)."""
    dropout: float = 0.0
    """Residual, embedding and attention dropout."""
    hf_overrides: dict[str, Any] = field(default_factory=dict)
    """Further GPT-2 config fields (e.g. `activation_function: gelu_new`)."""
    text_loss_weight: float = 1.0
    """Weight of the text-token loss (DALL-E: 1/8)."""
    image_loss_weight: float = 7.0
    """Weight of the image-token loss (DALL-E: 7/8); the loss is the weighted mean of the two."""
    text_drop_prob: float = 0.1
    """Training: replace the text by the null prompt (all padding) with this probability, so the
    model also learns the unconditional distribution that classifier-free guidance needs."""
    long_prompt: Literal["truncate", "error"] = "truncate"
    """A prompt longer than the text context: `truncate` keeps its first tokens and logs a
    warning; `error` refuses it."""

    def __post_init__(self) -> None:
        if not self.image_tokenizer:
            raise ValueError("model.image_tokenizer is required: the directory of a trained image_tokenizer")
        for name in ("hidden", "layers", "heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.{name} must be positive; got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden ({self.hidden}) must be divisible by model.heads ({self.heads})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1); got {self.dropout}")
        if self.text_loss_weight < 0 or self.image_loss_weight <= 0:
            raise ValueError(
                "model.text_loss_weight must be >= 0 and model.image_loss_weight > 0; got "
                f"{self.text_loss_weight} and {self.image_loss_weight}"
            )
        if not 0 <= self.text_drop_prob < 1:
            raise ValueError(f"model.text_drop_prob must be in [0, 1); got {self.text_drop_prob}")
