"""Two CPU processes (gloo, via torchrun) train to the same parameters as one process with the
same global batch: the contrastive loss gathers features across processes, with gradient."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

STEPS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipe_file(tmp_path: Path, shapes_dir: Path, tiny_recipe, name: str) -> Path:
    recipe = tiny_recipe(shapes_dir, tmp_path / "runs", max_steps=STEPS, deterministic=True, eval_every=2)
    recipe["name"] = name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, shapes_dir, tiny_recipe):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single = recipe_file(tmp_path, shapes_dir, tiny_recipe, "single")
    subprocess.run(
        [sys.executable, "-m", "omnifuse.cli.main", "train", str(single)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    double = recipe_file(tmp_path, shapes_dir, tiny_recipe, "double")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            "-m",
            "omnifuse.cli.main",
            "train",
            str(double),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    def weights(name):
        return load_file(
            str(tmp_path / "runs" / name / "checkpoints" / f"step-{STEPS}" / "model" / "model.safetensors")
        )

    a, b = weights("single"), weights("double")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4, f"max parameter difference {worst}"

    # the logged global-batch losses agree step by step, and only the main process wrote them
    def losses(name):
        rows = [
            json.loads(line) for line in (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()
        ]
        return [r["train/loss"] for r in rows if "train/loss" in r]

    assert len(losses("double")) == STEPS
    assert losses("single") == pytest.approx(losses("double"), abs=1e-4)
