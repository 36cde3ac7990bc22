"""The generalist kind: forward/loss, save/load, acting in real environments, training and rollout CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")

from omnifuse.cli.main import main  # noqa: E402
from omnifuse.data.episodes import envs  # noqa: E402
from omnifuse.data.episodes.record import collect_episodes, write_episodes  # noqa: E402
from omnifuse.data.loader import Collator  # noqa: E402
from omnifuse.data.synth import SynthConfig, generate  # noqa: E402
from omnifuse.models import load_model  # noqa: E402
from omnifuse.models.generalist import Generalist, GeneralistConfig, UntrainedTaskError  # noqa: E402
from omnifuse.models.generalist.build import build_processor, read_mixture  # noqa: E402
from omnifuse.models.registry import get_spec  # noqa: E402
from omnifuse.runtime.rollout import rollout  # noqa: E402

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "context_length": 96, "samples_per_epoch": 48}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generalist")
    write_episodes(collect_episodes("CartPole-v1", 3, seed=100, max_steps=40), root / "episodes/CartPole-v1")
    write_episodes(collect_episodes("Pendulum-v1", 2, seed=100, max_steps=30), root / "episodes/Pendulum-v1")
    write_episodes(
        collect_episodes("BabyAI-GoToRedBall-v0", 3, seed=100), root / "episodes/BabyAI-GoToRedBall-v0"
    )
    generate(SynthConfig(n=12, seed=0), root / "shapes", progress=False)
    return root


def mixture(root: Path) -> dict:
    eps = [str(root / "episodes" / e) for e in ("CartPole-v1", "Pendulum-v1", "BabyAI-GoToRedBall-v0")]
    shapes = [str(root / "shapes/train.jsonl")]
    return {
        "control": {"kind": "episodes", "paths": eps, "weight": 2},
        "caption": {"kind": "caption", "paths": shapes, "weight": 1},
        "vqa": {"kind": "vqa", "paths": shapes, "weight": 1},
        "text": {"kind": "text", "paths": shapes, "weight": 0.5},
    }


@pytest.fixture(scope="module")
def model_and_samples(data_root):
    torch.manual_seed(0)
    cfg = GeneralistConfig(**TINY, mixture=mixture(data_root))
    samples = read_mixture(cfg)
    model = get_spec("generalist").build(cfg, build_processor(cfg, samples), samples)
    return model, samples


def test_mixture_follows_weights_and_balances_environments(model_and_samples):
    _, samples = model_and_samples
    counts = {}
    for s in samples:
        counts[s.meta["mixture"]] = counts.get(s.meta["mixture"], 0) + 1
    assert counts == {"control": 21, "caption": 11, "vqa": 11, "text": 5}
    envs_seen = [s.inputs["sequence"]["episode"].env_id for s in samples if s.meta["mixture"] == "control"]
    assert {e: envs_seen.count(e) for e in set(envs_seen)} == {
        "BabyAI-GoToRedBall-v0": 7,
        "CartPole-v1": 7,
        "Pendulum-v1": 7,
    }


def test_forward_loss_save_load_round_trip(model_and_samples, tmp_path):
    model, samples = model_and_samples
    assert get_spec("generalist").can("act") and get_spec("generalist").can("generate_text")
    collate = Collator(model.processor, ["sequence"], train=True)
    batch = collate(list(enumerate(samples[::4])))
    batch.pop("index")
    out = model(batch)
    assert out.logits.shape[:2] == batch["tokens"].shape and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.patch_embed["image"].weight.grad.abs().sum() > 0  # patches reach the loss
    model.zero_grad()
    model.save_pretrained(tmp_path / "art")
    config = json.loads((tmp_path / "art/config.json").read_text())
    assert config["model_type"] == "generalist" and "CartPole-v1" in config["tasks"]
    loaded = load_model(tmp_path / "art")
    assert isinstance(loaded, Generalist) and sorted(loaded.tasks) == sorted(model.tasks)
    model.eval()
    torch.testing.assert_close(loaded(batch).logits, model(batch).logits)


def test_act_in_real_environments_and_refuse_unknown(model_and_samples):
    model, samples = model_and_samples
    model.eval()
    env = envs.make_env("Pendulum-v1")
    obs = envs.reset(env, 0)
    action = model.act(obs, [], env_id="Pendulum-v1")
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    env = envs.make_env("BabyAI-GoToRedBall-v0")
    obs = envs.reset(env, 0)
    demo = next(
        s.inputs["sequence"]["episode"]
        for s in samples
        if s.meta["mixture"] == "control"
        and s.inputs["sequence"]["episode"].env_id == "BabyAI-GoToRedBall-v0"
    )
    long_history = [(obs, np.array([2]))] * 200  # longer than the context: the oldest steps are dropped
    action = model.act(
        obs, long_history, env_id="BabyAI-GoToRedBall-v0", prompt=model.demonstration_prompt(demo)
    )
    assert 0 <= int(action[0]) < 7
    with pytest.raises(UntrainedTaskError, match="never trained on 'Acrobot-v1'"):
        model.act(obs, [], env_id="Acrobot-v1")
    result = rollout(model, "CartPole-v1", 2, seed=3, record=True, max_steps=15)
    assert len(result.returns) == 2 and all(1 <= n <= 15 for n in result.lengths)
    assert len(result.frames) == result.lengths[0] + 1


def test_generate_caption_and_answer(model_and_samples, data_root):
    model, _ = model_and_samples
    from omnifuse.generation import GenerationSettings

    rows = [json.loads(line) for line in (data_root / "shapes/train.jsonl").read_text().splitlines()[:2]]
    images = [str(data_root / "shapes" / r["image"]) for r in rows]
    from PIL import Image

    images = [Image.open(p) for p in images]
    out = model.generate_text(images, settings=GenerationSettings(max_new_tokens=4))
    assert len(out.texts) == 2 and all(len(ids) <= 4 for ids in out.token_ids)
    tok = model.gato.tokenizer
    assert all(0 <= i < tok.text_size for ids in out.token_ids for i in ids)  # text ids only
    out = model.generate_text(images, ["what color is it?"] * 2, GenerationSettings(max_new_tokens=2))
    assert len(out.texts) == 2


@pytest.mark.slow
def test_train_and_rollout_cli_end_to_end(data_root, tmp_path, capsys):
    recipe = tmp_path / "generalist.yaml"
    recipe.write_text(
        json.dumps(
            {
                "name": "gen",
                "output_dir": str(tmp_path / "runs"),
                "data": {"train": str(data_root)},
                "model": {
                    "type": "generalist",
                    **TINY,
                    "mixture": {
                        "control": {"kind": "episodes", "paths": ["episodes/CartPole-v1"], "weight": 3},
                        "caption": {"kind": "caption", "paths": ["shapes/train.jsonl"], "weight": 1},
                    },
                },
                "train": {
                    "batch_size": 8,
                    "max_steps": 6,
                    "log_every": 2,
                    "progress": False,
                    "warmup_steps": 1,
                },
            }
        )
    )
    assert main(["train", str(recipe)]) == 0
    capsys.readouterr()
    best = tmp_path / "runs/gen/best"
    assert (best / "model.safetensors").exists()
    gif = tmp_path / "cp.gif"
    code = main(
        [
            "rollout",
            str(best),
            "--env",
            "CartPole-v1",
            "--episodes",
            "2",
            "--max-steps",
            "20",
            "--gif",
            str(gif),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and len(summary["returns"]) == 2 and summary["gif"] == str(gif)
    from PIL import Image

    with Image.open(gif) as animation:
        assert 1 < animation.n_frames <= int(summary["returns"][0]) + 1  # PIL merges identical frames
    assert main(["rollout", str(best), "--env", "Pendulum-v1", "--episodes", "1"]) == 2
    assert "never trained on 'Pendulum-v1'" in capsys.readouterr().err


def test_pretrained_causal_lm_backbone(data_root, tmp_path):
    """Any HF causal LM directory as the backbone: its weights and tokenizer, embeddings resized."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from omnifuse.data.processors import build_word_tokenizer

    text_tok = build_word_tokenizer(["a red circle", "go to the red ball", "what color is it"])
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(text_tok), n_positions=96, n_embd=32, n_layer=1, n_head=2))
    lm.save_pretrained(tmp_path / "lm")
    text_tok.save_pretrained(tmp_path / "lm")
    cfg = GeneralistConfig(**{**TINY, "backbone": str(tmp_path / "lm")}, mixture=mixture(data_root))
    samples = read_mixture(cfg)
    model = get_spec("generalist").build(cfg, build_processor(cfg, samples), samples)
    tok = model.gato.tokenizer
    assert tok.text_size == len(text_tok)  # the backbone's own tokenizer
    assert model.lm.get_input_embeddings().num_embeddings == tok.vocab_size
    torch.testing.assert_close(  # text embeddings are the pretrained ones
        model.lm.get_input_embeddings().weight[: tok.text_size], lm.get_input_embeddings().weight
    )
    model.save_pretrained(tmp_path / "art")
    loaded = load_model(tmp_path / "art")  # rebuilt from the saved LM config: no hub, no source dir
    batch = Collator(model.processor, ["sequence"])(list(enumerate(samples[:4])))
    batch.pop("index")
    model.eval()
    torch.testing.assert_close(loaded(batch).logits, model(batch).logits)


@pytest.mark.parametrize("backbone", ["gpt_neo", "llama"])
def test_other_backbones_from_scratch(data_root, backbone):
    cfg = GeneralistConfig(**{**TINY, "backbone": backbone}, mixture=mixture(data_root))
    samples = read_mixture(cfg)[::6]
    model = get_spec("generalist").build(cfg, build_processor(cfg, samples), samples)
    assert model.lm.config.model_type == backbone
    batch = Collator(model.processor, ["sequence"], train=True)(list(enumerate(samples)))
    batch.pop("index")
    assert torch.isfinite(model(batch).loss)
    env = envs.make_env("CartPole-v1")
    assert int(model.eval().act(envs.reset(env, 0), [], env_id="CartPole-v1")[0]) in (0, 1)


def test_one_step_windows_act_without_history(data_root, monkeypatch):
    cfg = GeneralistConfig(**TINY, window_steps=1, mixture=mixture(data_root))
    samples = read_mixture(cfg)
    model = get_spec("generalist").build(cfg, build_processor(cfg, samples), samples).eval()
    env = envs.make_env("CartPole-v1")
    obs = envs.reset(env, 0)
    history = [(envs.reset(env, s), np.array([s % 2])) for s in range(1, 6)]
    seen = []
    real = model._next_logits
    monkeypatch.setattr(model, "_next_logits", lambda seqs: seen.extend(len(q) for q in seqs) or real(seqs))
    model.act(obs, history, env_id="CartPole-v1")
    assert seen == [4 + 1]  # the observation and the separator: training windows had no past steps
    seen.clear()
    model.gato.window_steps = 3
    model.act(obs, history, env_id="CartPole-v1")
    assert seen == [2 * 6 + 4 + 1]  # two past steps (obs | action), then the observation
