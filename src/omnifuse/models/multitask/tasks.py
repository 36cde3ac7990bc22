"""Where each task's labels sit in a multi-task batch."""

from __future__ import annotations


def label_batch_key(task: str) -> str:
    """The batch key holding task `task`'s targets."""
    return f"labels/{task}"
