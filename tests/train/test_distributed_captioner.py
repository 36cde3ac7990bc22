"""The captioner (frozen image tower and LM, trainable resampler and cross-attention) on two CPU
processes under `accelerate launch` with the shipped config really runs sharded (FSDP2: its
parameters are DTensors) and trains to the same weights as one process with the same global
batch; a checkpoint written by either resumes in the other."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from omnifuse.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "accelerate" / "fsdp_cpu.yaml"
STEPS = 4

TINY = [  # the recipe's CLIP tower is not trained here: a from-scratch ViT instead
    "model.vision_from=null",
    "model.vision_layer=-1",
    "model.vision.arch=vit",
    "model.vision.pooling=cls",
    "model.vision.overrides.patch_size=8",
    "model.vision.overrides.num_hidden_layers=2",
    "model.vision.overrides.hidden_size=32",
    "model.vision.overrides.intermediate_size=64",
    "model.vision.overrides.num_attention_heads=2",
    "model.lm.preset=tiny",
    "model.lm.overrides.n_embd=32",
    "model.num_latents=4",
    "model.heads=2",
    "model.head_dim=8",
    "model.freeze_vision=true",
    "model.lm.trainable=false",
    "processor.image.size=24",
    "data.val=null",
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.eval_every=null",
    "train.checkpoint_every=2",
    "train.progress=false",
    "train.deterministic=true",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(root: Path, data: Path, name: str, processes: int, steps: int, resume: bool = False) -> None:
    sets = [*TINY, f"data.train={data / 'captioner_train.jsonl'}", f"output_dir={root / 'runs'}"]
    sets += [f"name={name}", f"train.max_steps={steps}"]
    args = ["-m", "omnifuse.cli.main", "train", str(ROOT / "recipes" / "shapes_captioner.yaml")]
    args += [x for s in sets for x in ("--set", s)] + (["--resume"] if resume else [])
    launch = [sys.executable]
    if processes > 1:
        launch += ["-m", "accelerate.commands.launch", "--config_file", str(CONFIG)]
        launch += ["--num_processes", str(processes), "--main_process_port", str(free_port())]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(launch + args, env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]


def weights(root: Path, name: str, step: int) -> dict[str, torch.Tensor]:
    path = root / "runs" / name / "checkpoints" / f"step-{step}" / "model" / "model.safetensors"
    return load_file(str(path))


def trainer_state(root: Path, name: str, step: int = STEPS) -> dict:
    return json.loads(
        (root / "runs" / name / "checkpoints" / f"step-{step}" / "trainer_state.json").read_text()
    )


def world_size(root: Path, name: str) -> int:
    return trainer_state(root, name)["world_size"]


def loss(root: Path, name: str) -> float:
    rows = [json.loads(line) for line in (root / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r][-1]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.slow
def test_two_processes_match_one_and_resume_across(tmp_path):
    data = tmp_path / "shapes"
    synth = ["data", "synth", "--out", str(data), "--n", "30", "--image-size", "24", "--captions", "--quiet"]
    assert main(synth) == 0
    train(tmp_path, data, "single", 1, STEPS)
    train(tmp_path, data, "double", 2, STEPS)

    initial = weights(tmp_path, "single", 2)  # something moved, or the comparison means nothing
    single, double = weights(tmp_path, "single", STEPS), weights(tmp_path, "double", STEPS)
    assert max_difference(initial, single) > 1e-4
    assert world_size(tmp_path, "single") == 1 and world_size(tmp_path, "double") == 2
    assert trainer_state(tmp_path, "single")["parallelism"] == "single"
    assert trainer_state(tmp_path, "double")["parallelism"] == "fsdp2"  # sharded, not DDP
    worst = max_difference(single, double)
    assert worst < 1e-4, f"max parameter difference between 1 and 2 processes: {worst}"
    # the logged loss is the mean over every labelled token of the global batch in both runs
    assert loss(tmp_path, "single") == pytest.approx(loss(tmp_path, "double"), abs=1e-5)
    # the frozen image tower and LM did not move in either run
    start = weights(tmp_path, "double", 2)
    frozen = [k for k in single if k.startswith(("vision.", "lm."))]
    assert frozen and all(torch.equal(single[k], start[k]) for k in frozen)

    # a 1-process checkpoint resumes on 2 processes, a 2-process one on 1; both finish alike
    train(tmp_path, data, "single", 2, STEPS + 2, resume=True)
    train(tmp_path, data, "double", 1, STEPS + 2, resume=True)
    assert trainer_state(tmp_path, "single", STEPS + 2)["parallelism"] == "fsdp2"
    assert trainer_state(tmp_path, "double", STEPS + 2)["parallelism"] == "single"
    a, b = weights(tmp_path, "single", STEPS + 2), weights(tmp_path, "double", STEPS + 2)
    assert max_difference(single, a) > 1e-4
    assert max_difference(a, b) < 1e-4


def test_accumulated_micro_batches_weigh_by_tokens(tmp_path):
    """Two micro-batches of 4 step like one batch of 8: the captioner's token-mean loss is
    weighted by each micro-batch's labelled tokens (equal weights differ by ~3e-3 here)."""
    data = tmp_path / "shapes"
    synth = ["data", "synth", "--out", str(data), "--n", "30", "--image-size", "24", "--captions", "--quiet"]
    assert main(synth) == 0

    def run(name: str, batch_size: int, grad_accum: int) -> dict[str, torch.Tensor]:
        sets = [*TINY, f"data.train={data / 'captioner_train.jsonl'}", f"output_dir={tmp_path / 'runs'}"]
        sets += [f"name={name}", "train.max_steps=3", f"train.batch_size={batch_size}"]
        sets += [f"train.grad_accum={grad_accum}"]
        recipe = str(ROOT / "recipes" / "shapes_captioner.yaml")
        assert main(["train", recipe, *[x for s in sets for x in ("--set", s)]]) == 0
        return weights(tmp_path, name, 3)

    whole, accumulated = run("whole", 8, 1), run("accumulated", 4, 2)
    assert max_difference(whole, accumulated) < 1e-5
