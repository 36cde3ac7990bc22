"""The `masked_lm` recipe config (`model:` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class MaskedLMConfig:
    """BERT-style pre-training: masked language modelling, with or without next-sentence prediction."""

    type: Literal["masked_lm"] = "masked_lm"
    """The model kind; selects this config in a recipe."""
    source: Literal["scratch", "hf"] = "scratch"
    """`scratch`: a BERT preset with random weights; `hf`: continue from a checkpoint (`name_or_path`)."""
    preset: Literal["tiny", "small", "base"] = "tiny"
    """From-scratch size (hidden, layers, heads, MLP): tiny 64/2/2/128, small 256/4/4/1024, base 768/12/12/3072."""
    name_or_path: str | None = None
    """HF checkpoint (hub name or local directory) to continue pre-training, for source `hf`."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """BertConfig fields to override for a from-scratch model (e.g. `hidden_size: 128`)."""
    tokenizer: str | None = None
    """HF tokenizer (name or directory); null: the checkpoint's own (source `hf`), or a WordPiece
    tokenizer trained on the training documents (source `scratch`), saved with the artifact."""
    vocab_size: int = 4000
    """Vocabulary size of a WordPiece tokenizer trained here."""
    min_frequency: int = 2
    """A WordPiece token is kept only if it occurs at least this often in the training documents."""
    max_length: int = 128
    """Tokens per sample (both segments and the special tokens)."""
    nsp: bool = True
    """Next-sentence prediction (BERT); false: masked language modelling only (RoBERTa-style)."""
    nsp_weight: float = 1.0
    """Weight of the NSP loss in the total (BERT: 1)."""
    mlm_probability: float = 0.15
    """Share of (non-special) tokens chosen for prediction; of those 80 % become [MASK], 10 % a
    random token, 10 % stay (transformers' `DataCollatorForLanguageModeling`)."""
    whole_word_mask: bool = False
    """Mask all WordPiece pieces of a word together (then chosen tokens always become [MASK])."""
    text_column: str = "text"
    """Column holding a document in JSONL / CSV manifests (a string, or a list of sentences)."""
    pooling: Literal["cls", "mean", "pooler"] = "cls"
    """How the encoder pools token features when this model is used as a text tower."""

    @property
    def encoders(self) -> dict[str, Any]:
        """The encoder being pre-trained, as a text tower config."""
        from omnifuse.encoders.config import TowerConfig

        return {
            "text": TowerConfig(
                source=self.source,
                arch="bert",
                preset=self.preset,
                name_or_path=self.name_or_path,
                pooling=self.pooling,
                overrides=dict(self.overrides),
            )  # fmt: skip
        }

    def __post_init__(self) -> None:
        if self.source == "hf" and not self.name_or_path:
            raise ValueError("model.source 'hf' needs model.name_or_path (a checkpoint to continue from)")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"model.mlm_probability must be in (0, 1); got {self.mlm_probability}")
        if self.max_length < 8:
            raise ValueError(f"model.max_length must be >= 8; got {self.max_length}")
        if self.vocab_size < 10:
            raise ValueError(f"model.vocab_size must be >= 10; got {self.vocab_size}")
        if self.nsp_weight < 0:
            raise ValueError(f"model.nsp_weight must be >= 0; got {self.nsp_weight}")
