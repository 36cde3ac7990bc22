"""The artifact format: `config.json`, `processor.json` (+ tokenizer files), `model.safetensors`.

Nothing is ever unpickled. Loading checks that the directory is an omnifuse artifact and
that the weights match the architecture, naming the tensors that do not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.utils.io import atomic_dir, atomic_write, recover_dir

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """A directory is not a (valid) omnifuse artifact; the message says what is wrong."""


def resolve_artifact_dir(dir_or_hub_name: str | os.PathLike) -> Path:
    """A local directory as is (put back first if a crash left it aside mid-replace, see
    `omnifuse.utils.io.recover_dir`); otherwise a hub repo id, downloaded when online."""
    path = recover_dir(Path(dir_or_hub_name))
    if path.exists():
        if not path.is_dir():
            raise ArtifactError(f"{path} is a file; an omnifuse artifact is a directory")
        return path
    name = str(dir_or_hub_name)
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise ArtifactError(f"{path} does not exist (and is not a hub repo id 'owner/name')")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "tokenizer/*"]))
    except Exception as err:  # offline, unknown repo, ...
        raise ArtifactError(
            f"{name}: not a local directory and could not be fetched from the hub ({err})"
        ) from err


def read_config(directory: Path, expected_type: str | None = None) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.exists():
        raise ArtifactError(f"{directory} is not an omnifuse artifact: it has no {CONFIG_FILE}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path} is not valid JSON: {err}") from err
    model_type = config.get("model_type")
    if model_type is None:
        raise ArtifactError(f"{path} has no 'model_type'; it was not written by omnifuse")
    if expected_type is not None and model_type != expected_type:
        raise ArtifactError(f"{directory} holds a '{model_type}', not a '{expected_type}'")
    return config


def save_weights(module: nn.Module, path: Path) -> None:
    # Clone so that tensors sharing storage (tied weights) can be written by safetensors.
    state = {k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata={"format": "pt"}))


def write_config(config: dict[str, Any], path: Path) -> None:
    payload = {"format_version": FORMAT_VERSION, **config}
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=False))


def load_weights(module: nn.Module, directory: Path) -> None:
    """Load `model.safetensors` into `module`, refusing any missing, unexpected or mis-shaped tensor."""
    path = directory / WEIGHTS_FILE
    if not path.exists():
        raise ArtifactError(f"{directory} has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(path))
    except Exception as err:
        raise ArtifactError(f"{path} cannot be read as safetensors: {err}") from err
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            problems.append(f"{label}: {', '.join(names[:5])}{more}")
    if problems:
        raise ArtifactError(
            f"{path} does not match the architecture in {CONFIG_FILE}: " + "; ".join(problems)
        )
    with torch.no_grad():
        module.load_state_dict(state, strict=True)


class ArtifactMixin:
    """`save_pretrained` / `from_pretrained` for models with `to_config()` and `from_config()`."""

    model_type: str
    processor: Processor

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the artifact atomically (`omnifuse.utils.io.atomic_dir`): a reader finds the
        previous artifact or this one, complete. An existing directory is replaced only when it
        is empty or an artifact itself (so no unrelated file is ever deleted)."""

        def write(tmp: Path) -> None:
            write_config(self.to_config(), tmp / CONFIG_FILE)
            self.processor.save(tmp)
            save_weights(self, tmp / WEIGHTS_FILE)

        return atomic_dir(directory, write, marker=CONFIG_FILE)

    @classmethod
    def from_pretrained(cls, dir_or_hub_name: str | os.PathLike):
        directory = resolve_artifact_dir(dir_or_hub_name)
        config = read_config(directory, cls.model_type)
        model = cls.from_config(config, Processor.load(directory))
        load_weights(model, directory)
        return model.eval()
