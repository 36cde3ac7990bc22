"""DualEncoder training on samples that lack a modality: each pair's loss uses only complete rows."""

import dataclasses
from pathlib import Path

import torch

from omnifuse.data.readers import read_samples
from omnifuse.train.config import recipe_from_dict
from omnifuse.train.loop import Trainer


def test_pair_loss_ignores_rows_missing_a_modality(tiny_model, tiny_batch):
    model = tiny_model()
    batch = tiny_batch(model)
    flags = dict(batch, image_present=torch.tensor([True, False, True]))
    flags["image"] = flags["image"].clone()
    flags["image"][1] = 1e4  # a placeholder row: must not matter
    keep = [0, 2]
    sub = {k: v[keep] for k, v in batch.items()}
    torch.testing.assert_close(model(flags).loss, model(sub).loss)
    one_left = dict(batch, image_present=torch.tensor([True, False, False]))
    assert float(model(one_left).loss.detach()) == 0.0  # nothing to contrast; still in the graph
    model(one_left).loss.backward()


def test_trainer_with_allow_missing(shapes_dir, tmp_path, tiny_recipe):
    recipe = recipe_from_dict(tiny_recipe(shapes_dir, tmp_path, max_steps=2))
    samples = read_samples(Path(shapes_dir) / "train.jsonl", columns={"image": "image", "text": "captions"})
    for s in samples[::3]:
        s.inputs.pop("image")  # a third of the scenes come without their picture
    from omnifuse.models.factory import build_model
    from omnifuse.train.run import build_processor

    model = build_model(recipe.model, build_processor(recipe, samples))
    data = dataclasses.replace(recipe.data, allow_missing=True)
    result = Trainer(model, samples, data, recipe.train, tmp_path / "run").fit()
    losses = [r["train/loss"] for r in result.metrics if "train/loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
