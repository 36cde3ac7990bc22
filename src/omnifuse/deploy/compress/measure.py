"""Size and speed of a model: parameters, non-zeros, bytes on disk, items per second."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from omnifuse.models.artifact import WEIGHTS_FILE
from omnifuse.models.registry import spec_of


@dataclass
class SizeStats:
    """params: stored weight elements (parameters and persistent buffers, int8 ones included);
    nonzero: of those, the non-zero ones; weight_bytes: their bytes in memory; file_bytes:
    `model.safetensors` on disk; dir_bytes: the whole artifact directory."""

    params: int
    nonzero: int
    weight_bytes: int
    file_bytes: int
    dir_bytes: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def size_stats(model: nn.Module, directory: str | Path) -> SizeStats:
    tensors = [t for k, t in model.state_dict().items() if t.is_floating_point() or t.dtype == torch.int8]
    directory = Path(directory)
    return SizeStats(
        params=sum(t.numel() for t in tensors),
        nonzero=sum(int(torch.count_nonzero(t)) for t in tensors),
        weight_bytes=sum(t.numel() * t.element_size() for t in tensors),
        file_bytes=(directory / WEIGHTS_FILE).stat().st_size,
        dir_bytes=sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()),
    )


@torch.inference_mode()
def run_once(model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
    """One inference pass: every modality's embedding for a kind that can `embed`, else `forward`."""
    if spec_of(model).can("embed"):
        for m in model.modalities:
            if m in batch:
                model.encode(m, batch)
    else:
        model(batch)


def compare_speed(
    models: dict[str, nn.Module], batch: dict[str, torch.Tensor], rounds: int = 10, warmup: int = 2
) -> dict[str, float]:
    """Items per second of each model on the same batch: the fastest of `rounds` alternating rounds.

    Alternating the models round by round spreads machine noise evenly over them, and the best
    round (as `timeit` advises) is the least disturbed by other processes, so the ratio is
    meaningful even on a shared machine where the absolute numbers are not.
    """
    n = len(next(iter(batch.values())))
    for model in models.values():
        model.eval()
        for _ in range(warmup):
            run_once(model, batch)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            run_once(model, batch)
            times[name].append(time.perf_counter() - start)
    return {name: n / min(t) for name, t in times.items()}
