"""The package's shape: no import cycles, the layers import downwards, modules stay small.

Imports are read with ``ast`` from every module under ``sparkdl/``: module-level and inside
functions, absolute and relative; ``from pkg import name`` is an import of ``pkg.name`` when
that is a module, else of ``pkg``. An import names its module only, not the packages above it
(every ``sparkdl.*`` import runs ``sparkdl/__init__.py``, which loads its names lazily).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from functools import cache

from tests.helpers import ROOT

PACKAGE = ROOT / "sparkdl"

#: Modules and packages below the jobs: they never import a job, the CLI or the inspection.
LEAVES = (
    "sparkdl._version",
    "sparkdl.errors",
    "sparkdl.config",
    "sparkdl.geometry",
    "sparkdl.deid",
    "sparkdl.lidc",
    "sparkdl.volume_files",
    "sparkdl.synth",
    "sparkdl.candidates",
    "sparkdl.assembly",
    "sparkdl.patches",
)
JOBS = ("sparkdl.ingestion", "sparkdl.training", "sparkdl.evaluation", "sparkdl.cli")

#: (importer, imported) pairs that break a layer rule today, each with why it is allowed for
#: now. Shrink this list; never grow it without saying so in review.
LAYER_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()

MAX_TOP_LEVEL_MODULES = 15
MAX_LINES = 400
#: Modules over MAX_LINES today, to be split; shrink this list as they are.
LONG_MODULES: set[str] = set()


@cache
def modules() -> dict[str, str]:
    """``module name → source path`` (relative to the repository) of every module in sparkdl/."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path.relative_to(ROOT).as_posix()
    return found


def _is_package(name: str) -> bool:
    return modules()[name].endswith("/__init__.py")


def _targets(name: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The sparkdl modules one import statement of module ``name`` imports."""
    known = modules()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
        return
    if node.level:
        package = name if _is_package(name) else name.rpartition(".")[0]
        parts = package.split(".")
        base = ".".join(
            parts[: len(parts) - node.level + 1] + ([node.module] if node.module else [])
        )
    else:
        base = node.module or ""
    for alias in node.names:
        if f"{base}.{alias.name}" in known:
            yield f"{base}.{alias.name}"
        elif base in known:
            yield base


@cache
def imports() -> dict[str, frozenset[str]]:
    """``module → the sparkdl modules it imports`` (anywhere in its source)."""
    graph = {}
    for name, path in modules().items():
        tree = ast.parse((ROOT / path).read_text(), path)
        graph[name] = frozenset(
            target
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for target in _targets(name, node)
            if target != name
        )
    return graph


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _violations(
    importers: Iterable[str], forbidden: Iterable[str], exempt: Iterable[str] = ()
) -> list[str]:
    """``importer imports target`` for every import from ``importers`` (packages or modules,
    minus ``exempt``) of a module in ``forbidden``, but for LAYER_EXCEPTIONS."""
    graph = imports()
    return [
        f"{module} imports {target}"
        for module in sorted(graph)
        if _within(module, importers) and not _within(module, exempt)
        for target in sorted(graph[module])
        if _within(target, forbidden) and (module, target) not in LAYER_EXCEPTIONS
    ]


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """One cycle (``a, b, ..., a``) through each strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_path_back(graph, group) for group in groups]


def _path_back(graph: dict[str, frozenset[str]], group: list[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group has one


def test_the_import_graph_sees_every_kind_of_import() -> None:
    graph = imports()
    assert "sparkdl.cli" in graph["sparkdl.__main__"]  # from x import name
    assert "sparkdl.cli.commands" in graph["sparkdl.cli.parser"]  # from pkg import submodule
    assert "sparkdl.geometry" in graph["sparkdl.patches.extract"]  # from sparkdl import module
    assert "sparkdl.progress" in graph["sparkdl.cli"]  # inside a function


def test_no_import_cycles() -> None:
    cycles = _cycles(dict(imports()))
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_leaves_import_no_job() -> None:
    found = _violations(LEAVES, (*JOBS, "sparkdl.inspection"))
    assert not found, "\n".join(found)


def test_store_imports_no_job() -> None:
    found = _violations(["sparkdl.store"], JOBS)
    assert not found, "\n".join(found)


def test_units_import_no_ingestion() -> None:
    found = _violations(["sparkdl.units"], ["sparkdl.ingestion"])
    assert not found, "\n".join(found)


def test_only_main_imports_the_cli() -> None:
    found = _violations(["sparkdl"], ["sparkdl.cli"], exempt=["sparkdl.cli", "sparkdl.__main__"])
    assert not found, "\n".join(found)


def test_few_modules_at_the_top() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_modules_stay_under_400_lines() -> None:
    lengths = {path: len((ROOT / path).read_text().splitlines()) for path in modules().values()}
    over = {path: n for path, n in sorted(lengths.items()) if n > MAX_LINES}
    print("over", MAX_LINES, "lines:", over)
    assert set(over) <= LONG_MODULES, f"split these (or list them in LONG_MODULES): {over}"
    fixed = sorted(LONG_MODULES - set(over))
    assert not fixed, f"now under {MAX_LINES} lines: take them off LONG_MODULES: {fixed}"
