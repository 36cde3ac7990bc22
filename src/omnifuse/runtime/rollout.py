"""Run a model that can `act` in a real environment: returns per episode, and an animation.

Episodes run in lockstep (one batched forward pass per step for all unfinished episodes);
episode `i` resets its environment with `seed + i`, so a rollout is deterministic per seed.
A model is refused for an environment it was never trained on (its spec must offer `act`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.episodes import envs
from omnifuse.data.episodes.episode import Episode
from omnifuse.models.registry import spec_of

logger = logging.getLogger("omnifuse.runtime")


@dataclass
class RolloutResult:
    env_id: str
    seeds: list[int]
    returns: list[float]
    lengths: list[int]
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    """Rendered frames of the first episode (when asked for)."""

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "episodes": len(self.returns),
            "mean_return": self.mean_return,
            "std_return": float(np.std(self.returns)),
            "mean_length": float(np.mean(self.lengths)),
            "returns": self.returns,
            "seeds": self.seeds,
        }


def rollout(
    model: Any,
    env_id: str,
    episodes: int,
    seed: int = 0,
    demonstrations: Sequence[Episode] | None = None,
    max_steps: int | None = None,
    record: bool = False,
    progress: bool = False,
    max_history: int | None = None,
) -> RolloutResult:
    """Play `episodes` episodes of `env_id` with `model.act_batch`; `demonstrations` (same task)
    prompt episode `i` with demonstration `i % len(demonstrations)`; `record` keeps the first
    episode's frames; `max_history` caps the past steps the model sees (see `act_batch`)."""
    spec_of(model).require("act", "a rollout")
    if episodes <= 0:
        raise ValueError(f"the number of episodes must be positive; got {episodes}")
    model.task_space(env_id)  # refuses an environment the model never trained on
    prompts = None
    if demonstrations:
        wrong = sorted({d.env_id for d in demonstrations} - {env_id})
        if wrong:
            raise ValueError(f"demonstrations of {wrong} cannot prompt a rollout of {env_id}")
        demos = [model.demonstration_prompt(d) for d in demonstrations]
        prompts = [demos[i % len(demos)] for i in range(episodes)]
    model.eval()
    pool = [
        envs.make_env(env_id, render_mode="rgb_array" if record and i == 0 else None) for i in range(episodes)
    ]
    try:
        obs = [envs.reset(env, seed + i) for i, env in enumerate(pool)]
        histories: list[list[tuple[Any, Any]]] = [[] for _ in pool]
        returns = [0.0] * episodes
        done = [False] * episodes
        frames: list[np.ndarray] = [pool[0].render()] if record else []
        start, last_log = time.time(), time.time()
        while not all(done):
            active = [i for i in range(episodes) if not done[i]]
            actions = model.act_batch(
                env_id,
                [obs[i] for i in active],
                [histories[i] for i in active],
                [prompts[i] for i in active] if prompts else None,
                max_history=max_history,
            )
            for i, action in zip(active, actions):
                histories[i].append((obs[i], action))
                obs[i], reward, finished = envs.step(pool[i], action)
                returns[i] += reward
                done[i] = finished or (max_steps is not None and len(histories[i]) >= max_steps)
                if i == 0 and record:
                    frames.append(pool[0].render())
            if progress and time.time() - last_log > 10:
                last_log = time.time()
                logger.info(
                    "%s: %d/%d episodes running, step %d, %.0f s",
                    env_id,
                    len(active),
                    episodes,
                    max(len(h) for h in histories),
                    time.time() - start,
                )
        return RolloutResult(
            env_id, [seed + i for i in range(episodes)], returns, [len(h) for h in histories], frames
        )
    finally:
        for env in pool:
            env.close()


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 15, max_side: int = 256) -> Path:
    """Write frames as an animated GIF (PIL), downscaled to at most `max_side` pixels."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames to animate (record the rollout)")
    images = []
    for frame in frames:
        img = Image.fromarray(np.asarray(frame, dtype=np.uint8))
        scale = max_side / max(img.size)
        if scale < 1:
            img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))))
        images.append(img.convert("P", palette=Image.ADAPTIVE))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path
