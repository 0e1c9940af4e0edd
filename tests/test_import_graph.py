"""The import graph of the project's packages, read with ``ast`` from the source.

Every ``import`` counts, those inside functions included: a cycle hidden in a function is
still a cycle.  The layers, innermost first:

- ``ensemble_bt`` (errors, strict JSON, the YAML reader): imports no other package;
- ``models`` and ``sizing``: pure; never backtrader, ``live`` or ``backtests``;
- ``strategies``: the backtrader glue;
- ``backtests``;
- ``live`` (``live/sim`` never imports ``live/session``; ``live/alpaca`` neither);
- ``ensemble_bt.cli``: the outermost layer, which nothing imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ensemble_bt", "models", "sizing", "strategies", "backtests", "live")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _imported(node: ast.AST, name: str, path: Path) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against this module's package
            package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = ".".join(package[:len(package) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        yield module
        yield from (f"{module}.{alias.name}" for alias in node.names)


@cache
def imports() -> dict[str, frozenset[str]]:
    """Module -> the project modules it imports, anywhere in its body."""
    known = modules()
    graph = {}
    for name, path in known.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported(node, name, path):
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = frozenset(found)
    return graph


def external_imports(name: str) -> set[str]:
    """Top-level packages outside the project that ``name`` imports, anywhere."""
    path = modules()[name]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        for target in _imported(node, name, path):
            found.add(target.split(".")[0])
    return found - set(PACKAGES)


def _reachable(graph: dict[str, frozenset[str]], start: str) -> set[str]:
    seen, todo = set(), list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others."""
    reach = {name: _reachable(graph, name) for name in graph}
    groups = {frozenset({name, *(o for o in reach[name] if name in reach[o])})
              for name in graph if name in reach[name]}
    return sorted(sorted(group) for group in groups)


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(source: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{name} imports {target}" for name, targets in sorted(imports().items())
            if _in(name, source) for target in sorted(targets)
            if any(_in(target, f) for f in forbidden)]


def test_the_graph_sees_every_package_and_function_level_imports():
    graph = imports()
    assert {name.split(".")[0] for name in graph} == set(PACKAGES)
    # the CLI imports its command modules' dependencies inside functions only
    assert "backtests.runner" in graph["ensemble_bt.cli.backtest"]


def test_there_is_no_import_cycle_not_even_through_imports_inside_functions():
    assert _cycles(dict(imports())) == []


@pytest.mark.parametrize(("source", "forbidden"), [
    ("ensemble_bt", ("models", "sizing", "strategies", "backtests", "live")),
    ("models", ("strategies", "backtests", "live", "ensemble_bt.cli")),
    ("sizing", ("strategies", "backtests", "live", "ensemble_bt.cli")),
    ("strategies", ("backtests", "live", "ensemble_bt.cli")),
    ("backtests", ("live", "ensemble_bt.cli")),
    ("live.sim", ("live.session",)),
    ("live.alpaca", ("live.session", "live.monitor", "live.sim")),
    ("live", ("ensemble_bt.cli",)),
])
def test_a_layer_never_imports_an_outer_one(source, forbidden):
    if source == "ensemble_bt":  # the CLI is the outermost layer, inside this package
        found = [v for v in _violations(source, forbidden) if not v.startswith("ensemble_bt.cli")]
    else:
        found = _violations(source, forbidden)
    assert found == []


@pytest.mark.parametrize("package", ["models", "sizing"])
def test_models_and_sizing_never_import_backtrader(package):
    users = [name for name in modules() if _in(name, package)
             if "backtrader" in external_imports(name)]
    assert users == []


def test_nothing_imports_the_cli():
    users = [name for name, targets in imports().items() if not _in(name, "ensemble_bt.cli")
             for target in targets if _in(target, "ensemble_bt.cli")]
    assert users == []


def test_the_cycle_finder_sees_a_cycle_through_three_modules():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}),
             "d": frozenset({"a"}), "e": frozenset()}
    assert _cycles(graph) == [["a", "b", "c"]]
