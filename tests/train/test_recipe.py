"""Recipes: every shipped recipe parses; bad keys and values fail before any work, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omnifuse.models.registry import get_spec
from omnifuse.train.config import load_recipe, recipe_from_dict
from omnifuse.utils.config import ConfigError

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))


def test_recipes_exist():
    assert RECIPES, "the recipes/ folder should ship at least one recipe"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_parses(path):
    recipe = load_recipe(path)
    model = recipe.model
    assert isinstance(model, get_spec(model.type).config_class)
    if model.type == "generalist":  # one decoder over a token stream: no encoder towers to name
        assert model.mixture
        return
    if model.type == "image_tokenizer":  # a VQ-VAE: a token grid and a codebook, no towers
        assert model.grid and model.codebook_size
        return
    if model.type == "text_to_image":  # a prior over an image tokenizer's codes
        assert model.image_tokenizer
        return
    if model.type == "captioner":  # a vision tower and a language model, joined by a connector
        assert model.vision and model.lm and model.connector in ("xattn", "prefix")
        return
    assert getattr(model, "from_hf", None) or model.encoders or model.from_dual_encoder


@pytest.mark.parametrize(
    "model, message",
    [
        (
            {"type": "classifier"},
            # every registered kind is listed (more kinds register over time)
            "'model.type' must be one of .*'dual_encoder', .*'fusion_classifier', .*'multitask'",
        ),
        ({"type": "fusion_classifier"}, "give 'encoders'"),
        (
            {"type": "fusion_classifier", "encoders": {"text": {}}, "fusion": {"nme": "concat"}},
            "unknown key 'model.fusion.nme'",
        ),
        ({"type": "multitask", "encoders": {"text": {}}}, "needs 'tasks'"),
        (
            {"type": "fusion_classifier", "encoders": {"text": {}}, "task": {"kind": "ranking"}},
            "'model.task.kind' must be one of",
        ),
    ],
)
def test_fusion_model_config_errors(model, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict({"data": {"train": "x.jsonl"}, "model": model})


@pytest.fixture
def base(tmp_path, tiny_recipe):
    return lambda: tiny_recipe(Path("/data"), tmp_path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train.lr_typo", 1e-3, "unknown key 'train.lr_typo'; allowed keys here: .*batch_size"),
        ("train.batch_size", "big", "'train.batch_size' must be an integer; got 'big'"),
        ("train.precision", "fp8", "'train.precision' must be one of 'fp32', 'bf16'; got 'fp8'"),
        ("model.loss", "hinge", "'model.loss' must be one of 'clip', 'siglip', 'triplet', 'npair', 'circle'"),
        ("model.encoders.text.pooling", "max", "'model.encoders.text.pooling' must be one of"),
        ("model.encoders.text.depth", 3, "unknown key 'model.encoders.text.depth'"),
        ("train.max_steps", 0, "train.max_steps must be positive"),
        ("eval.templates", "a {}", "'eval.templates' must be a list"),
        ("train.early_stopping.mode", "up", "'train.early_stopping.mode' must be one of 'max', 'min'"),
    ],
)
def test_bad_values_name_the_key(base, key, value, message):
    data = base()
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(data, [f"{key}={yaml.safe_dump(value).strip().removesuffix('...').strip()}"])


def test_set_overrides_apply(base):
    recipe = recipe_from_dict(base(), ["train.lr=0.01", "model.embed_dim=16", "train.betas=[0.8, 0.9]"])
    assert recipe.train.lr == 0.01 and recipe.model.embed_dim == 16 and recipe.train.betas == (0.8, 0.9)


def test_missing_section_and_file(tmp_path):
    with pytest.raises(ConfigError, match="needs a 'model' section"):
        recipe_from_dict({"data": {"train": "x.jsonl"}})
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("train:\n  lr_typo: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: .*needs a 'data' section"):
        load_recipe(bad)


def test_bad_set_syntax(base):
    with pytest.raises(ConfigError, match="key=value"):
        recipe_from_dict(base(), ["train.lr"])
