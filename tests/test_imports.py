"""The import graph of the package: data types below the logic that uses them, so no module of the
verdict, gate, stores and reports layer imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_energy

PACKAGE = Path(pytest_energy.__file__).parent


def _graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (lazy and TYPE_CHECKING imports included)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("pytest_energy", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                for alias in node.names:
                    target = f"{module}.{alias.name}"
                    found.add(target if target in modules else module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo += graph.get(module, ())
    return False


def test_the_package_imports_no_circle():
    graph = _graph()
    assert "pytest_energy.report.ratings" in graph and "pytest_energy.cases.generation_runner" in graph
    circles = [(a, b) for a in sorted(graph) for b in sorted(graph[a]) if _reaches(graph, b, a)]
    assert circles == []


def test_types_sit_below_the_logic():
    graph = _graph()
    assert graph["pytest_energy.units"] == set()  # formats and constants import nothing of the package
    assert graph["pytest_energy.verdict"] == {"pytest_energy.ranks", "pytest_energy.resampling", "pytest_energy.units"}
    assert graph["pytest_energy.ranks"] == set()
    assert graph["pytest_energy.resampling"] == set()  # statistics, as ranks: nothing of the package
    assert "pytest_energy.gate" not in graph["pytest_energy.history"]
    assert "pytest_energy.report.exports" not in graph["pytest_energy.report.model"]


def test_architecture_lists_every_module():
    """docs/architecture.md has a row for every module: its own, or its folder's naming it (a folder's
    ``__init__.py`` by the folder's row)."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        own = any(row.startswith(f"| `{relative}`") for row in rows)
        folder = relative.rsplit("/", 1)[0] + "/" if "/" in relative else None
        in_folder = folder is not None and any(
            row.startswith(f"| `{folder}") and (path.name == "__init__.py" or f"`{path.name}`" in row
                                                 or path.name in row.split("|")[2]) for row in rows)
        if not (own or in_folder):
            missing.append(relative)
    assert missing == []
