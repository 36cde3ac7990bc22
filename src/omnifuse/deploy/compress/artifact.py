"""Read the source artifact; write a compressed one (config.json + compression, processor, weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from omnifuse.models.artifact import CONFIG_FILE, WEIGHTS_FILE, read_config, save_weights, write_config
from omnifuse.models.factory import load_model
from omnifuse.models.registry import get_spec
from omnifuse.utils.io import atomic_dir, recover_dir


def load_source(directory: str | Path) -> tuple[nn.Module, dict[str, Any], Path]:
    """(model, config, directory) of an omnifuse artifact; a ValueError says why a directory is not one."""
    directory = recover_dir(Path(directory))
    if not directory.is_dir():
        raise ValueError(
            f"{directory} is not a directory; give an omnifuse artifact directory (e.g. runs/x/best)"
        )
    config = read_config(directory)  # ArtifactError (a ValueError) without config.json / model_type
    get_spec(config["model_type"])  # a ValueError naming the registered kinds for an unknown one
    if "compression" in config:
        raise ValueError(
            f"{directory} is already compressed ({config['compression'].get('method')}); "
            "compress the original artifact instead"
        )
    config.pop("format_version", None)
    return load_model(directory).eval(), config, directory


def save_compressed(
    model: nn.Module, config: dict[str, Any], out: str | Path, compression: dict[str, Any]
) -> Path:
    """Write `out/` as an artifact that `load_model` rebuilds through `config["compression"]`."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / CONFIG_FILE).exists():
        raise ValueError(f"{out} exists and is not an artifact directory; choose a new --out directory")

    def write(tmp: Path) -> None:
        write_config({**config, "compression": compression}, tmp / CONFIG_FILE)
        model.processor.save(tmp)
        save_weights(model, tmp / WEIGHTS_FILE)

    return atomic_dir(out, write, marker=CONFIG_FILE)  # the old artifact stays until the new one is in
