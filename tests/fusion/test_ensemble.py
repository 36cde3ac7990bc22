"""FusionEnsemble: members map a batch to an object with .logits."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import EnsembleOutput, FusionEnsemble, build_fusion


@dataclass
class _Out:
    logits: torch.Tensor


class _Classifier(nn.Module):
    """A tiny stand-in for FusionClassifier: batch dict -> object with .logits."""

    def __init__(self, fusion: str, num_outputs: int = 3, **kwargs) -> None:
        super().__init__()
        self.fusion = build_fusion(fusion, {"text": 6, "image": 4}, **kwargs)
        self.head = nn.Linear(self.fusion.output_dim, num_outputs)

    def forward(self, batch: dict[str, torch.Tensor]) -> _Out:
        feats = {
            m: EncoderOutput(batch[m][:, None], torch.ones_like(batch[m][:, :1]), batch[m])
            for m in ("text", "image")
        }
        return _Out(self.head(self.fusion(feats).fused))


def _batch():
    g = torch.Generator().manual_seed(0)
    return {"text": torch.randn(5, 6, generator=g), "image": torch.randn(5, 4, generator=g)}


def _members():
    torch.manual_seed(0)
    return [_Classifier("concat"), _Classifier("gated", hidden_dim=8), _Classifier("attention", hidden_dim=8)]


def test_mean_is_average_of_member_logits():
    members = _members()
    out = FusionEnsemble(members, num_outputs=3)(_batch())
    assert isinstance(out, EnsembleOutput) and out.member_logits.shape == (5, 3, 3)
    expected = torch.stack([m(_batch()).logits for m in members], 1).mean(1)
    torch.testing.assert_close(out.logits, expected)


def test_weighted_mean():
    members = _members()
    out = FusionEnsemble(members, weights=[2.0, 1.0, 1.0])(_batch())
    ml = out.member_logits
    torch.testing.assert_close(out.logits, 0.5 * ml[:, 0] + 0.25 * ml[:, 1] + 0.25 * ml[:, 2])


def test_stack_trains_only_meta_when_frozen():
    ens = FusionEnsemble(_members(), mode="stack", num_outputs=3, freeze_members=True)
    out = ens(_batch())
    assert out.logits.shape == (5, 3)
    out.logits.sum().backward()
    assert ens.meta.weight.grad is not None
    assert all(p.grad is None for p in ens.members.parameters())
    assert ens.to_config() == {
        "mode": "stack",
        "num_outputs": 3,
        "weights": None,
        "freeze_members": True,
        "n_members": 3,
    }


def test_ensemble_errors():
    with pytest.raises(ValueError, match="at least one member"):
        FusionEnsemble([])
    with pytest.raises(ValueError, match="unknown mode 'vote'"):
        FusionEnsemble(_members(), mode="vote")
    with pytest.raises(ValueError, match="needs num_outputs"):
        FusionEnsemble(_members(), mode="stack")
    with pytest.raises(ValueError, match="2 weights for 3 members"):
        FusionEnsemble(_members(), weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="member 0 gives 3 classes, expected num_outputs=4"):
        FusionEnsemble(_members(), num_outputs=4)(_batch())
    torch.manual_seed(0)
    mixed = [_Classifier("concat", num_outputs=3), _Classifier("concat", num_outputs=2)]
    with pytest.raises(ValueError, match="disagree on the number of classes"):
        FusionEnsemble(mixed)(_batch())

    class NoLogits(nn.Module):
        def forward(self, batch):
            return batch["text"]

    with pytest.raises(ValueError, match="member 0 \\(NoLogits\\) must return an object with .logits"):
        FusionEnsemble([NoLogits()])(_batch())
