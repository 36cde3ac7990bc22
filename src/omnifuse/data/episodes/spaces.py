"""What an environment's observations and actions look like, in the terms the tokenizer knows.

A :class:`TaskSpace` lists observation fields and the action, each a :class:`FieldSpec` of
one kind:

- `continuous`: a float vector, mu-law companded and binned (one token per value);
- `discrete`: a vector of small integers (one token per value, ids below `n`);
- `grid`: a symbolic grid (H, W, C) of small integers per channel (minigrid's partial view),
  embedded inside the model as one-hot patches;
- `image`: an RGB image (H, W, 3), embedded inside the model as pixel patches.

Actions are `discrete` (one integer) or `continuous` (a vector with bounds). Anything else is
refused with :class:`UnsupportedSpaceError`, which names the space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from omnifuse.data.sample import DataError

FIELD_KINDS = ("continuous", "discrete", "grid", "image")
ACTION_KINDS = ("continuous", "discrete")


class UnsupportedSpaceError(DataError):
    """An observation or action space the Gato tokenizer cannot represent (the message says which)."""


@dataclass
class FieldSpec:
    """One observation field or the action."""

    name: str
    """Field name (`state`, `grid`, `direction`, `action`)."""
    kind: str
    """One of `continuous`, `discrete`, `grid`, `image`."""
    shape: list[int]
    """Shape of one step's value: `[d]` for vectors, `[H, W, C]` for grids and images."""
    n: list[int] = field(default_factory=list)
    """`discrete`: `[number of values]`; `grid`: values per channel; empty otherwise."""
    low: list[float] = field(default_factory=list)
    """`continuous` actions: lower bound per dimension (actions are clipped to it)."""
    high: list[float] = field(default_factory=list)
    """`continuous` actions: upper bound per dimension."""

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise UnsupportedSpaceError(
                f"field '{self.name}': kind must be one of {', '.join(FIELD_KINDS)}; got '{self.kind}'"
            )
        self.shape = [int(s) for s in self.shape]
        self.n = [int(v) for v in self.n]
        if self.kind in ("discrete", "grid") and not self.n:
            raise UnsupportedSpaceError(
                f"field '{self.name}': a {self.kind} field needs `n` (values per entry)"
            )
        if self.kind in ("grid", "image") and len(self.shape) != 3:
            raise UnsupportedSpaceError(
                f"field '{self.name}': a {self.kind} is (H, W, C); got shape {self.shape}"
            )

    @property
    def size(self) -> int:
        """Values per step for vector fields."""
        out = 1
        for s in self.shape:
            out *= s
        return out


@dataclass
class TaskSpace:
    """Observation fields (in token order), the action, and whether a text mission comes along."""

    observation: list[FieldSpec]
    action: FieldSpec
    mission: bool = False
    """The environment gives a text mission (BabyAI); it is tokenised as text at the window start."""

    def __post_init__(self) -> None:
        self.observation = [f if isinstance(f, FieldSpec) else FieldSpec(**f) for f in self.observation]
        if not isinstance(self.action, FieldSpec):
            self.action = FieldSpec(**self.action)
        if self.action.kind not in ACTION_KINDS:
            raise UnsupportedSpaceError(
                f"action kind '{self.action.kind}' cannot be tokenised; supported: {', '.join(ACTION_KINDS)}"
            )
        if self.action.kind == "discrete" and len(self.action.shape) != 1:
            raise UnsupportedSpaceError(f"discrete actions are vectors; got shape {self.action.shape}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "observation": [asdict(f) for f in self.observation],
            "action": asdict(self.action),
            "mission": self.mission,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TaskSpace:
        try:
            return cls(
                observation=[FieldSpec(**f) for f in raw["observation"]],
                action=FieldSpec(**raw["action"]),
                mission=bool(raw.get("mission", False)),
            )
        except (KeyError, TypeError) as err:
            raise DataError(f"malformed task space ({type(err).__name__}: {err})") from err


def _describe(space: Any) -> str:
    return f"{type(space).__name__} {space}"


def space_from_gym(observation_space: Any, action_space: Any) -> TaskSpace:
    """The :class:`TaskSpace` of a Gymnasium environment; refuses spaces it cannot tokenise.

    Supported: `Box` observations (1-D: continuous; (H, W, 3) uint8: image), minigrid's
    `Dict(image, direction, mission)`, `Discrete` actions and 1-D `Box` actions.
    """
    import numpy as np

    from omnifuse._optional import require

    spaces = require("gymnasium.spaces", "envs", "environment spaces")
    obs_fields: list[FieldSpec] = []
    mission = False
    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1:
        obs_fields.append(FieldSpec("state", "continuous", list(observation_space.shape)))
    elif (
        isinstance(observation_space, spaces.Box)
        and len(observation_space.shape) == 3
        and observation_space.shape[2] == 3
        and observation_space.dtype == np.uint8
    ):
        obs_fields.append(FieldSpec("image", "image", list(observation_space.shape)))
    elif isinstance(observation_space, spaces.Dict) and "image" in observation_space.spaces:
        grid = observation_space.spaces["image"]
        if len(grid.shape) != 3:
            raise UnsupportedSpaceError(f"observation 'image' {_describe(grid)}: expected an (H, W, C) grid")
        # minigrid's symbolic view: object, colour and state indices per cell.
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

        channels = [len(OBJECT_TO_IDX), len(COLOR_TO_IDX), len(STATE_TO_IDX)][: grid.shape[2]]
        obs_fields.append(FieldSpec("grid", "grid", list(grid.shape), n=channels))
        for key, sub in sorted(observation_space.spaces.items()):
            if key == "image":
                continue
            if key == "mission":
                mission = True
            elif isinstance(sub, spaces.Discrete):
                obs_fields.append(FieldSpec(key, "discrete", [1], n=[int(sub.n)]))
            else:
                raise UnsupportedSpaceError(
                    f"observation field '{key}': {_describe(sub)} cannot be tokenised"
                )
    else:
        raise UnsupportedSpaceError(
            f"observation space {_describe(observation_space)} cannot be tokenised; supported: a 1-D Box "
            "(continuous values), an (H, W, 3) uint8 Box (image), or minigrid's Dict(image, direction, mission)"
        )
    if isinstance(action_space, spaces.Discrete):
        action = FieldSpec("action", "discrete", [1], n=[int(action_space.n)])
    elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        action = FieldSpec(
            "action",
            "continuous",
            list(action_space.shape),
            low=[float(v) for v in action_space.low],
            high=[float(v) for v in action_space.high],
        )
    else:
        raise UnsupportedSpaceError(
            f"action space {_describe(action_space)} cannot be tokenised; supported: Discrete and a 1-D Box"
        )
    return TaskSpace(observation=obs_fields, action=action, mission=mission)
