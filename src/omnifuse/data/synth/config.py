"""`SynthConfig`: what `generate` makes, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from omnifuse.data.synth.renderers import RENDERERS
from omnifuse.data.synth.vocab import COLORS, GRID, SHAPES, split_combo

#: Split names, in the order samples are assigned to them (by sample index).
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Held out of the training split by default. Each combination's color and shape also
#: appear in other, seen combinations, so a model has seen every word, never the pair.
DEFAULT_HOLDOUT: tuple[str, ...] = (
    "red circle",
    "blue square",
    "green triangle",
    "yellow star",
    "purple diamond",
    "cyan hexagon",
)


#: Default voices: espeak-ng English accents with male (m) and female (f) variants.
DEFAULT_VOICES: tuple[str, ...] = ("en-us", "en-us+f3", "en+m3", "en+f2", "en-gb-scotland+m5", "en-us+f4")


@dataclass
class SpeechSettings:
    """How the shapes world's captions are spoken (`SynthConfig.speech`)."""

    caption: Literal["canonical", "short"] = "canonical"
    """`canonical`: the full caption (size, color, shape, position); `short`: color and shape only."""
    voices: list[str] = field(default_factory=lambda: list(DEFAULT_VOICES))
    """espeak-ng voice names, one drawn per sample (`en-us`, `en+f3`, `en-gb-scotland+m5` ...)."""
    rate: tuple[int, int] = (150, 210)
    """Speaking rate range, words per minute (inclusive)."""
    pitch: tuple[int, int] = (30, 70)
    """Pitch range, 0-100 (inclusive)."""
    snr_db: tuple[float, float] | None = None
    """Background white noise at an SNR drawn from this range (dB); null: clean speech."""
    sample_rate: int = 16_000

    def __post_init__(self) -> None:
        self.rate, self.pitch = tuple(self.rate), tuple(self.pitch)
        self.snr_db = tuple(self.snr_db) if self.snr_db is not None else None
        if not self.voices:
            raise ValueError("speech.voices needs at least one espeak-ng voice name")
        if not 80 <= self.rate[0] <= self.rate[1] <= 450:
            raise ValueError(f"speech.rate must be a (low, high) range within 80-450 wpm; got {self.rate}")
        if not 0 <= self.pitch[0] <= self.pitch[1] <= 100:
            raise ValueError(f"speech.pitch must be a (low, high) range within 0-100; got {self.pitch}")
        if self.snr_db is not None and self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"speech.snr_db must be a (low, high) range; got {self.snr_db}")
        if self.sample_rate <= 0:
            raise ValueError(f"speech.sample_rate must be positive; got {self.sample_rate}")


@dataclass
class SynthConfig:
    """Configuration of the synthetic shapes world.

    Samples ``0 .. n-1`` are assigned to splits in order (first train, then val, then
    test), with ``round(n * fraction)`` samples for train and val and the rest for test.
    Sample ``i`` depends only on ``(seed, i)`` and this config, never on the order or
    process it was made in.
    """

    n: int = 1000
    """Number of samples over all splits."""

    seed: int = 0
    """Base seed; sample ``i`` uses generators seeded from ``(seed, i, stream)``."""

    image_size: int = 64
    """Side of the square images, in pixels (at least 24)."""

    min_objects: int = 1
    """Fewest objects in a scene (at least 1)."""

    max_objects: int = 3
    """Most objects in a scene (at most 9, one per grid cell)."""

    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    """Fraction of samples per split; keys among train/val/test, values summing to 1."""

    holdout: list[str] = field(default_factory=lambda: list(DEFAULT_HOLDOUT))
    """"color shape" combinations never shown in the train split (compositional test)."""

    heldout_test_fraction: float = 0.25
    """Fraction of test scenes forced to contain at least one held-out combination (the
    others are drawn from the full distribution and contain one only by chance), so the
    compositional score is measured on enough samples. Ignored when `holdout` is empty."""

    minimal_pairs: bool = False
    """Pair train scenes: each odd-numbered train scene is the scene before it with one
    object's shape changed (a hard negative, as in NegCLIP, Yuksekgonul et al. 2023,
    arXiv:2210.01936). With a batch sampler that keeps consecutive pairs together
    (`data.group_size: 2`), the contrastive loss cannot be solved by color and position
    alone, and the model learns shape. Val and test scenes stay independent."""

    modalities: list[str] = field(default_factory=lambda: ["image"])
    """Renderers to run per sample (names in `omnifuse.data.synth.renderers.RENDERERS`, which
    `omnifuse.data.synth` fills with image, audio and video)."""

    video_frames: int = 8
    """Frames per clip of the `video` renderer (moving shapes; opt in with `modalities: [image, video]`)."""

    video_size: int = 32
    """Side of the square video frames, in pixels (at least 24)."""

    video_format: str = "mp4"
    """`mp4` (H.264 through PyAV) or `npy` (uint8 arrays (F, H, W, 3))."""

    video_direction_pairs: bool = False
    """Pair train clips: each odd-numbered train sample repeats the scene before it with one
    object moving in another direction (a motion hard negative; keep pairs in one batch with
    `data.group_size: 2`). Not combinable with `minimal_pairs`."""

    speech: SpeechSettings = field(default_factory=SpeechSettings)
    """How the `audio` renderer speaks captions (espeak-ng voices, rate, pitch, noise; opt in with
    `modalities: [image, audio]`): `audio/<id>.wav` at 16 kHz and an `audio` manifest column."""

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n <= 0:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.image_size, int) or self.image_size < 24:
            raise ValueError(f"image_size must be an integer >= 24 pixels, got {self.image_size!r}")
        if not 1 <= self.min_objects <= self.max_objects <= GRID * GRID:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= {GRID * GRID}, "
                f"got min_objects={self.min_objects}, max_objects={self.max_objects}"
            )
        self._check_splits()
        self._check_holdout()
        if not 0.0 <= self.heldout_test_fraction <= 1.0:
            raise ValueError(f"heldout_test_fraction must be in [0, 1], got {self.heldout_test_fraction!r}")
        if not isinstance(self.video_frames, int) or not 2 <= self.video_frames <= 256:
            raise ValueError(f"video_frames must be an integer in [2, 256], got {self.video_frames!r}")
        if not isinstance(self.video_size, int) or self.video_size < 24:
            raise ValueError(f"video_size must be an integer >= 24 pixels, got {self.video_size!r}")
        if self.video_direction_pairs and self.minimal_pairs:
            raise ValueError("video_direction_pairs and minimal_pairs both pair train samples; choose one")
        if self.video_format not in ("mp4", "npy"):
            raise ValueError(f"video_format must be 'mp4' or 'npy', got {self.video_format!r}")
        if isinstance(self.speech, dict):
            self.speech = SpeechSettings(**self.speech)
        unknown = [m for m in self.modalities if m not in RENDERERS]
        if unknown or not self.modalities:
            raise ValueError(
                f"unknown or missing modalities {unknown or self.modalities!r}; known: {', '.join(sorted(RENDERERS))}"
            )

    def _check_splits(self) -> None:
        unknown = [k for k in self.splits if k not in SPLITS]
        if unknown:
            raise ValueError(f"unknown split name(s) {unknown}; allowed: {', '.join(SPLITS)}")
        bad = {k: v for k, v in self.splits.items() if not (isinstance(v, (int, float)) and 0 <= v <= 1)}
        if bad:
            raise ValueError(f"split fractions must be numbers in [0, 1], got {bad}")
        total = sum(self.splits.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions must sum to 1, got {dict(self.splits)} (sum {total:g})")

    def _check_holdout(self) -> None:
        parsed = [split_combo(c) for c in self.holdout]  # raises on unknown color / shape
        if len(set(parsed)) != len(parsed):
            raise ValueError(f"holdout has duplicate combinations: {self.holdout}")
        held = set(parsed)
        if len(COLORS) * len(SHAPES) - len(held) < self.max_objects:
            raise ValueError(
                f"holdout leaves {len(COLORS) * len(SHAPES) - len(held)} seen combinations, fewer than "
                f"max_objects={self.max_objects} (objects in a scene have distinct combinations)"
            )
        for color, shape in parsed:
            # The point of holding out is to test seen words in an unseen pair.
            if all((color, s) in held for s in SHAPES):
                raise ValueError(
                    f"holdout {color + ' ' + shape!r}: color {color!r} is held out with every shape, "
                    "so the train split would never show it; keep at least one seen shape per color"
                )
            if all((c, shape) in held for c in COLORS):
                raise ValueError(
                    f"holdout {color + ' ' + shape!r}: shape {shape!r} is held out with every color, "
                    "so the train split would never show it; keep at least one seen color per shape"
                )

    def split_sizes(self) -> dict[str, int]:
        """Number of samples per split, in `SPLITS` order; the last split takes the rounding rest."""
        names = [s for s in SPLITS if s in self.splits]
        sizes: dict[str, int] = {}
        left = self.n
        for name in names[:-1]:
            sizes[name] = min(left, round(self.n * self.splits[name]))
            left -= sizes[name]
        sizes[names[-1]] = left
        return sizes

    def split_of(self, index: int) -> str:
        """Split of sample ``index`` (samples are assigned to splits in order)."""
        start = 0
        for name, size in self.split_sizes().items():
            if index < start + size:
                return name
            start += size
        raise IndexError(f"sample index {index} out of range for n={self.n}")
