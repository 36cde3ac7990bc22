"""save_pretrained / from_pretrained round trip, and clear refusals of bad directories."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from omnifuse.models import ArtifactError, DualEncoder, load_model


@pytest.mark.parametrize("loss", ["clip", "siglip", "triplet"])
def test_round_trip_gives_identical_outputs(tmp_path, loss, tiny_model, tiny_batch):
    model = tiny_model(loss)
    b = tiny_batch(model)
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {
        "config.json",
        "processor.json",
        "model.safetensors",
    }
    again = load_model(tmp_path / "m")
    assert isinstance(again, DualEncoder)
    # the reloaded processor (tokenizer files included) produces the same tensors
    b2 = tiny_batch(again)
    assert all(torch.equal(b[k], b2[k]) for k in b)
    with torch.no_grad():
        out, out2 = model(b), again(b2)
    for m in ("text", "image"):
        assert torch.equal(out.embeddings[m], out2.embeddings[m])
    assert torch.equal(out.loss, out2.loss)
    assert (again.logit_bias is not None) == (loss == "siglip")


def test_not_an_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="no config.json"):
        DualEncoder.from_pretrained(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        DualEncoder.from_pretrained(tmp_path / "nope")


def test_mismatched_weights_name_the_tensors(tmp_path, tiny_model):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["projections.text.weight"] = torch.zeros(3, 3)
    del state["logit_scale"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ArtifactError) as err:
        DualEncoder.from_pretrained(tmp_path)
    message = str(err.value)
    assert "missing: logit_scale" in message
    assert "unexpected: extra.weight" in message
    assert "projections.text.weight (file (3, 3), model (8, 16))" in message


def test_wrong_model_type(tmp_path, tiny_model):
    tiny_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_type"] = "no_such_kind"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="holds a 'no_such_kind'"):
        DualEncoder.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="unknown model_type 'no_such_kind'"):
        load_model(tmp_path)


def test_forward_loss_and_gradients(tiny_model, tiny_batch):
    model = tiny_model()
    out = model(tiny_batch(model))
    assert set(out.pair_losses) == {"image-text"}
    assert out.embeddings["text"].shape == (3, 8)
    assert torch.allclose(out.embeddings["image"].norm(dim=-1), torch.ones(3), atol=1e-5)
    out.loss.backward()
    assert model.logit_scale.grad is not None
    assert all(p.grad is not None for p in model.towers["image"].parameters() if p.requires_grad)
