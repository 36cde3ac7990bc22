"""Experts that write the demonstrations: scripted controllers for classic control, BabyAI's bot.

Returns on seeds 0..19 (Gymnasium 1.x, minigrid 3.x; mean over 20 episodes, measured again by
`omnifuse bench generalist` in every run and checked by the tests):

| task | expert | mean return | random policy |
|---|---|---|---|
| CartPole-v1 | push toward the pole's lean, `theta + 0.5 theta' + 0.01 x + 0.1 x' > 0` | 500 (the cap) | 22.2 |
| MountainCar-v0 | push along the velocity (pumps energy) | -120.2 | -200 |
| Acrobot-v1 | torque along the second joint's velocity | -77.9 | -500 |
| Pendulum-v1 | energy pumping `2 sign(theta')` far from the top, PD control near it | -138.0 | -1178.9 |
| BabyAI-* | `minigrid.utils.baby_ai_bot.BabyAIBot` | ~0.9 | ~0.1 |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Policy = Callable[[Any], Any]
"""A policy maps a raw environment observation to an action."""


def cartpole_expert(obs: np.ndarray) -> int:
    x, x_dot, theta, theta_dot = (float(v) for v in obs)
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)


def mountain_car_expert(obs: np.ndarray) -> int:
    return 2 if float(obs[1]) >= 0 else 0  # accelerate along the velocity


def acrobot_expert(obs: np.ndarray) -> int:
    return 2 if float(obs[5]) > 0 else 0  # torque along the second joint's velocity


def pendulum_expert(obs: np.ndarray) -> np.ndarray:
    cos, sin, theta_dot = (float(v) for v in obs)
    theta = float(np.arctan2(sin, cos))  # 0 at the top
    if cos > 0.85:
        torque = -10.0 * theta - 2.0 * theta_dot  # PD near the top
    else:
        energy = 0.5 * theta_dot**2 + 10.0 * (cos - 1.0)  # 0 at rest at the top
        torque = 2.0 * np.sign(theta_dot) if energy < 0 else 0.0
    return np.array([np.clip(torque, -2.0, 2.0)], dtype=np.float32)


SCRIPTED: dict[str, Policy] = {
    "CartPole-v1": cartpole_expert,
    "MountainCar-v0": mountain_car_expert,
    "Acrobot-v1": acrobot_expert,
    "Pendulum-v1": pendulum_expert,
}

EXPERT_RETURNS: dict[str, float] = {
    "CartPole-v1": 500.0,
    "MountainCar-v0": -120.15,
    "Acrobot-v1": -77.9,
    "Pendulum-v1": -138.0,
}
"""Mean returns of the scripted experts on seeds 0..19 (the tests check them)."""


def has_expert(env_id: str) -> bool:
    return env_id in SCRIPTED or env_id.startswith("BabyAI-")


def expert_policy(env_id: str, env: Any) -> Policy:
    """The expert for `env_id`, for the episode just reset in `env` (BabyAI's bot plans on it)."""
    if env_id in SCRIPTED:
        return SCRIPTED[env_id]
    if env_id.startswith("BabyAI-"):
        from omnifuse._optional import require

        bot_module = require("minigrid.utils.baby_ai_bot", "envs", "the BabyAI expert")
        bot = bot_module.BabyAIBot(env.unwrapped)
        return lambda _obs: int(bot.replan())
    raise ValueError(f"no expert for '{env_id}'; experts: {', '.join(SCRIPTED)} and every BabyAI-* level")


def random_policy(env: Any) -> Policy:
    """Uniform actions from the environment's own (seeded) action space."""
    return lambda _obs: env.action_space.sample()
