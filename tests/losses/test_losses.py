"""Parity of omnifuse.losses with independent references.

CLIP and SigLIP against their formulas written out with loops (numpy); triplet, N-pair and
circle against pytorch-metric-learning, whose one-directional losses are called twice (a→b and
b→a, with ``ref_emb``) and averaged, as our symmetric cross-modal definition says.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, losses, miners

from omnifuse.losses import (
    LOSSES,
    MINING,
    CircleLoss,
    ClipLoss,
    NPairLoss,
    SigLipLoss,
    TripletLoss,
    build_loss,
    circle_loss,
    clip_loss,
    npair_loss,
    siglip_loss,
    triplet_loss,
)

TOL = {"rtol": 1e-5, "atol": 1e-5}


def pairs(seed: int, batch: int = 12, dim: int = 16, noise: float = 0.8, dtype=torch.float64):
    """Normalised (a, b) where b_i is a noisy copy of a_i: a mix of easy, semi-hard and hard pairs."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, dim, generator=g, dtype=dtype)
    b = a + noise * torch.randn(batch, dim, generator=g, dtype=dtype)
    return F.normalize(a, dim=-1), F.normalize(b, dim=-1)


# ---- naive references for the contrastive losses ----------------------------------------------
def naive_clip(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    a, b = a.numpy(), b.numpy()
    n = len(a)
    logits = [[t * float(np.dot(a[i], b[j])) for j in range(n)] for i in range(n)]
    loss_a = (
        -sum(logits[i][i] - math.log(sum(math.exp(logits[i][j]) for j in range(n))) for i in range(n)) / n
    )
    loss_b = (
        -sum(logits[j][j] - math.log(sum(math.exp(logits[i][j]) for i in range(n))) for j in range(n)) / n
    )
    return (loss_a + loss_b) / 2


def naive_siglip(a: torch.Tensor, b: torch.Tensor, t: float, bias: float) -> float:
    """loss = -1/B Σ_i Σ_j log σ(z_ij (t a_i·b_j + bias)), z_ij = 1 if i == j else -1."""
    a, b = a.numpy(), b.numpy()
    n = len(a)
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            x = z * (t * float(np.dot(a[i], b[j])) + bias)
            total += -np.logaddexp(0.0, -x)  # log σ(x)
    return -total / n


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("t", [1.0, 1 / 0.07])
def test_clip_matches_formula(seed, t):
    a, b = pairs(seed)
    expected = naive_clip(a, b, t)
    assert clip_loss(a, b, torch.tensor(t, dtype=a.dtype)).item() == pytest.approx(
        expected, rel=1e-5, abs=1e-5
    )
    assert ClipLoss()(a, b, torch.tensor(t, dtype=a.dtype)).item() == pytest.approx(
        expected, rel=1e-5, abs=1e-5
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("t", "bias"), [(10.0, -10.0), (1.0, 0.0), (30.0, -3.0)])
def test_siglip_matches_formula(seed, t, bias):
    a, b = pairs(seed)
    expected = naive_siglip(a, b, t, bias)
    got = siglip_loss(a, b, torch.tensor(t, dtype=a.dtype), torch.tensor(bias, dtype=a.dtype))
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    module = SigLipLoss()(a, b, torch.tensor(t, dtype=a.dtype), torch.tensor(bias, dtype=a.dtype))
    assert module.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


# ---- pytorch-metric-learning references for the metric losses --------------------------------
def labels(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Two distinct tensors: PML zeroes the diagonal of the match matrix when ref_labels *is* labels.
    return torch.arange(n), torch.arange(n)


def pml_triplet(anchor: torch.Tensor, cand: torch.Tensor, margin: float, mining: str) -> torch.Tensor:
    cos = distances.CosineSimilarity()
    loss = losses.TripletMarginLoss(margin=margin, distance=cos)  # AvgNonZeroReducer by default
    lab, ref_lab = labels(len(anchor))
    if mining == "hard":
        miner = miners.BatchHardMiner(distance=cos)
    elif mining == "semihard":
        miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=cos)
    else:  # all triplets (the loss's own triplets_per_anchor="all")
        return loss(anchor, lab, ref_emb=cand, ref_labels=ref_lab)
    indices = miner(anchor, lab, cand, ref_lab)
    return loss(anchor, lab, indices, ref_emb=cand, ref_labels=ref_lab)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize("margin", [0.2, 0.5])
def test_triplet_matches_pml(seed, mining, margin):
    a, b = pairs(seed, batch=24)
    forward, backward = pml_triplet(a, b, margin, mining), pml_triplet(b, a, margin, mining)
    assert forward.item() > 0 and backward.item() > 0  # each mining selects violating triplets here
    expected = (forward + backward) / 2
    got = triplet_loss(a, b, margin=margin, mining=mining)
    torch.testing.assert_close(got, expected, **TOL)
    torch.testing.assert_close(TripletLoss(margin, mining)(a, b), expected, **TOL)


def test_triplet_semihard_selects_some_but_not_all():
    a, b = pairs(0, batch=24)
    cos = distances.CosineSimilarity()
    lab, ref_lab = labels(len(a))
    semi = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=cos)(
        a, lab, b, ref_lab
    )
    assert 0 < len(semi[0]) < len(a) * (len(a) - 1)


def test_triplet_hard_is_batch_hard_by_hand():
    a, b = pairs(3, batch=6)
    sim = (a @ b.T).numpy()
    per_direction = []
    for s in (sim, sim.T):
        per_anchor = []
        for i in range(len(s)):
            hardest = max(s[i, k] for k in range(len(s)) if k != i)
            per_anchor.append(max(0.0, hardest - s[i, i] + 0.2))
        nonzero = [x for x in per_anchor if x > 0]
        per_direction.append(sum(nonzero) / max(len(nonzero), 1))
    expected = sum(per_direction) / 2
    assert triplet_loss(a, b, 0.2, "hard").item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def pml_npair(anchor: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    # NPairsLoss does not take ref_emb: stack the pairs, one label per pair; PML picks
    # (anchor_i, cand_i) as the pair of label i and takes the other pairs' cand as negatives.
    n = len(anchor)
    lab = torch.cat([torch.arange(n), torch.arange(n)])
    return losses.NPairsLoss()(torch.cat([anchor, cand]), lab)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_npair_matches_pml(seed):
    a, b = pairs(seed)
    expected = (pml_npair(a, b) + pml_npair(b, a)) / 2
    torch.testing.assert_close(npair_loss(a, b), expected, **TOL)
    torch.testing.assert_close(NPairLoss()(a, b), expected, **TOL)


def pml_circle(anchor: torch.Tensor, cand: torch.Tensor, m: float, gamma: float) -> torch.Tensor:
    lab, ref_lab = labels(len(anchor))
    return losses.CircleLoss(m=m, gamma=gamma)(anchor, lab, ref_emb=cand, ref_labels=ref_lab)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("m", "gamma"), [(0.25, 80.0), (0.4, 80.0), (0.25, 256.0)])
def test_circle_matches_pml(seed, m, gamma):
    a, b = pairs(seed)
    expected = (pml_circle(a, b, m, gamma) + pml_circle(b, a, m, gamma)) / 2
    torch.testing.assert_close(circle_loss(a, b, m=m, gamma=gamma), expected, **TOL)
    torch.testing.assert_close(CircleLoss(m, gamma)(a, b), expected, **TOL)


@pytest.mark.parametrize("name", ["triplet", "npair", "circle"])
def test_metric_gradients_match_pml(name):
    """Same gradients as the reference, not only the same value (circle detaches its weights)."""
    a0, b0 = pairs(4)
    ref = {
        "triplet": lambda x, y: (pml_triplet(x, y, 0.2, "hard") + pml_triplet(y, x, 0.2, "hard")) / 2,
        "npair": lambda x, y: (pml_npair(x, y) + pml_npair(y, x)) / 2,
        "circle": lambda x, y: (pml_circle(x, y, 0.25, 80.0) + pml_circle(y, x, 0.25, 80.0)) / 2,
    }[name]
    grads = []
    for fn in (build_loss(name), ref):
        a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
        fn(a, b).backward()
        grads.append((a.grad, b.grad))
    # PML re-normalises inside CosineSimilarity, which projects out the radial component.
    for ours, theirs, x in zip(grads[0], grads[1], (a0, b0)):
        tangential = ours - (ours * x).sum(-1, keepdim=True) * x
        torch.testing.assert_close(tangential, theirs, **TOL)


# ---- behaviour ---------------------------------------------------------------------------------
def call(
    name: str, a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    return build_loss(name)(a, b, scale, bias)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_flows_to_both_inputs(name):
    a0, b0 = pairs(5, dtype=torch.float32)
    a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    scale = torch.tensor(1 / 0.07, requires_grad=True)
    bias = torch.tensor(-10.0, requires_grad=True)
    loss = call(name, a, b, scale, bias)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for grad in (a.grad, b.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    loss_cls = LOSSES[name]
    if loss_cls.uses_scale:
        assert scale.grad is not None and scale.grad != 0
    else:
        assert scale.grad is None
    if loss_cls.needs_bias:
        assert bias.grad is not None and bias.grad != 0
    else:
        assert bias.grad is None


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_matched_pairs_cost_less_than_shuffled(name):
    a, b = pairs(6, batch=16, noise=0.3, dtype=torch.float32)
    perm = torch.roll(torch.arange(16), 1)  # no fixed point
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
    assert call(name, a, b, scale, bias) < call(name, a, b[perm], scale, bias)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_single_pair_is_finite(name):
    a, b = pairs(7, batch=1, dtype=torch.float32)
    a.requires_grad_()
    loss = call(name, a, b, torch.tensor(10.0), torch.tensor(-10.0))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(a.grad).all()


def test_flags():
    assert {n for n, c in LOSSES.items() if c.needs_bias} == {"siglip"}
    assert {n for n, c in LOSSES.items() if c.uses_scale} == {"clip", "siglip"}


def test_contrastive_losses_need_their_scalars():
    a, b = pairs(0)
    with pytest.raises(ValueError, match="logit_scale"):
        ClipLoss()(a, b)
    with pytest.raises(ValueError, match="logit_bias"):
        SigLipLoss()(a, b, torch.tensor(10.0))


# ---- registry ----------------------------------------------------------------------------------
def test_registry_builds_with_kwargs():
    loss = build_loss("triplet", margin=0.3, mining="semihard")
    assert isinstance(loss, TripletLoss) and (loss.margin, loss.mining) == (0.3, "semihard")
    loss = build_loss("circle", m=0.4, gamma=128.0)
    assert isinstance(loss, CircleLoss) and (loss.m, loss.gamma) == (0.4, 128.0)
    assert isinstance(build_loss("clip"), ClipLoss)


def test_registry_unknown_name():
    with pytest.raises(ValueError, match="infonce") as err:
        build_loss("infonce")
    for name in LOSSES:
        assert name in str(err.value)


def test_registry_unknown_kwargs():
    with pytest.raises(ValueError, match="temperature") as err:
        build_loss("triplet", temperature=0.1)
    assert "margin" in str(err.value) and "mining" in str(err.value)
    with pytest.raises(ValueError, match="margin"):
        build_loss("clip", margin=0.1)


def test_unknown_mining():
    with pytest.raises(ValueError, match="mining"):
        TripletLoss(mining="hardest")
    with pytest.raises(ValueError, match="mining"):
        triplet_loss(*pairs(0), mining="easy")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_init_arguments_are_attributes(name):
    """A model saves a loss as its __init__ arguments read back from attributes; they must round-trip."""
    import inspect

    loss = build_loss(name)
    params = [p for p in inspect.signature(type(loss).__init__).parameters if p != "self"]
    kwargs = {p: getattr(loss, p) for p in params if hasattr(loss, p)}
    rebuilt = build_loss(name, **kwargs)
    assert type(rebuilt) is type(loss) and all(getattr(rebuilt, p) == v for p, v in kwargs.items())
