"""bench pretrain: every recipe it builds is a valid recipe (the runs themselves are tested per kind)."""

from __future__ import annotations

import pytest

from omnifuse.bench.pretrain import (
    PretrainBenchConfig,
    finetune_recipe,
    mlm_recipe,
    vl_recipe,
)
from omnifuse.train.config import recipe_from_dict


def test_every_bench_recipe_is_a_valid_recipe(tmp_path):
    cfg = PretrainBenchConfig()
    art = str(tmp_path / "vl")
    recipes = [
        vl_recipe(tmp_path, tmp_path, cfg, "vl", {"itc": 1.0, "itm": 1.0, "mlm": 1.0}),
        vl_recipe(tmp_path, tmp_path, cfg, "clip", {"itc": 1.0, "itm": 0.0, "mlm": 0.0}),
        mlm_recipe(tmp_path, tmp_path, cfg),
        finetune_recipe(tmp_path, tmp_path, cfg, "match", "m", None),
        finetune_recipe(tmp_path, tmp_path, cfg, "vqa", "v", None, "concat"),
    ]
    for r in recipes:
        recipe_from_dict(r)
    pretrained = finetune_recipe(tmp_path, tmp_path, cfg, "vqa", "v", art)
    assert pretrained["model"]["from_pretrained"] == art and "encoders" not in pretrained["model"]
    clip = recipes[1]["model"]
    assert clip["loss_weights"]["itm"] == 0 and clip["itm_negatives"] == ["in_batch"]
    with pytest.raises(ValueError, match="divisible by 3"):
        PretrainBenchConfig(image_size=32)
