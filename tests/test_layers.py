"""The packages stack in layers, each importing only from layers below it (or its own):
gan_core, then the shared config and errors, the torch-only training core, then data,
tracking, evaluation, inference and the cluster helpers, then the drivers (train, tune),
then the CLI. Imports inside functions count too: the project defers heavy imports there.
Packages never import each other in a circle, within a layer either."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    ["gan_core"],
    ["pipelines.errors", "pipelines.config", "pipelines.configs"],
    ["pipelines.core"],
    ["pipelines.data", "pipelines.tracking", "pipelines.eval", "pipelines.inference", "cluster"],
    ["pipelines.train", "pipelines.tune"],
    ["pipelines.cli"],
]


def package_of(module: str) -> str | None:
    """The layered package a module belongs to (the longest one that prefixes it)."""
    found = [p for layer in LAYERS for p in layer if module == p or module.startswith(p + ".")]
    return max(found, key=len) if found else None


def level(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # from pkg import module
    return names


def edges() -> dict[str, set[str]]:
    """package -> the layered packages its modules import."""
    graph: dict[str, set[str]] = {}
    for top in ("gan_core", "pipelines", "cluster"):
        for path in (ROOT / top).rglob("*.py"):
            if module_name(path) == "pipelines":  # the namespace's own __init__: a docstring
                continue
            source = package_of(module_name(path))
            assert source is not None, f"{path} is in no layer: add its package to LAYERS"
            targets = {package_of(name) for name in imported(path)} - {None, source}
            graph.setdefault(source, set()).update(t for t in targets if t is not None)
    return graph


def test_every_package_imports_only_from_layers_below():
    upward = sorted(f"{src} -> {dst}" for src, dsts in edges().items() for dst in dsts if level(dst) > level(src))
    assert not upward


def test_no_import_cycles_between_packages():
    graph = edges()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = "done"
        return None

    cycles = [cycle for node in sorted(graph) if node not in state and (cycle := visit(node, []))]
    assert not cycles


def test_the_layer_check_sees_function_level_imports():
    tree = imported(ROOT / "pipelines" / "cli" / "train_cmd.py")
    assert "pipelines.train.launch" in tree  # imported inside run(), where the CLI defers it
