"""The command line end to end on a few dozen synthetic samples: synth -> pack -> train -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from omnifuse.cli.main import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "shapes"
    assert (
        main(
            ["data", "synth", "--out", str(out), "--n", "80", "--seed", "3", "--image-size", "32", "--quiet"]
        )
        == 0
    )
    return out


def test_help_has_examples(capsys):
    for verb in (["train"], ["eval"], ["demo"], ["data", "synth"], ["data", "pack"], ["bench", "train"]):
        with pytest.raises(SystemExit) as exit_:
            main([*verb, "--help"])
        assert exit_.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_synth_writes_splits(synth_dir):
    counts = {s: len((synth_dir / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "val", "test")}
    assert counts == {"train": 64, "val": 8, "test": 8}
    row = json.loads((synth_dir / "train.jsonl").read_text().splitlines()[0])
    assert (synth_dir / row["image"]).exists()


def test_pack_inspect_and_corrupt_shard(synth_dir, tmp_path, capsys):
    shards = tmp_path / "shards"
    code, out, _ = run(
        ["data", "pack", str(synth_dir / "train.jsonl"), "--out", str(shards), "--shard-size", "20"], capsys
    )
    assert code == 0 and "64 samples in 4 shard(s)" in out
    code, out, _ = run(["data", "inspect", str(shards)], capsys)
    assert code == 0 and json.loads(out)["count"] == 64
    victim = sorted(shards.glob("*.tar"))[1]
    data = bytearray(victim.read_bytes())
    data[700] ^= 0xFF
    victim.write_bytes(bytes(data))
    code, out, _ = run(["data", "inspect", str(shards)], capsys)
    assert victim.name in " ".join(json.loads(out)["problems"])
    from omnifuse.data.readers import read_samples
    from omnifuse.data.shards import ShardChecksumError

    with pytest.raises(ShardChecksumError, match=victim.name):
        read_samples(str(shards))


def test_train_from_shards_then_eval(synth_dir, tmp_path, tiny_recipe, capsys):
    shards = tmp_path / "shards"
    assert (
        main(["data", "pack", str(synth_dir / "train.jsonl"), "--out", str(shards), "--shard-size", "32"])
        == 0
    )
    recipe = tiny_recipe(synth_dir, tmp_path / "runs", max_steps=3)
    recipe["data"]["train"] = str(shards)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    code, out, _ = run(["train", str(path), "--set", "train.eval_every=3"], capsys)
    assert code == 0, out
    run_dir = tmp_path / "runs" / "tiny"
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "best/config.json",
        "best/processor.json",
        "best/model.safetensors",
        "checkpoints/step-3/trainer_state.json",
        "plots/loss.png",
        "report.html",
    ):
        assert (run_dir / name).exists(), name
    code, out, _ = run(
        [
            "eval",
            str(run_dir / "best"),
            str(synth_dir / "test.jsonl"),
            "--label-key",
            "color",
            "--probe-train",
            str(synth_dir / "train.jsonl"),
            "--out",
            str(tmp_path / "e.json"),
        ],
        capsys,
    )
    assert code == 0
    metrics = json.loads((tmp_path / "e.json").read_text())
    for key in ("text_to_image/R@1", "image_to_text/median_rank", "zero_shot/top1", "linear_probe/accuracy"):
        assert 0 <= metrics[key] <= max(1, metrics.get("n_pairs", 1)), key


def test_bad_recipe_fails_before_work(tmp_path, capsys, tiny_recipe, synth_dir):
    recipe = tiny_recipe(synth_dir, tmp_path / "runs")
    recipe["train"]["learning_rate"] = 0.1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, _, err = run(["train", str(path)], capsys)
    assert code == 2
    assert "unknown key 'train.learning_rate'" in err and "lr" in err
    assert not (tmp_path / "runs").exists()


def test_missing_files_are_named(tmp_path, capsys, tiny_recipe, synth_dir):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"image": f"nope/{i}.png", "captions": ["a red circle"]}) + "\n" for i in range(3))
    )
    recipe = tiny_recipe(synth_dir, tmp_path / "runs")
    recipe["data"]["train"] = str(manifest)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, _, err = run(["train", str(path)], capsys)
    assert code == 2 and "nope/0.png" in err


def test_eval_on_non_artifact(tmp_path, capsys, synth_dir):
    code, _, err = run(["eval", str(tmp_path), str(synth_dir / "test.jsonl")], capsys)
    assert code == 2 and "not an omnifuse artifact" in err


def test_bench_train_compares_with_hf_clip(tmp_path, tiny_recipe, synth_dir, capsys):
    recipe = tiny_recipe(synth_dir, tmp_path / "runs")
    recipe["model"]["encoders"] = {
        "text": {
            "arch": "clip_text",
            "pooling": "pooler",
            "overrides": {"hidden_size": 32, "intermediate_size": 64},
        },
        "image": {
            "arch": "clip_vision",
            "pooling": "pooler",
            "overrides": {"hidden_size": 32, "intermediate_size": 64, "patch_size": 8},
        },
    }
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "bench.json"
    code, printed, _ = run(
        ["bench", "train", str(path), "--steps", "3", "--warmup", "1", "--out", str(out)], capsys
    )
    assert code == 0 and "speed-up vs HF CLIPModel fp32 eager" in printed
    result = json.loads(out.read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"hf_clip_fp32", "omnifuse"}
    # same architecture on both sides: same parameter count, and both losses are real numbers
    assert rows["omnifuse"]["params_m"] == pytest.approx(rows["hf_clip_fp32"]["params_m"], rel=1e-3)
    for r in rows.values():
        assert r["samples_per_s"] > 0 and 0 < r["final_loss"] < 10
    assert result["speedup"] == pytest.approx(
        rows["omnifuse"]["samples_per_s"] / rows["hf_clip_fp32"]["samples_per_s"]
    )
