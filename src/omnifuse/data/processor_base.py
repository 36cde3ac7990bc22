"""What every modality processor shares: its entry in `processor.json`, written and read once.

A processor is saved as ``{"kind": <registered name>, **state}`` (plus any files it writes,
such as a tokenizer) and rebuilt by the class registered under that kind. Processors register
with ``@register_processor("audio")``; this module imports nothing else of omnifuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, TypeVar

P = TypeVar("P", bound=type["ProcessorBase"])

PROCESSOR_KINDS: dict[str, type[ProcessorBase]] = {}
"""`kind` in processor.json -> the processor class that loads it."""


def register_processor(kind: str) -> Callable[[P], P]:
    """Class decorator: save the processor as `kind` and load `kind` entries with it."""

    def decorate(cls: P) -> P:
        if kind in PROCESSOR_KINDS and PROCESSOR_KINDS[kind] is not cls:
            raise ValueError(f"processor kind '{kind}' is already registered by {PROCESSOR_KINDS[kind]}")
        cls.kind = kind
        PROCESSOR_KINDS[kind] = cls
        return cls

    return decorate


class ProcessorBase:
    """Subclasses give `state()` (JSON-able) and `from_state(state, directory)`; files beside
    processor.json (a tokenizer) go through `save_files`."""

    kind: ClassVar[str] = ""

    def state(self) -> dict[str, Any]:
        """Everything that rebuilds this processor, JSON-able."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any], directory: Path) -> ProcessorBase:
        """The processor `state()` described (files, if any, read from `directory`)."""
        raise NotImplementedError

    def save_files(self, directory: Path) -> None:
        """Write the files the state refers to (none by default)."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.state()}

    def save(self, directory: Path) -> dict[str, Any]:
        """Write its files under `directory`; the entry for processor.json."""
        self.save_files(directory)
        return self.to_dict()

    @classmethod
    def load(cls, directory: Path, settings: dict[str, Any]) -> ProcessorBase:
        """Rebuild from a processor.json entry (and the files under `directory`)."""
        return cls.from_state({k: v for k, v in settings.items() if k != "kind"}, directory)


class SettingsProcessor(ProcessorBase):
    """A processor whose whole state is one settings dataclass (`self.settings`)."""

    settings_class: ClassVar[type]
    settings: Any

    def state(self) -> dict[str, Any]:
        return asdict(self.settings)

    @classmethod
    def from_state(cls, state: dict[str, Any], directory: Path) -> SettingsProcessor:
        return cls(cls.settings_class(**state))
