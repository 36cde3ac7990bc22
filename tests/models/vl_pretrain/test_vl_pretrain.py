"""vl_pretrain: hard-negative mining, minimal pairs, losses, artifact, errors, CLI end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from omnifuse.data.masked_text import MaskedTextProcessor
from omnifuse.data.processors import ImageProcessor, Processor, build_word_tokenizer
from omnifuse.data.synth.config import SynthConfig
from omnifuse.data.synth.pretraining import minimal_pair
from omnifuse.data.synth.scene import relation_holds, sample_scene
from omnifuse.encoders.presets import build_scratch_encoder
from omnifuse.fusion import build_fusion
from omnifuse.models.vl_pretrain import VLPretrain, mine_hard_negatives

RECIPE = Path(__file__).parents[3] / "recipes" / "shapes_vl_pretrain.yaml"


def test_mining_picks_the_most_similar_non_matching_pair():
    sim = torch.tensor(
        [
            [0.9, 0.8, 0.1, 0.3],
            [0.2, 0.9, 0.7, 0.1],
            [0.5, 0.6, 0.9, 0.4],
            [0.0, 0.1, 0.2, 0.9],
        ]
    )
    positive = torch.eye(4, dtype=torch.bool)
    text_for, image_for = mine_hard_negatives(sim, positive)
    assert text_for.tolist() == [1, 2, 1, 2]  # per image: highest off-diagonal in its row
    assert image_for.tolist() == [2, 0, 1, 2]  # per text: highest off-diagonal in its column
    positive[0, 1] = positive[1, 0] = True  # texts 0 and 1 are the same caption: never a negative
    text_for, image_for = mine_hard_negatives(sim, positive)
    assert text_for[0] == 3 and image_for[1] == 2
    text_for, image_for = mine_hard_negatives(sim[:1, :1], torch.ones(1, 1, dtype=torch.bool))
    assert text_for.tolist() == [-1] and image_for.tolist() == [-1]


def test_minimal_pairs_use_the_same_words_and_are_false():
    rng = np.random.default_rng(0)
    config = SynthConfig(min_objects=2, holdout=[])
    seen = {"relation": 0, "attribute": 0}
    for _ in range(50):
        scene = sample_scene(rng, config)
        for kind in seen:
            pair = minimal_pair(scene, kind, rng)
            if pair is None:
                continue
            true, false = pair
            seen[kind] += 1
            assert sorted(true.split()) == sorted(false.split()) and true != false
            words = false.split()
            head, tail = scene.find(f"{words[1]} {words[2]}"), scene.find(f"{words[-2]} {words[-1]}")
            relation = " ".join(words[3:-3]).replace("to the ", "")
            assert head is None or tail is None or not relation_holds(head, tail, relation), (true, false)
    assert seen["relation"] == 50 and seen["attribute"] > 30


def tiny_model(fusion: str = "single_stream", **kwargs) -> VLPretrain:
    tok = build_word_tokenizer(["a red circle left of a blue square", "a green star above a red circle"])
    processor = Processor({"text": MaskedTextProcessor(tok, 16), "image": ImageProcessor(size=32)})
    torch.manual_seed(0)
    enc = {
        "text": build_scratch_encoder("bert", vocab_size=len(tok), hidden_size=32, intermediate_size=64),
        "image": build_scratch_encoder(
            "vit", image_size=32, patch_size=16, hidden_size=32, intermediate_size=64
        ),
    }
    fusion_kwargs = {"hidden_dim": 32, "layers": 1, "dropout": 0.0} if fusion == "single_stream" else {}
    fusion_module = build_fusion(fusion, {"text": 32, "image": 32}, num_outputs=2, **fusion_kwargs)
    return VLPretrain(enc, fusion_module, vocab_size=len(tok), embed_dim=16, processor=processor, **kwargs)


def batch_for(model: VLPretrain, captions, negatives=None):
    import random

    proc = model.processor
    images = [np.full((32, 32, 3), 40 * i, dtype=np.uint8) for i in range(len(captions))]
    from PIL import Image

    batch = proc["image"]([Image.fromarray(a) for a in images])
    batch.update(proc["text"](captions, train=True, rngs=[random.Random(i) for i in range(len(captions))]))
    if negatives:
        neg = proc["text"](negatives)
        batch.update(itm_negative=neg["text"], itm_negative_mask=neg["text_mask"])
        batch["itm_negative_present"] = torch.ones(len(captions), dtype=torch.bool)
    return batch


def test_losses_are_weighted_and_reported_apart():
    model = tiny_model(
        loss_weights={"itc": 0.5, "itm": 2.0, "mlm": 1.0}, itm_negatives=("in_batch", "minimal_pairs")
    )
    caps = ["a red circle left of a blue square", "a green star above a red circle"] * 2
    negs = ["a blue square left of a red circle", "a red circle above a green star"] * 2
    out = model(batch_for(model, caps, negs))
    assert set(out.losses) == {"itc", "itm", "mlm"}
    total = 0.5 * out.losses["itc"] + 2.0 * out.losses["itm"] + out.losses["mlm"]
    torch.testing.assert_close(out.loss, total)
    # 4 positives, a mined text per image and an image per text (each has a caption that differs
    # from its own), the 4 minimal pairs
    assert out.itm_labels.tolist() == [1] * 4 + [0] * 12
    clip_only = tiny_model(loss_weights={"itc": 1.0, "itm": 0.0, "mlm": 0.0})
    assert set(clip_only(batch_for(clip_only, caps)).losses) == {"itc"}


def test_itm_on_a_fusion_without_joint_representation_is_refused():
    with pytest.raises(ValueError, match="fusion 'late' combines per-modality decisions"):
        tiny_model("late")
    tiny_model("late", loss_weights={"itc": 1.0, "itm": 0.0, "mlm": 0.0})  # contrastive only is fine


def test_save_load_round_trip(tmp_path):
    from omnifuse.models.factory import load_model

    model = tiny_model().eval()
    model.save_pretrained(tmp_path / "a")
    loaded = load_model(tmp_path / "a")
    batch = batch_for(model, ["a red circle left of a blue square", "a green star above a red circle"])
    torch.testing.assert_close(loaded.match_logits(batch), model.match_logits(batch))
    torch.testing.assert_close(loaded(batch).mlm_logits, model(batch).mlm_logits)


@pytest.fixture(scope="module")
def pretrain_dir(tmp_path_factory) -> Path:
    from omnifuse.data.synth import generate
    from omnifuse.data.synth.pretraining import write_pretrain_manifests

    out = tmp_path_factory.mktemp("shapes-pt")
    generate(
        SynthConfig(n=60, seed=0, image_size=32, min_objects=2, holdout=[]), out, progress=False, workers=1
    )
    write_pretrain_manifests(out)
    return out


def test_minimal_pairs_without_negative_labels_is_an_error(pretrain_dir, tmp_path):
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["data"].update(train=str(pretrain_dir / "pretrain_train.jsonl"), val=None, labels=[])
    recipe.update(output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no training sample has a 'negative' label"):
        run_recipe(recipe_from_dict(recipe))


@pytest.mark.slow
def test_cli_pretrains_and_a_classifier_starts_from_it(pretrain_dir, tmp_path):
    from omnifuse.cli.main import main
    from omnifuse.models.factory import load_model

    recipe = yaml.safe_load(RECIPE.read_text())
    recipe.update(name="vl", output_dir=str(tmp_path / "runs"))
    recipe["data"].update(
        train=str(pretrain_dir / "pretrain_train.jsonl"), val=str(pretrain_dir / "pretrain_val.jsonl")
    )
    recipe["processor"]["image"]["size"] = 32
    for tower in recipe["model"]["encoders"].values():
        tower["overrides"].update(hidden_size=32, intermediate_size=64)
    recipe["model"]["fusion"]["kwargs"].update(hidden_dim=32, layers=1)
    recipe["train"].update(batch_size=16, max_steps=4, eval_every=None, log_every=2, progress=False)
    (tmp_path / "vl.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp_path / "vl.yaml")]) == 0
    rows = [yaml.safe_load(line) for line in (tmp_path / "runs/vl/metrics.jsonl").read_text().splitlines()]
    assert {"train/loss_itc", "train/loss_itm", "train/loss_mlm"} <= set(rows[0])
    for key in ("val/match_accuracy", "val/match_accuracy/relation", "val/mlm_accuracy", "val/itc_top1"):
        assert key in rows[-1]
    pretrained = load_model(tmp_path / "runs/vl/best")
    cls = {
        "name": "match", "output_dir": str(tmp_path / "runs"),
        "data": {
            "train": str(pretrain_dir / "minimal_train.jsonl"), "val": str(pretrain_dir / "minimal_val.jsonl"),
            "columns": {"image": "image", "text": "caption"}, "labels": ["label", "qtype"],
        },
        "model": {"type": "fusion_classifier", "from_pretrained": str(tmp_path / "runs/vl/best"), "task": {"label": "label"}},
        "train": {"batch_size": 16, "max_steps": 2, "log_every": 1, "progress": False},
    }  # fmt: skip
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(cls))
    assert main(["train", str(tmp_path / "m.yaml")]) == 0
    clf = load_model(tmp_path / "runs/match/best")
    assert clf.fusion.to_config() == pretrained.fusion.to_config()
    assert len(clf.processor["text"].tokenizer) == len(pretrained.processor["text"].tokenizer)
    cls["model"]["fusion"] = {"name": "concat_mlp"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cls))
    assert main(["train", str(tmp_path / "bad.yaml")]) != 0


def test_itm_overfits_a_fixed_batch_of_minimal_pairs():
    """The ITM path trains end to end: each caption is the false twin of another row's caption,
    so only the image tells them apart; a tiny model must separate them on one fixed batch (wrong
    labels, a mis-built pair list or a fused vector blind to the image would stay at 0.5)."""
    model = tiny_model(loss_weights={"itc": 0.0, "itm": 1.0, "mlm": 0.0}, itm_negatives=("minimal_pairs",))
    caps = [
        "a red circle left of a blue square",
        "a green star above a red circle",
        "a blue square left of a red circle",
        "a red circle above a green star",
    ]
    batch = batch_for(model, caps, [caps[2], caps[3], caps[0], caps[1]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(300):
        out = model(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    accuracy = (out.itm_logits.argmax(-1) == out.itm_labels).float().mean().item()
    assert out.itm_labels.tolist() == [1] * 4 + [0] * 4
    assert accuracy > 0.9, (accuracy, out.losses["itm"].item())
