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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    return path
