"""Processors: lists of raw samples -> batch tensors, with settings saved beside the weights.

A `Processor` holds one processor per modality. Its `to_dict()` goes into an artifact's
`processor.json` (tokenizer files are written next to it), so a loaded model always runs
with the preprocessing it was trained with.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from omnifuse.data.decode import load_image
from omnifuse.data.processor_base import (  # noqa: F401  (PROCESSOR_KINDS re-exported)
    PROCESSOR_KINDS,
    ProcessorBase,
    SettingsProcessor,
    register_processor,
)
from omnifuse.utils.paths import resolve_model_path

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_word_tokenizer(texts: Sequence[str], min_frequency: int = 1):
    """A word-level tokenizer (HF `tokenizers`) over `texts`, for from-scratch text towers.

    Lower-cases, splits on whitespace and punctuation, wraps every text as `[CLS] ... [SEP]`.
    The vocabulary is ordered by (-frequency, word), so the same texts always give the same
    ids, in any process (the library's own trainer breaks ties in hash order).
    """
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.Whitespace()
    counts = Counter(
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    words = sorted((w for w, c in counts.items() if c >= min_frequency), key=lambda w: (-counts[w], w))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + [w for w in words if w not in SPECIAL_TOKENS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def first_text(value: str | Sequence[str]) -> str:
    """A text value, or the first of its paraphrases (the canonical one)."""
    return value if isinstance(value, str) else value[0]


@register_processor("text")
class TextProcessor(ProcessorBase):
    """Tokenises strings with an HF tokenizer: `{"text": ids (B, T), "text_mask": (B, T)}`.

    A raw value may be a list of paraphrases: training picks one at random (seeded by the
    caller's rng), evaluation takes the first.
    """

    modality = "text"

    def __init__(self, tokenizer: Any, max_length: int = 32, name_or_path: str | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.name_or_path = name_or_path

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @staticmethod
    def choose(value: str | Sequence[str], rng: random.Random | None) -> str:
        if isinstance(value, str) or rng is None:
            return first_text(value)
        return value[rng.randrange(len(value))]

    def __call__(
        self,
        values: Sequence[str | Sequence[str]],
        train: bool = False,
        rngs: Sequence[random.Random] | None = None,
    ) -> dict[str, torch.Tensor]:
        texts = [self.choose(v, rngs[i] if (train and rngs) else None) for i, v in enumerate(values)]
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"text": enc["input_ids"], "text_mask": enc["attention_mask"]}

    def state(self) -> dict[str, Any]:
        """The tokenizer's directory (beside processor.json) and the constructor's other
        arguments; subclasses add theirs."""
        return {"tokenizer": "tokenizer", "max_length": self.max_length}

    def save_files(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))

    @classmethod
    def from_state(cls, state: dict[str, Any], directory: Path) -> TextProcessor:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(directory / state["tokenizer"]))
        return cls(tok, **{k: v for k, v in state.items() if k != "tokenizer"})

    @classmethod
    def from_pretrained(cls, name_or_path: str, max_length: int = 77) -> TextProcessor:
        from transformers import AutoTokenizer

        return cls(
            AutoTokenizer.from_pretrained(resolve_model_path(name_or_path)),
            max_length=max_length,
            name_or_path=name_or_path,
        )


@dataclass
class ImageSettings:
    """Everything image preprocessing needs; saved in `processor.json`."""

    size: int = 64
    """Output side length in pixels (square)."""
    resize: int | None = None
    """Shorter side is resized to this before the centre crop (default: `size`)."""
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    train_random_resized_crop: bool = False
    """Train-time random resized crop (off by default: it moves objects, breaking position labels)."""
    crop_scale: tuple[float, float] = (0.8, 1.0)
    train_hflip: bool = False
    """Train-time horizontal flip (off by default: it swaps left and right)."""

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"image size must be positive, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("image mean and std need 3 values (RGB)")
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        self.crop_scale = tuple(self.crop_scale)


@register_processor("image")
class ImageProcessor(SettingsProcessor):
    """PIL + numpy + torch image pipeline: resize, centre crop, normalise -> `(B, 3, H, W)`.

    Train-time random resized crop and horizontal flip are optional (see `ImageSettings`).
    """

    modality = "image"
    settings_class = ImageSettings

    def __init__(self, settings: ImageSettings | None = None, **kwargs: Any):
        self.settings = settings or ImageSettings(**kwargs)
        s = self.settings
        self._mean = torch.tensor(s.mean).view(3, 1, 1)
        self._std = torch.tensor(s.std).view(3, 1, 1)

    def _eval_view(self, img: Image.Image) -> Image.Image:
        s = self.settings
        short = s.resize or s.size
        w, h = img.size
        if (w, h) != (s.size, s.size):
            scale = short / min(w, h)
            img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BICUBIC)
            w, h = img.size
            left, top = (w - s.size) // 2, (h - s.size) // 2
            img = img.crop((left, top, left + s.size, top + s.size))
        return img

    def _train_view(self, img: Image.Image, rng: random.Random) -> Image.Image:
        s = self.settings
        if s.train_random_resized_crop:
            w, h = img.size
            area = w * h * rng.uniform(*s.crop_scale)
            ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw = min(w, max(1, round((area * ratio) ** 0.5)))
            ch = min(h, max(1, round((area / ratio) ** 0.5)))
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            img = img.crop((left, top, left + cw, top + ch)).resize((s.size, s.size), Image.BICUBIC)
        else:
            img = self._eval_view(img)
        if s.train_hflip and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return img

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) normalised float, in one vectorised pass."""
        x = pixels.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
        return x.sub_(self._mean).div_(self._std)

    def __call__(
        self, values: Sequence[Any], train: bool = False, rngs: Sequence[random.Random] | None = None
    ) -> dict[str, torch.Tensor]:
        if any(isinstance(v, (list, tuple)) for v in values):
            return self._sequences(values, train, rngs)
        arrays = []
        for i, v in enumerate(values):
            img = v if isinstance(v, Image.Image) and v.mode == "RGB" else load_image(v)
            img = self._train_view(img, rngs[i]) if (train and rngs) else self._eval_view(img)
            arrays.append(np.asarray(img, dtype=np.uint8))
        return {"image": self.normalize(torch.from_numpy(np.stack(arrays)))}  # (B, 3, H, W)

    def _sequences(
        self, values: Sequence[Any], train: bool, rngs: Sequence[random.Random] | None
    ) -> dict[str, torch.Tensor]:
        """Several images per sample: `image` (B, N, 3, H, W) zero-padded, `image_count` (B,)."""
        groups = [list(v) if isinstance(v, (list, tuple)) else [v] for v in values]
        flat = [img for g in groups for img in g]
        flat_rngs = [rngs[i] for i, g in enumerate(groups) for _ in g] if (train and rngs) else None
        pixels = self(flat, train=train, rngs=flat_rngs)["image"]  # (M, 3, H, W)
        images = pixels.new_zeros((len(groups), max(len(g) for g in groups), *pixels.shape[1:]))
        at = 0
        for b, g in enumerate(groups):
            images[b, : len(g)] = pixels[at : at + len(g)]
            at += len(g)
        return {"image": images, "image_count": torch.tensor([len(g) for g in groups])}


@dataclass
class Processor:
    """One processor per modality; `__call__` turns raw values into one batch dict."""

    processors: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return sorted(self.processors)

    def __getitem__(self, modality: str) -> Any:
        if modality not in self.processors:
            raise KeyError(f"no processor for modality '{modality}'; this model has {self.modalities}")
        return self.processors[modality]

    def __call__(
        self,
        inputs: dict[str, Sequence[Any]],
        train: bool = False,
        rngs: Sequence[random.Random] | None = None,
    ) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for modality in sorted(inputs):
            batch.update(self[modality](inputs[modality], train=train, rngs=rngs))
        return batch

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        settings = {m: self.processors[m].save(directory) for m in self.modalities}
        (directory / "processor.json").write_text(json.dumps(settings, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> Processor:
        directory = Path(directory)
        path = directory / "processor.json"
        if not path.exists():
            return cls({})
        settings = json.loads(path.read_text())
        procs = {}
        for modality, s in settings.items():
            kind = s.get("kind")
            if kind not in PROCESSOR_KINDS:
                raise ValueError(f"{path}: unknown processor kind {kind!r} for '{modality}'")
            procs[modality] = PROCESSOR_KINDS[kind].load(directory, s)
        return cls(procs)

    def fingerprint(self) -> str:
        """A short hash of the settings, to check two artifacts preprocess alike."""
        blob = json.dumps({m: p.to_dict() for m, p in self.processors.items()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
