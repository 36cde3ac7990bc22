"""The package's import graph: no cycles, and imports go down the layers of DESIGN.md only.

Every module under src/omnifuse is parsed with `ast`; imports at module level AND inside
functions count (a function-level import is a dependency that is merely hidden). An import of
a module also imports the packages above it (`omnifuse.a.b` runs `omnifuse/a/__init__.py`),
but a package's `__init__` importing its own submodules is how packages are built, so edges
are drawn to the imported module only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "omnifuse"

# Top to bottom; a module may import from its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"cli"},
    {"bench", "demos"},
    {"serve", "deploy"},
    {"runtime"},
    {"train", "eval"},
    {"models"},
    {"generation"},
    {"encoders", "fusion", "losses", "layers"},
    {"data"},
    {"utils", "_optional"},
]

# Imports that break the layer order today in code that other work is moving; each names why.
# Remove an entry as soon as its import is gone (the test fails on entries that no longer occur).
# Each entry is (importer, imported) with a comment naming why; none are left today.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The omnifuse modules `name` imports, anywhere in the file."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(name, path.name == "__init__.py", node)
            # `from pkg import sub` depends on the submodule; `from pkg import name` on pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            if not t.startswith(PACKAGE):
                continue
            # `from omnifuse.x import y`: y is a submodule or a name in omnifuse.x
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges = {m: imports_of(m, p, known) for m, p in mods.items()}
    # `import omnifuse.a.b` runs omnifuse/a/__init__.py, but an edge to a package's __init__
    # from its own submodule is the package importing itself: drop those (not a real cycle).
    for m, targets in edges.items():
        edges[m] = {t for t in targets if not m.startswith(t + ".")}
    return edges


def level(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # omnifuse/__init__.py: the package's front door
    top = parts[1]
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} is in no layer of DESIGN.md; add its package to LAYERS")


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_go_down_the_layers():
    upward, seen_known = [], set()
    for m, targets in graph().items():
        lm = level(m)
        if lm is None:
            continue
        for t in targets:
            lt = level(t)
            if lt is not None and lt < lm:
                if (m, t) in KNOWN_UPWARD:
                    seen_known.add((m, t))
                else:
                    upward.append(f"{m} imports {t}")
    assert not upward, "imports that go up the layers:\n" + "\n".join(sorted(upward))
    stale = KNOWN_UPWARD - seen_known
    assert not stale, f"KNOWN_UPWARD entries that no longer occur (remove them): {sorted(stale)}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import omnifuse.data.sample\n", {"omnifuse.data.sample"}),
        ("def f():\n    from omnifuse.models import registry\n", {"omnifuse.models.registry"}),
        ("from omnifuse.data.sample import Sample\n", {"omnifuse.data.sample"}),
    ],
)
def test_function_level_and_from_imports_are_seen(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    known = {"omnifuse.data.sample", "omnifuse.models", "omnifuse.models.registry", "omnifuse.data"}
    assert imports_of("omnifuse.x", path, known) == expected
