"""The import graph of the package: folders by job, each importing only the folders its ``__init__.py``
names on its "May import:" line, and no module importing one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_energy

PACKAGE = Path(pytest_energy.__file__).parent


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:``: annotations only, no dependency when the code runs."""
    return {id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for statement in node.body for inner in ast.walk(statement)}


def _graph(type_checking: bool = True) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (lazy imports included; those under ``if TYPE_CHECKING:``
    where ``type_checking``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("pytest_energy", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = set() if type_checking else _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
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
    assert "pytest_energy.report.ratings" in graph and "pytest_energy.cases.generation.runner" in graph
    circles = [(a, b) for a in sorted(graph) for b in sorted(graph[a]) if _reaches(graph, b, a)]
    assert circles == []


def _folder(module: str) -> str:
    """The job folder a module lies in, or "" for the pytest glue at the top of the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def _rules() -> dict[str, set[str]]:
    """Folder -> the folders its ``__init__.py`` says it may import (its docstring's "May import:" line)."""
    rules = {}
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        lines = [line for line in (ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or "").splitlines()
                 if line.startswith("May import:")]
        assert len(lines) == 1, f"{init.parent.name}/__init__.py states no one 'May import:' line"
        words = lines[0].removeprefix("May import:").split("(")[0].replace(".", "").split(",")
        rules[init.parent.name] = {word.strip() for word in words if word.strip() not in ("", "nothing of the package")}
    return rules


def test_each_folder_imports_only_what_its_rule_names():
    """The folders' rules: the glue at the top may import any folder; a folder never imports the glue, nor a
    folder its rule leaves out (lazy imports count; annotations under TYPE_CHECKING do not)."""
    rules = _rules()
    assert set(rules) == {"cases", "commands", "core", "judge", "measure", "report", "stats", "store", "testing"}
    broken = sorted(f"{module} -> {target}" for module, targets in _graph(type_checking=False).items()
                    for target in targets
                    if _folder(module) and _folder(target) != _folder(module)
                    and _folder(target) not in rules[_folder(module)])
    assert broken == []


def test_the_rules_form_layers():
    """No two folders may import each other, directly or through a third: the rules are layers."""
    rules = _rules()
    assert not [(a, b) for a in rules for b in rules[a] if _reaches(rules, b, a)]


def test_at_most_ten_modules_at_the_top():
    """The top of the package is the pytest glue alone; every other job lives in its folder."""
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


def test_types_sit_below_the_logic():
    graph = _graph()
    assert graph["pytest_energy.core.units"] == set()  # formats and constants import nothing of the package
    assert graph["pytest_energy.judge.verdict"] == {"pytest_energy.stats.ranks", "pytest_energy.stats.resampling", "pytest_energy.core.units"}
    assert graph["pytest_energy.stats.ranks"] == set()
    assert graph["pytest_energy.stats.resampling"] == set()  # statistics, as ranks: nothing of the package
    assert "pytest_energy.judge.gate" not in graph["pytest_energy.store.history"]
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


def test_bench_imports_nothing_from_tests():
    """bench/ measures the package with the helpers it shares with the tests (``pytest_energy.testing``),
    never with tests/ itself: the tests may import the bench they check, not the other way round."""
    tests = PACKAGE.parent / "tests"
    local = {"tests", *(path.stem for path in tests.glob("*.py"))}  # tests/ on sys.path makes its modules bare names
    found = []
    for path in sorted((PACKAGE.parent / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [f"{path.name}: {name}" for name in names if name.split(".")[0] in local]
    assert found == []
