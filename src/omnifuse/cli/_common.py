"""Small helpers shared by the verbs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_verb(sub, name: str, help: str, examples: str, func) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def write_json(path: str | Path, payload: Any) -> Path:
    """Write `payload` as JSON atomically (`omnifuse.utils.io.atomic_write`)."""
    from omnifuse.utils.io import atomic_write

    return atomic_write(Path(path), json.dumps(payload, indent=2))
