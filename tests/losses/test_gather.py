"""Distributed losses: 2 gloo processes, each with half of a fixed global batch.

Each rank must compute the single-process loss of the full batch, and the input gradients,
divided by the world size as DDP's gradient averaging does, must be the single-process
gradients of that rank's rows (scale/bias gradients: their mean over ranks).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from omnifuse.losses import build_loss
from omnifuse.losses._distributed import gather_features

WORLD = 2
GLOBAL_BATCH = 8
CASES = {
    "clip": {},
    "siglip": {},
    "triplet-hard": {"mining": "hard"},
    "triplet-semihard": {"mining": "semihard", "margin": 0.5},
    "triplet-all": {"mining": "all"},
    "npair": {},
    "circle": {},
}


def global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(GLOBAL_BATCH, 16, generator=g, dtype=torch.float64)
    b = a + 0.8 * torch.randn(GLOBAL_BATCH, 16, generator=g, dtype=torch.float64)
    scale, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-5.0, dtype=torch.float64)
    return F.normalize(a, dim=-1), F.normalize(b, dim=-1), scale, bias


def run_all(rows: slice) -> dict[str, dict[str, torch.Tensor | None]]:
    a_full, b_full, scale0, bias0 = global_batch()
    results = {}
    for case, kwargs in CASES.items():
        loss_fn = build_loss(case.split("-")[0], **kwargs)
        a, b = a_full[rows].clone().requires_grad_(), b_full[rows].clone().requires_grad_()
        scale, bias = scale0.clone().requires_grad_(), bias0.clone().requires_grad_()
        loss = loss_fn(a, b, scale, bias)
        loss.backward()
        results[case] = {
            "loss": loss.detach(),
            "a": a.grad,
            "b": b.grad,
            "scale": scale.grad,
            "bias": bias.grad,
        }
    return results


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        per = GLOBAL_BATCH // WORLD
        torch.save(run_all(slice(rank * per, (rank + 1) * per)), os.path.join(out_dir, f"rank{rank}.pt"))
        # Both ranks reach the end before teardown: destroying a gloo group while the peer still
        # has work in flight can abort the process ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _import_root() -> str:
    """The sys.path entry this module imports from under its current name.

    The name depends on pytest's import mode (``test_gather`` with prepend, ``tests.losses.test_gather``
    with importlib); spawned children unpickle ``_worker`` by that name, with the parent's sys.path.
    """
    return str(Path(__file__).resolve().parents[len(__name__.split(".")) - 1])


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory) -> list[dict]:
    tmp: Path = tmp_path_factory.mktemp("gather")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(_import_root())
        mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", list(CASES))
def test_every_rank_computes_the_global_loss(distributed_results, case):
    single = run_all(slice(None))[case]
    for rank_results in distributed_results:
        torch.testing.assert_close(rank_results[case]["loss"], single["loss"], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_averaged_gradients_equal_single_process(distributed_results, case):
    single = run_all(slice(None))[case]
    ranks = [r[case] for r in distributed_results]
    for key in ("a", "b"):
        # Each rank's input gradient is WORLD x its rows' single-process gradient; DDP divides by WORLD.
        ddp = torch.cat([r[key] for r in ranks]) / WORLD
        assert single[key].abs().sum() > 0
        torch.testing.assert_close(ddp, single[key], rtol=1e-6, atol=1e-8)
    for key in ("scale", "bias"):
        if single[key] is None:
            assert all(r[key] is None for r in ranks)
        else:
            ddp = torch.stack([r[key] for r in ranks]).mean()  # DDP's all-reduce average
            torch.testing.assert_close(ddp, single[key], rtol=1e-6, atol=1e-8)


def test_gather_is_identity_without_distributed():
    x = torch.randn(3, 4)
    assert not dist.is_initialized()
    assert gather_features(x) is x
