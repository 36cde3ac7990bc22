"""One recorded episode: per-step observation fields, actions, rewards and the text mission."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnifuse.data.episodes.spaces import TaskSpace
from omnifuse.data.sample import DataError


@dataclass
class Episode:
    """A demonstration: `observations[name]` is (T, *shape), `actions` (T, A), `rewards` (T,)."""

    env_id: str
    seed: int
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    mission: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    space: TaskSpace | None = None
    """The environment's observation and action spaces (kept with the episode in its shard)."""

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards))

    def observation(self, t: int) -> dict[str, np.ndarray]:
        return {name: value[t] for name, value in self.observations.items()}

    def check(self, space: TaskSpace, where: str = "") -> None:
        """Raise DataError naming the field when a step does not match `space`."""
        at = f"{where}: " if where else ""
        steps = len(self)
        for spec in space.observation:
            if spec.name not in self.observations:
                raise DataError(f"{at}episode lacks observation field '{spec.name}'")
            value = self.observations[spec.name]
            if value.shape[0] != steps:
                raise DataError(f"{at}'{spec.name}' has {value.shape[0]} steps, actions have {steps}")
            if list(value.shape[1:]) != spec.shape:
                raise DataError(
                    f"{at}observation '{spec.name}' has shape {list(value.shape[1:])} per step but the "
                    f"task space says {spec.shape}"
                )
        if self.rewards.shape != (steps,):
            raise DataError(f"{at}rewards have shape {self.rewards.shape}; expected ({steps},)")

    def to_bytes(self) -> bytes:
        """An `.npz` archive (no pickles) of the arrays."""
        buf = io.BytesIO()
        arrays = {f"obs.{k}": v for k, v in self.observations.items()}
        np.savez_compressed(buf, actions=self.actions, rewards=self.rewards, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(
        cls, data: bytes, env_id: str, seed: int, mission: str = "", meta=None, space: TaskSpace | None = None
    ) -> Episode:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                obs = {k[4:]: npz[k] for k in npz.files if k.startswith("obs.")}
                return cls(
                    env_id, seed, obs, npz["actions"], npz["rewards"], mission, dict(meta or {}), space
                )
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"episode {env_id} seed {seed}: unreadable arrays ({err})") from err
