"""Gymnasium and minigrid (BabyAI) environments, seen through a :class:`TaskSpace`.

Needs `omnifuse[envs]` (gymnasium, minigrid), imported here only. Classic control gives a
`state` vector; minigrid gives its symbolic partial view `grid` (7 x 7 x 3), the agent's
`direction` and a text `mission`.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from omnifuse._optional import require
from omnifuse.data.episodes.spaces import TaskSpace, space_from_gym
from omnifuse.data.sample import DataError

CLASSIC_CONTROL = ("CartPole-v1", "MountainCar-v0", "Acrobot-v1", "Pendulum-v1")
BABYAI = ("BabyAI-GoToRedBall-v0", "BabyAI-GoToObj-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupDist-v0")
TASKS = CLASSIC_CONTROL + BABYAI
"""The tasks with experts in this library (the generalist benchmark's suite)."""


class EnvNotAvailableError(DataError):
    """An environment id that no installed package registers."""


def _is_minigrid(env_id: str) -> bool:
    return env_id.startswith(("BabyAI-", "MiniGrid-"))


def make_env(env_id: str, render_mode: str | None = None) -> Any:
    """`gymnasium.make(env_id)`; a clear error when the id is unknown or its package is missing."""
    gym = require("gymnasium", "envs", f"environment '{env_id}'")
    if _is_minigrid(env_id):
        require("minigrid", "envs", f"environment '{env_id}'")  # importing it registers BabyAI-*
    try:
        return gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as err:
        raise EnvNotAvailableError(
            f"environment '{env_id}' is not installed ({err}); environments with experts here: "
            f"{', '.join(TASKS)}"
        ) from err


def task_space(env: Any) -> TaskSpace:
    """The tokenizer's view of an environment (refuses spaces it cannot represent, naming them)."""
    return space_from_gym(env.observation_space, env.action_space)


def observation_fields(obs: Any) -> tuple[dict[str, np.ndarray], str]:
    """A raw observation -> (fields by name, mission text)."""
    if isinstance(obs, dict):
        fields = {"grid": np.asarray(obs["image"], dtype=np.uint8)}
        for key, value in sorted(obs.items()):
            if key not in ("image", "mission"):
                fields[key] = np.asarray([value], dtype=np.int64)
        return fields, str(obs.get("mission", ""))
    arr = np.asarray(obs)
    if arr.ndim == 3:
        return {"image": arr.astype(np.uint8)}, ""
    return {"state": arr.astype(np.float32)}, ""


def reset(env: Any, seed: int) -> Any:
    """`env.reset(seed=seed)`, with minigrid's level-sampling chatter on stdout kept quiet."""
    with contextlib.redirect_stdout(io.StringIO()):
        obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    return obs


def step(env: Any, action: Any) -> tuple[Any, float, bool]:
    """One step: (observation, reward, done)."""
    if hasattr(action, "shape") and env.action_space.shape == ():
        action = int(np.asarray(action).reshape(-1)[0])
    with contextlib.redirect_stdout(io.StringIO()):
        obs, reward, terminated, truncated, _ = env.step(action)
    return obs, float(reward), bool(terminated or truncated)
