"""Progress bars that read well in a terminal and in a log file.

On a terminal: tqdm's bar. Elsewhere (a log file, CI, `nohup`): tqdm would write one line per
update joined by carriage returns (hundreds of KB for one training run); `progress_bar` writes
one plain line every `interval_s` seconds instead, and a last one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm

#: Seconds between two lines of a progress bar in a non-TTY.
LOG_INTERVAL_S = 30.0


class _Lines:
    """A file wrapper that turns tqdm's carriage-return refreshes into whole lines, at most one
    per `interval_s` (forced refreshes such as `set_postfix` included); `finish` writes the last."""

    def __init__(self, stream: TextIO, interval_s: float):
        self.stream, self.interval_s = stream, interval_s
        self.written, self.pending, self.at = "", "", float("-inf")

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if not line:
            return
        self.pending = line
        now = time.monotonic()
        if now - self.at >= self.interval_s:
            self._emit()
            self.at = now

    def _emit(self) -> None:
        if self.pending and self.pending != self.written:
            self.stream.write(self.pending + "\n")
            self.written = self.pending

    def finish(self) -> None:
        self._emit()
        self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(tqdm):
    """tqdm whose last state is always written when it closes."""

    def close(self) -> None:
        lines = getattr(self, "_lines", None)
        super().close()
        if lines is not None:
            lines.finish()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(
    iterable: Iterable | None = None, *, interval_s: float = LOG_INTERVAL_S, **kwargs: Any
) -> tqdm:
    """`tqdm(iterable, **kwargs)` on a terminal; a line every `interval_s` seconds elsewhere."""
    stream = kwargs.pop("file", None) or sys.stderr
    if kwargs.get("disable") or _is_tty(stream):
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    kwargs.pop("leave", None)  # a log keeps its last line
    lines = _Lines(stream, interval_s)
    bar = _LogBar(
        iterable,
        file=lines,
        mininterval=interval_s,
        maxinterval=max(interval_s, 1.0),
        ascii=True,
        bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        **kwargs,
    )
    bar._lines = lines
    return bar
