"""Every field of every config dataclass documents what it holds (a docstring under the field,
litgpt's `args.py` style), so a recipe key is never a guess."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "omnifuse"
FILES = [
    *sorted((PACKAGE / "models").rglob("*.py")),
    PACKAGE / "train" / "config.py",
    *sorted((PACKAGE / "encoders").rglob("*.py")),
]


def is_config(node: ast.ClassDef) -> bool:
    decorated = any(
        (isinstance(d, ast.Name) and d.id == "dataclass")
        or (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "dataclass")
        for d in node.decorator_list
    )
    named = node.name.endswith(("Config", "Settings")) or node.name.startswith("Encoder")
    return decorated and named and node.name != "EncoderOutput"


def undocumented_fields() -> list[str]:
    missing = []
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ClassDef) and is_config(node)):
                continue
            for i, stmt in enumerate(node.body):
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    nxt = node.body[i + 1] if i + 1 < len(node.body) else None
                    documented = (
                        isinstance(nxt, ast.Expr)
                        and isinstance(nxt.value, ast.Constant)
                        and isinstance(nxt.value.value, str)
                    )
                    if not documented:
                        missing.append(
                            f"{path.relative_to(PACKAGE)}:{stmt.lineno} {node.name}.{stmt.target.id}"
                        )
    return missing


def test_every_config_field_has_a_docstring():
    assert not undocumented_fields(), "fields without a docstring:\n" + "\n".join(undocumented_fields())


def test_the_check_sees_configs():
    names = {
        node.name
        for path in FILES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and is_config(node)
    }
    assert {"DualEncoderConfig", "TrainConfig", "TowerConfig", "EncoderWeights", "LoraSettings"} <= names
