"""The unit of data: a dict of modality -> raw value, plus labels and metadata.

A raw value is what a reader found, before any processing: a text string, an image
path / bytes / numpy array / PIL image, and later audio or video paths. Processors
(`omnifuse.data.processors`) turn lists of samples into batch tensors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("omnifuse.data")

#: Modalities known to the library, in the order used for parameters and batches.
MODALITIES: tuple[str, ...] = ("audio", "image", "text", "video")


@dataclass
class Sample:
    """One multimodal example.

    inputs: modality name -> raw value (e.g. ``{"text": "a red circle", "image": "img/0.png"}``).
        A text value may be a list of paraphrases; the dataset picks one per epoch.
    labels: task name -> label (class name, index, list of answers ...).
    meta: anything else; ``meta["source"]`` names where the sample came from ("file:line").
    """

    inputs: dict[str, Any]
    labels: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "<unknown>"))

    @property
    def modalities(self) -> list[str]:
        return sorted(self.inputs)


class DataError(ValueError):
    """Bad data that cannot be used: names the file, line or key at fault."""


class CorruptSampleError(DataError):
    """One sample cannot be read (missing or unreadable file, empty text)."""


class CorruptSamplePolicy:
    """Skip-and-count (default) or fail-fast (`strict`) handling of corrupt samples.

    Call `report(source, reason)` for each bad sample; in strict mode it raises at once
    naming the source (file and line), otherwise it counts the sample and remembers the
    first few offenders so the log can name them.
    """

    def __init__(self, strict: bool = False, keep_examples: int = 5, name: str = "data"):
        self.strict = strict
        self.keep_examples = keep_examples
        self.name = name
        self.skipped = 0
        self.examples: list[str] = []

    def report(self, source: str, reason: str) -> None:
        if self.strict:
            raise CorruptSampleError(f"{source}: {reason} (strict mode; drop --strict to skip and count)")
        self.skipped += 1
        if len(self.examples) < self.keep_examples:
            self.examples.append(f"{source}: {reason}")

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.name}: no corrupt samples"
        listed = "; ".join(self.examples)
        return f"{self.name}: skipped {self.skipped} corrupt sample(s); first: {listed}"

    def log(self) -> None:
        if self.skipped:
            logger.warning(self.summary())
