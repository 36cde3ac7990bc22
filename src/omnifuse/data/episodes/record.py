"""Run policies in environments and keep the episodes as shards (`data/shards.py`).

One sample per episode: its arrays as an `.npz` member (no pickles) and, in its JSON record,
the environment id, seed, mission, return and :class:`TaskSpace`. Episodes are deterministic
per seed: episode `i` of a run started at `seed` resets the environment with `seed + i`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.episodes.episode import Episode
from omnifuse.data.episodes.spaces import TaskSpace
from omnifuse.data.sample import DataError, Sample

logger = logging.getLogger("omnifuse.data")

PolicyFactory = Callable[[Any], Callable[[Any], Any]]
"""`factory(env)` after a reset -> `policy(raw_observation) -> action`."""


def run_episode(
    env: Any,
    env_id: str,
    seed: int,
    policy: str | PolicyFactory = "expert",
    max_steps: int | None = None,
    frames: list | None = None,
) -> Episode:
    """Play one episode from `env.reset(seed=seed)`; `frames` (a list) collects `env.render()`."""
    from omnifuse.data.episodes import envs, experts

    raw = envs.reset(env, seed)
    if policy == "expert":
        act = experts.expert_policy(env_id, env)
    elif policy == "random":
        act = experts.random_policy(env)
    elif callable(policy):
        act = policy(env)
    else:
        raise ValueError(f"policy must be 'expert', 'random' or a callable; got {policy!r}")
    obs_steps: list[dict[str, np.ndarray]] = []
    actions, rewards = [], []
    mission = ""
    done = False
    while not done and (max_steps is None or len(actions) < max_steps):
        fields, mission = envs.observation_fields(raw)
        if frames is not None:
            frames.append(env.render())
        action = act(raw)
        obs_steps.append(fields)
        actions.append(np.asarray(action).reshape(-1))
        raw, reward, done = envs.step(env, action)
        rewards.append(reward)
    if frames is not None:
        frames.append(env.render())
    observations = {k: np.stack([o[k] for o in obs_steps]) for k in obs_steps[0]}
    action_array = np.stack(actions)
    space = envs.task_space(env)
    action_array = action_array.astype(np.int64 if space.action.kind == "discrete" else np.float32)
    return Episode(
        env_id, seed, observations, action_array, np.asarray(rewards, np.float32), mission, space=space
    )


def collect_episodes(
    env_id: str,
    n: int,
    seed: int = 0,
    policy: str | PolicyFactory = "expert",
    max_steps: int | None = None,
    progress: bool = False,
) -> list[Episode]:
    """`n` episodes of `env_id` with seeds `seed, seed + 1, ...`."""
    from tqdm.auto import tqdm

    from omnifuse.data.episodes import envs

    if n <= 0:
        raise ValueError(f"the number of episodes must be positive; got {n}")
    env = envs.make_env(env_id)
    envs.task_space(env)  # refuse spaces the tokenizer cannot represent before playing
    try:
        return [
            run_episode(env, env_id, seed + i, policy, max_steps)
            for i in tqdm(range(n), desc=env_id, unit="episode", disable=not progress)
        ]
    finally:
        env.close()


def _check_consistent(episodes: Sequence[Episode]) -> None:
    """Every episode of one environment has the first one's task space and shapes."""
    first: dict[str, tuple[TaskSpace, Episode]] = {}
    for ep in episodes:
        if ep.space is None:
            raise DataError(f"episode {ep.env_id} seed {ep.seed} has no task space")
        where = f"episode {ep.env_id} seed {ep.seed}"
        if ep.env_id not in first:
            first[ep.env_id] = (ep.space, ep)
        space, ref = first[ep.env_id]
        if ep.space.to_dict() != space.to_dict():
            raise DataError(
                f"{where}: its task space differs from that of seed {ref.seed} in the same shards"
            )
        for name, value in ep.observations.items():
            want = ref.observations.get(name)
            if want is None or value.shape[1:] != want.shape[1:]:
                raise DataError(
                    f"{where}: observation '{name}' has shape {list(value.shape[1:])} per step but seed "
                    f"{ref.seed} has {None if want is None else list(want.shape[1:])}; the observation "
                    "shape must not change inside a shard"
                )
        ep.check(space, where)


def write_episodes(episodes: Sequence[Episode], out_dir: str | os.PathLike, shard_size: int = 100) -> Path:
    """Pack episodes as shards with a checksum index; returns the directory."""
    from omnifuse.data.shards import pack_shards

    if not episodes:
        raise DataError("no episodes to write")
    _check_consistent(episodes)
    samples = [
        Sample(
            inputs={"episode": ep.to_bytes()},
            meta={
                "source": f"{ep.env_id}:seed={ep.seed}",
                "env_id": ep.env_id,
                "seed": ep.seed,
                "mission": ep.mission,
                "return": ep.total_return,
                "steps": len(ep),
                "space": ep.space.to_dict() if ep.space else None,
                **ep.meta,
            },
        )
        for ep in episodes
    ]
    pack_shards(samples, out_dir, shard_size=shard_size, progress=False)
    return Path(out_dir)


def episode_from_sample(sample: Sample) -> Episode:
    meta = dict(sample.meta)
    if "episode" not in sample.inputs or "env_id" not in meta:
        raise DataError(f"{sample.source}: not an episode (write it with `omnifuse data episodes`)")
    space = TaskSpace.from_dict(meta["space"]) if meta.get("space") else None
    extra = {k: v for k, v in meta.items() if k not in ("env_id", "seed", "mission", "space")}
    ep = Episode.from_bytes(
        sample.inputs["episode"], meta["env_id"], int(meta["seed"]), meta.get("mission", ""), extra, space
    )
    if space is not None:
        ep.check(space, sample.source)
    return ep


def read_episodes(directory: str | os.PathLike) -> list[Episode]:
    """Every episode of a shard directory (checksums verified), in the order written."""
    from omnifuse.data.shards import read_shards

    episodes = [episode_from_sample(s) for s in read_shards(directory, strict=True)]
    _check_consistent(episodes)
    return episodes
