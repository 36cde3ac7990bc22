"""Atomic, resumable checkpoints: `checkpoints/step-N/`.

A checkpoint holds the model artifact (loadable on its own), the optimizer and scheduler,
the RNG states and the data position. It is written with `omnifuse.utils.io.atomic_dir`
(temporary name, every file fsynced, renamed): a `step-N` directory is always complete, and
only those are ever loaded.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from omnifuse.utils.io import atomic_dir, remove_stale_temps  # noqa: F401  (atomic_dir: re-exported)

STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    plain = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, state, gauss = plain["python"]
    random.setstate((version, tuple(state), gauss))
    name, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))


def save_checkpoint(
    root: Path,
    step: int,
    model,
    optimizer,
    scheduler,
    state: dict[str, Any],
    rank_suffix: str = "",
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write `root/step-N` atomically. `state` is JSON-able trainer state (data position ...);
    `optimizer_state` replaces `optimizer.state_dict()` (the full state gathered from shards)."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp / "model")
        torch.save(
            optimizer.state_dict() if optimizer_state is None else optimizer_state, tmp / "optimizer.pt"
        )
        tensors, plain = rng_state()
        save_file(tensors, str(tmp / f"rng{rank_suffix}.safetensors"))
        payload = {"step": step, "scheduler": scheduler.state_dict(), "rng": plain, **state}
        (tmp / "trainer_state.json").write_text(json.dumps(payload, indent=2))

    return atomic_dir(root / f"step-{step}", write)


def complete_checkpoints(root: Path) -> list[Path]:
    """`step-N` directories, oldest first (temporary ones are never listed)."""
    if not root.exists():
        return []
    remove_stale_temps(root)  # a crash while replacing a checkpoint left it aside: put it back
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(
    path: Path, model, optimizer, scheduler, rank_suffix: str = "", restore=None
) -> dict[str, Any]:
    """Restore everything in place; returns the trainer state. `restore(model_state,
    optimizer_state)`, when given, loads the (full) model and optimizer state instead of
    `load_weights` and `optimizer.load_state_dict` (a sharded model)."""
    from omnifuse.models.artifact import load_weights

    optimizer_state = torch.load(path / "optimizer.pt", weights_only=True)
    if restore is None:
        load_weights(model, path / "model")
        optimizer.load_state_dict(optimizer_state)
    else:
        restore(load_file(str(path / "model" / "model.safetensors")), optimizer_state)
    state = json.loads((path / "trainer_state.json").read_text())
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(load_file(str(path / f"rng{rank_suffix}.safetensors")), state["rng"])
    return state


def prune_checkpoints(root: Path, keep: int) -> None:
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    remove_stale_temps(root)
