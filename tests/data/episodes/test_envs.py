"""Environments, experts and episode shards (needs omnifuse[envs])."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")

from omnifuse.cli.main import main  # noqa: E402
from omnifuse.data.episodes import envs, experts  # noqa: E402
from omnifuse.data.episodes.record import collect_episodes, read_episodes, write_episodes  # noqa: E402
from omnifuse.data.episodes.spaces import UnsupportedSpaceError, space_from_gym  # noqa: E402
from omnifuse.data.sample import DataError  # noqa: E402


@pytest.mark.parametrize("env_id", list(experts.EXPERT_RETURNS))
def test_scripted_experts_reach_their_documented_returns(env_id):
    episodes = collect_episodes(env_id, 20, seed=0)
    mean = np.mean([ep.total_return for ep in episodes])
    assert mean == pytest.approx(experts.EXPERT_RETURNS[env_id], abs=0.5)
    random_mean = np.mean([ep.total_return for ep in collect_episodes(env_id, 5, seed=0, policy="random")])
    assert mean > random_mean


def test_babyai_bot_solves_goto_levels():
    episodes = collect_episodes("BabyAI-GoToRedBall-v0", 10, seed=0)
    assert all(ep.total_return > 0.5 for ep in episodes)  # every mission reached, quickly
    ep = episodes[0]
    assert ep.mission == "go to the red ball"
    assert ep.observations["grid"].shape[1:] == (7, 7, 3) and ep.observations["direction"].shape[1:] == (1,)
    assert ep.space.mission and ep.space.action.n == [7]


def test_episode_shards_round_trip_and_are_deterministic(tmp_path):
    a = collect_episodes("Pendulum-v1", 3, seed=5, max_steps=30)
    b = collect_episodes("Pendulum-v1", 3, seed=5, max_steps=30)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.actions, y.actions)
    write_episodes(a, tmp_path / "pend", shard_size=2)
    back = read_episodes(tmp_path / "pend")
    assert [e.seed for e in back] == [5, 6, 7]
    for x, y in zip(a, back):
        np.testing.assert_array_equal(x.observations["state"], y.observations["state"])
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.rewards, y.rewards)
        assert y.space.to_dict() == x.space.to_dict() and y.space.action.kind == "continuous"
    baby = collect_episodes("BabyAI-GoToObj-v0", 2, seed=0)
    write_episodes(baby, tmp_path / "baby")
    back = read_episodes(tmp_path / "baby")
    assert back[1].mission == baby[1].mission
    np.testing.assert_array_equal(back[1].observations["grid"], baby[1].observations["grid"])


def test_bad_input_is_named(tmp_path):
    with pytest.raises(envs.EnvNotAvailableError, match="NoSuchEnv-v0.*not installed"):
        envs.make_env("NoSuchEnv-v0")
    import gymnasium as gym

    with pytest.raises(UnsupportedSpaceError, match="MultiBinary"):
        space_from_gym(gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiBinary(4))
    with pytest.raises(UnsupportedSpaceError, match="observation space"):
        space_from_gym(gym.spaces.Box(-1, 1, (3, 4)), gym.spaces.Discrete(2))
    episodes = collect_episodes("CartPole-v1", 2, seed=0, max_steps=10)
    episodes[1].observations["state"] = episodes[1].observations["state"][:, :3]
    episodes[1].space = episodes[0].space
    with pytest.raises(DataError, match="shape must not change inside a shard"):
        write_episodes(episodes, tmp_path / "bad")


def test_cli_writes_episodes(tmp_path, capsys):
    out = tmp_path / "cp"
    assert (
        main(["data", "episodes", "--env", "CartPole-v1", "--episodes", "3", "--out", str(out), "--quiet"])
        == 0
    )
    assert "mean return 500.00" in capsys.readouterr().out
    assert len(read_episodes(out)) == 3
    assert main(["data", "episodes", "--env", "Nope-v9", "--episodes", "1", "--out", str(out)]) == 2
    assert "not installed" in capsys.readouterr().err
