"""Compression methods on a tiny trained DualEncoder: size really changes, the artifact loads and
predicts, quality is reported, bad input is refused with a clear error."""

from __future__ import annotations

import json
import math

import pytest
import torch

from omnifuse.deploy.compress import REPORT_FILE, CompressOptions, compress
from omnifuse.layers.low_rank import LowRankLinear
from omnifuse.layers.quantized import QuantizedLinear
from omnifuse.models import load_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shapes_dir, tiny_recipe):
    """A tiny CLIP (hidden 32, 2 layers) trained for 10 steps on the shapes world, saved as an artifact."""
    from omnifuse.deploy.compress.finetune import finetune
    from omnifuse.models.factory import build_model
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import build_processor, load_recipe_data

    out = tmp_path_factory.mktemp("compress")
    recipe = recipe_from_dict(tiny_recipe(shapes_dir, out / "runs"))
    data = load_recipe_data(recipe)
    torch.manual_seed(0)
    model = build_model(recipe.model, build_processor(recipe, data.train))
    finetune(model, data.train, 10, lr=2e-3, batch_size=16, progress=False)
    model.save_pretrained(out / "model")
    return out


def _paths(trained, shapes_dir):
    return {"model": trained / "model", "data": shapes_dir / "val.jsonl"}


def _opts(**kw) -> CompressOptions:
    return CompressOptions(progress=False, batch_size=16, speed_batch=8, speed_rounds=2, **kw)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine they only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _check_report(report, out):
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["method"] == report.method
    for side in ("before", "after"):
        figures = saved[side]
        for key in ("params", "nonzero", "file_bytes", "items_per_s"):
            assert math.isfinite(figures[key]) and figures[key] > 0
        assert "text_to_image/R@1" in figures["quality"]
        assert all(math.isfinite(v) for v in figures["quality"].values())
    assert set(saved["quality_delta"]) == set(saved["before"]["quality"])
    assert all(math.isfinite(v) for v in saved["quality_delta"].values())
    assert report.rows()


def _embeddings(model_dir, shapes_dir):
    from omnifuse.deploy.compress.data import fixed_batch, read_split

    model = load_model(model_dir)
    samples = read_split(str(shapes_dir / "val.jsonl"), model, "eval")
    batch = fixed_batch(model, samples, 8)
    with torch.no_grad():
        return {m: model.encode(m, batch) for m in ("image", "text")}


def _cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


@pytest.mark.parametrize("method", ["dynamic-int8", "static-int8"])
def test_int8_stores_int8_weights_and_stays_close(method, trained, shapes_dir):
    p = _paths(trained, shapes_dir)
    out = trained / method
    calib = str(shapes_dir / "train.jsonl") if method == "static-int8" else None
    report = compress(p["model"], method, out, p["data"], calib=calib, options=_opts())
    _check_report(report, out)
    config = json.loads((out / "config.json").read_text())
    assert config["compression"]["method"] == method and config["compression"]["modules"]
    model = load_model(out)
    quantized = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert quantized and all(m.weight_int8.dtype == torch.int8 for m in quantized)
    assert report.after["weight_bytes"] < report.before["weight_bytes"]
    assert report.after["file_bytes"] < report.before["file_bytes"]
    before, after = _embeddings(p["model"], shapes_dir), _embeddings(out, shapes_dir)
    for m in before:
        assert after[m].shape == before[m].shape and torch.isfinite(after[m]).all()
        assert _cosine(before[m], after[m]).min() > 0.9


def test_int8_artifact_serves_through_the_runtime(trained, shapes_dir):
    """runtime.load on a compressed artifact: the kernels this CPU runs, results close to fp32."""
    from omnifuse import runtime

    p = _paths(trained, shapes_dir)
    out = trained / "runtime-int8"
    compress(p["model"], "dynamic-int8", out, p["data"], options=_opts())
    fp32, int8 = runtime.load(p["model"]), runtime.load(out)
    config = json.loads((out / "config.json").read_text())["compression"]
    assert config["weight_range"] in ("full", "reduced") and isinstance(config["requires"], list)
    texts = ["a red circle", "there is a blue square", "a green star"]
    assert (int8.embed("text", texts) * fp32.embed("text", texts)).sum(-1).min() > 0.99
    assert abs(int8.logit_scale - fp32.logit_scale) < 1e-4


def test_bf16_cast(trained, shapes_dir):
    p = _paths(trained, shapes_dir)
    out = trained / "bf16"
    report = compress(p["model"], "bf16", out, p["data"], options=_opts())
    _check_report(report, out)
    assert report.ratios["file_bytes"] < 0.6
    model = load_model(out)
    assert next(model.parameters()).dtype == torch.bfloat16
    before, after = _embeddings(p["model"], shapes_dir), _embeddings(out, shapes_dir)
    assert _cosine(before["image"], after["image"]).min() > 0.9


def test_magnitude_pruning_reaches_the_sparsity(trained, shapes_dir):
    p = _paths(trained, shapes_dir)
    out = trained / "prune-magnitude"
    report = compress(p["model"], "prune-magnitude", out, p["data"], options=_opts(sparsity=0.5))
    _check_report(report, out)
    assert report.details["linear_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert report.after["nonzero"] < report.before["nonzero"]
    linears = [m for m in load_model(out).modules() if isinstance(m, torch.nn.Linear)]
    zeros = sum(int((m.weight == 0).sum()) for m in linears) / sum(m.weight.numel() for m in linears)
    assert zeros == pytest.approx(0.5, abs=0.01)


def test_per_layer_masks_prune_every_layer_alike():
    from omnifuse.deploy.compress.prune import magnitude_masks

    torch.manual_seed(0)
    layers = {"a": torch.nn.Linear(10, 10), "b": torch.nn.Linear(10, 20)}
    with torch.no_grad():
        layers["b"].weight.mul_(100)  # a global threshold would prune layer a almost entirely
    per_layer = magnitude_masks(layers, 0.3, "layer")
    assert [float(1 - m.float().mean()) for m in per_layer.values()] == pytest.approx([0.3, 0.3], abs=0.01)
    overall = magnitude_masks(layers, 0.3, "global")
    assert float(1 - overall["a"].float().mean()) > 0.85


def test_structured_pruning_shrinks_matrices_and_finetunes(trained, shapes_dir):
    p = _paths(trained, shapes_dir)
    out = trained / "structured"
    report = compress(
        p["model"], "prune-structured", out, p["data"], train=shapes_dir / "train.jsonl",
        options=_opts(sparsity=0.5, finetune_steps=2),
    )  # fmt: skip
    _check_report(report, out)
    assert report.after["params"] < report.before["params"]
    layers = report.details["layers"]
    assert layers and all(s["heads"] == [2, 1] and s["mlp"] == [64, 32] for s in layers.values())
    model = load_model(out)
    query = model.towers["text"].model.encoder.layer[0].attention.self.query
    assert tuple(query.weight.shape) == (16, 32)
    emb = _embeddings(out, shapes_dir)
    assert emb["text"].shape == (8, 32) and torch.isfinite(emb["text"]).all()


def test_low_rank_factorises_only_when_it_pays(trained, shapes_dir):
    p = _paths(trained, shapes_dir)
    out = trained / "low-rank"
    report = compress(p["model"], "low-rank", out, p["data"], options=_opts(param_budget=0.5))
    _check_report(report, out)
    assert report.details["linear_weights_after"] <= 0.5 * report.details["linear_weights_before"]
    model = load_model(out)
    factored = [m for m in model.modules() if isinstance(m, LowRankLinear)]
    assert factored and all(
        m.rank * (m.in_features + m.out_features) < m.in_features * m.out_features for m in factored
    )
    assert report.after["params"] < report.before["params"]


def test_distill_into_a_smaller_student(trained, shapes_dir):
    p = _paths(trained, shapes_dir)
    out = trained / "distill"
    opts = _opts(student_overrides={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1},
                 distill_steps=3)  # fmt: skip
    report = compress(p["model"], "distill", out, p["data"], train=shapes_dir / "train.jsonl", options=opts)
    _check_report(report, out)
    assert report.after["params"] < 0.5 * report.before["params"]
    assert math.isfinite(report.details["last_loss"])
    emb = _embeddings(out, shapes_dir)
    assert emb["image"].shape == (8, 32)


def test_max_drop_triggers_qat(trained, shapes_dir):
    p = _paths(trained, shapes_dir)
    out = trained / "qat"
    report = compress(
        p["model"], "dynamic-int8", out, p["data"], train=shapes_dir / "train.jsonl",
        options=_opts(max_drop=-1.0, qat_steps=2),  # any result "drops too much": QAT always runs
    )  # fmt: skip
    assert report.qat is not None and report.qat["qat_steps"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["compression"]["method"] == "qat-dynamic-int8"
    assert any(isinstance(m, QuantizedLinear) for m in load_model(out).modules())
    _check_report(report, out)


def test_qat_kernel_matches_the_deployed_layer():
    from omnifuse.deploy.compress.qat import FakeQuantLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 40)
    x = torch.randn(32, 24)
    fq = FakeQuantLinear(linear, "dynamic")
    # the deployed kernel may scale activations per call (fbgemm) rather than per token: close, not equal
    assert _cosine(fq(x), fq.convert()(x)).min() > 0.999
    static = FakeQuantLinear(linear, "static", float(x.abs().max()) / 127)
    torch.testing.assert_close(static(x), static.convert()(x), atol=1e-4, rtol=1e-4)
    y = fq(x.requires_grad_())
    y.sum().backward()
    assert linear.weight.grad is not None and x.grad is not None  # straight-through gradients


def test_quantized_linear_matches_float():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(5, 40, 64)  # (B, T, in): more than 16 rows takes the int8 kernel
    q = QuantizedLinear.from_linear(linear)
    assert _cosine(q(x).flatten(0, 1), linear(x).flatten(0, 1)).min() > 0.999
    assert _cosine(q(x[:1, :3]).flatten(0, 1), linear(x[:1, :3]).flatten(0, 1)).min() > 0.999


# ---- bad input -------------------------------------------------------------------------------------


def test_not_an_artifact(tmp_path, shapes_dir):
    with pytest.raises(ValueError, match="config.json"):
        compress(tmp_path, "dynamic-int8", tmp_path / "out", shapes_dir / "val.jsonl", options=_opts())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toaster"}))
    with pytest.raises(ValueError, match="toaster"):
        compress(tmp_path, "dynamic-int8", tmp_path / "out", shapes_dir / "val.jsonl", options=_opts())


def test_empty_calibration_split(trained, shapes_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="calibration split is empty"):
        compress(trained / "model", "static-int8", tmp_path / "o", shapes_dir / "val.jsonl", calib=empty,
                 options=_opts())  # fmt: skip
    with pytest.raises(ValueError, match="--calib"):
        compress(trained / "model", "static-int8", tmp_path / "o", shapes_dir / "val.jsonl", options=_opts())


@pytest.mark.parametrize("sparsity", [0.0, 1.0, 1.5, -0.1])
def test_sparsity_out_of_range(sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        CompressOptions(sparsity=sparsity)


def test_method_that_does_not_apply(trained, shapes_dir, tmp_path):
    from omnifuse.deploy.compress.base import CompressContext
    from omnifuse.deploy.compress.low_rank import low_rank
    from omnifuse.deploy.compress.prune import prune_structured

    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    ctx = CompressContext(tmp_path, {}, _opts(energy=0.9))
    with pytest.raises(ValueError, match="no attention layers"):
        prune_structured(model, ctx)
    with pytest.raises(ValueError, match="big enough"):
        low_rank(model, ctx)
    with pytest.raises(ValueError, match="unknown compression method 'zip'"):
        compress(trained / "model", "zip", tmp_path / "o", shapes_dir / "val.jsonl", options=_opts())


def test_cli(trained, shapes_dir, capsys):
    from omnifuse.cli.main import main

    out = trained / "cli-fp16"
    code = main(["compress", str(trained / "model"), "--method", "fp16", "--out", str(out),
                 "--data", str(shapes_dir / "val.jsonl"), "--speed-batch", "8", "--quiet"])  # fmt: skip
    assert code == 0
    assert (out / REPORT_FILE).exists() and "file_bytes" in capsys.readouterr().out
    assert next(load_model(out).parameters()).dtype == torch.float16
    code = main(["compress", str(trained / "model"), "--method", "prune-magnitude", "--sparsity", "1.5",
                 "--out", str(trained / "bad"), "--data", str(shapes_dir / "val.jsonl")])  # fmt: skip
    assert code == 2 and "sparsity" in capsys.readouterr().err


def test_classifier_int8_and_distill(trained, shapes_dir):
    """Classifiers: accuracy is the quality; distillation is KL on class logits into a given student."""
    from omnifuse.encoders.factory import TowerConfig, build_encoder
    from omnifuse.fusion import build_fusion
    from omnifuse.models.fusion_classifier import FusionClassifier

    teacher_clip = load_model(trained / "model")
    shapes = ["circle", "diamond", "hexagon", "square", "star", "triangle"]

    def classifier(towers):
        fusion = build_fusion("concat", {m: t.hidden_size for m, t in towers.items()})
        return FusionClassifier(
            towers, fusion, class_names=shapes, label_key="shape", processor=teacher_clip.processor
        ).eval()

    torch.manual_seed(0)
    classifier(dict(teacher_clip.towers)).save_pretrained(trained / "clf")
    processor = teacher_clip.processor
    small = {
        "text": build_encoder(
            TowerConfig(
                arch="bert", overrides={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}
            ),
            "text",
            {"vocab_size": processor["text"].vocab_size, "pad_token_id": 0},
        ),
        "image": build_encoder(
            TowerConfig(arch="vit", overrides={"hidden_size": 16, "intermediate_size": 32, "patch_size": 8}),
            "image",
            {"image_size": 32},
        ),
    }
    classifier(small).save_pretrained(trained / "clf-student")

    out = trained / "clf-int8"
    report = compress(trained / "clf", "dynamic-int8", out, shapes_dir / "val.jsonl", options=_opts())
    assert report.primary_metric == "accuracy" and 0 <= report.after["quality"]["accuracy"] <= 1
    assert report.after["file_bytes"] < report.before["file_bytes"]

    out = trained / "clf-distill"
    opts = _opts(student=str(trained / "clf-student"), distill_steps=2)
    report = compress(trained / "clf", "distill", out, shapes_dir / "val.jsonl", train=shapes_dir / "train.jsonl",
                      options=opts)  # fmt: skip
    assert report.after["params"] < report.before["params"] and math.isfinite(report.details["last_loss"])
    model = load_model(out)
    assert isinstance(model, FusionClassifier) and model.class_names == shapes


def test_low_rank_blocks():
    from omnifuse.layers.low_rank import energy_rank, low_rank_pays

    assert energy_rank(torch.tensor([3.0, 1.0, 0.0]), 0.9) == 1  # 9 / 10 of the energy
    assert energy_rank(torch.tensor([3.0, 1.0, 0.0]), 0.95) == 2
    assert low_rank_pays(64, 64, 31) and not low_rank_pays(64, 64, 32)
    torch.manual_seed(0)
    linear = torch.nn.Linear(12, 10)
    full = LowRankLinear.from_linear(linear, 10)  # full rank: the same function
    x = torch.randn(3, 12)
    torch.testing.assert_close(full(x), linear(x), atol=1e-5, rtol=1e-5)


def test_bad_compression_entries_are_named():
    from omnifuse.layers.surgery import apply_compression

    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="unknown compressed module kind 'sparse'"):
        apply_compression(model, {"modules": {"0": {"kind": "sparse", "in_features": 4, "out_features": 4}}})
    with pytest.raises(ValueError, match="no submodule '1'"):
        apply_compression(model, {"modules": {"1": {"kind": "linear", "in_features": 4, "out_features": 2}}})
    with pytest.raises(ValueError, match="dtype"):
        apply_compression(model, {"dtype": "int4"})


def test_max_drop_needs_training_data(trained, shapes_dir, tmp_path):
    with pytest.raises(ValueError, match="--train"):
        compress(
            trained / "model",
            "dynamic-int8",
            tmp_path / "o",
            shapes_dir / "val.jsonl",
            options=_opts(max_drop=0.01),
        )
