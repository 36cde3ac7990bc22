"""A run killed with SIGKILL and resumed ends with bitwise the same parameters as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from omnifuse.train.checkpoint import complete_checkpoints

STEPS = 40


def write_recipe(tmp_path: Path, shapes_dir: Path, tiny_recipe, name: str) -> Path:
    recipe = tiny_recipe(
        shapes_dir,
        tmp_path / "runs",
        max_steps=STEPS,
        checkpoint_every=2,
        keep_checkpoints=3,
        deterministic=True,
        eval_every=10,
    )
    recipe["name"] = name
    # dropout on, so that restoring the RNG state matters
    recipe["model"]["encoders"]["text"]["overrides"]["hidden_dropout_prob"] = 0.1
    recipe["model"]["encoders"]["image"]["overrides"]["hidden_dropout_prob"] = 0.1
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def train_cmd(recipe: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "omnifuse.cli.main", "train", str(recipe), *extra]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / f"step-{STEPS}" / "model" / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_and_resume_is_bitwise_identical(tmp_path, shapes_dir, tiny_recipe):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    ref = write_recipe(tmp_path, shapes_dir, tiny_recipe, "reference")
    subprocess.run(train_cmd(ref), check=True, env=env, capture_output=True, timeout=300)

    killed = write_recipe(tmp_path, shapes_dir, tiny_recipe, "killed")
    run_dir = tmp_path / "runs" / "killed"
    # Kill twice at different moments (once right after the first checkpoint, once a little
    # later, possibly mid-write), resuming each time.
    for attempt, delay in enumerate((0.0, 0.3)):
        proc = subprocess.Popen(
            train_cmd(killed, *(["--resume"] if attempt else [])),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seen = len(complete_checkpoints(run_dir / "checkpoints"))
        deadline = time.time() + 240
        while len(complete_checkpoints(run_dir / "checkpoints")) <= seen and proc.poll() is None:
            assert time.time() < deadline, "training never wrote a checkpoint"
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run_dir / "checkpoints" / f"step-{STEPS}").exists(), "the run finished before being killed"
    subprocess.run(train_cmd(killed, "--resume"), check=True, env=env, capture_output=True, timeout=300)

    a, b = final_weights(tmp_path / "runs" / "reference"), final_weights(run_dir)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ after resume: {different[:5]}"
    # metrics.jsonl has each step once, in order
    import json

    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [s for s in steps]
    assert train_steps == sorted(train_steps)


def test_resume_without_checkpoint_starts_fresh(tmp_path, shapes_dir, tiny_recipe):
    from omnifuse.train.config import recipe_from_dict
    from omnifuse.train.run import run_recipe

    recipe = recipe_from_dict(tiny_recipe(shapes_dir, tmp_path, max_steps=2))
    result = run_recipe(recipe, resume=True)
    assert result.step == 2
    assert [p.name for p in complete_checkpoints(recipe.run_dir / "checkpoints")] == ["step-2"]
    assert (recipe.run_dir / "best" / "model.safetensors").exists()
