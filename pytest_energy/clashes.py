"""A project's own `energy` marker or fixture: pytest-energy leaves the tests that use it alone.

pytest-energy owns the names `energy` (marker and fixture). A project that already has its own, such as
``markers = energy(level): ...`` or an `energy` fixture in its conftest, would otherwise have those tests
failed under ``--energy`` ("unknown keyword") or measured by accident. Once per session the collected
tests are surveyed: a test whose `energy` fixture is not pytest-energy's, or whose `energy` marker carries
what pytest-energy's marker does not take while the project registers an `energy` marker of its own, is
left alone (run as without ``--energy``), and one line per kind says which tests and how to rename.
Without a registration of its own, an unknown keyword stays a typo in pytest-energy's marker: that test
fails with one line. An override built on pytest-energy's fixture (``def energy(energy): ...``) is
pytest-energy's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

#: The module that defines pytest-energy's own `energy` fixture.
OWN_FIXTURE_MODULE = "pytest_energy.plugin"
#: Tests named in one line; the rest are counted.
NAMED = 3


def marker_name(line: str) -> str:
    """The marker a ``markers`` ini line registers: "energy(level): ..." -> "energy"."""
    return line.split(":", 1)[0].split("(", 1)[0].strip()


def registrations(marker_lines: Sequence[str], ours: str) -> list[str]:
    """The project's own registrations of an `energy` marker: its ``markers`` lines other than ours."""
    return [line for line in marker_lines if marker_name(line) == "energy" and line.strip() != ours.strip()]


def _foreign_marker(mark: pytest.Mark) -> bool:
    """A marker pytest-energy's does not read: positional arguments or a keyword it does not take."""
    from .context import MARKER_KEYS

    return bool(mark.args) or bool(set(mark.kwargs) - set(MARKER_KEYS))


def _foreign_fixture(item: pytest.Item, root: Path) -> str | None:
    """Where the project's own `energy` fixture used by this test is defined, or None where it is ours."""
    if "energy" not in getattr(item, "fixturenames", ()):
        return None
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get("energy") or ()
    if not definitions:
        return None
    # Closest last; an override that requests `energy` (``def energy(energy): ...``) builds on the one
    # before it, so the first definition that does not is what the test really gets.
    base = next((d for d in reversed(definitions) if "energy" not in d.argnames), definitions[0])
    function = base.func
    if getattr(function, "__module__", None) == OWN_FIXTURE_MODULE:
        return None
    code = getattr(function, "__code__", None)
    if code is None:
        return "a plugin"
    path = Path(code.co_filename)
    try:
        path = path.relative_to(root)
    except ValueError:
        pass
    return f"{path}:{code.co_firstlineno}"


def _names(nodeids: list[str]) -> str:
    more = len(nodeids) - NAMED
    return ", ".join(nodeids[:NAMED]) + (f" and {more} more" if more > 0 else "")


def survey(items: Sequence[pytest.Item], marker_lines: Sequence[str], ours: str, root: Path,
           left_alone: pytest.StashKey[bool]) -> list[str]:
    """Set ``left_alone`` in the stash of each test pytest-energy leaves alone; one line per kind saying so.

    ``ours`` is pytest-energy's own ``markers`` line; ``root`` the rootdir fixture locations are named from.
    """
    registered = registrations(marker_lines, ours)
    marked: list[str] = []
    fixtures: dict[str, list[str]] = {}
    for item in items:
        where = _foreign_fixture(item, root)
        if where is not None:
            fixtures.setdefault(where, []).append(item.nodeid)
        elif registered and any(_foreign_marker(m) for m in item.iter_markers("energy")):
            marked.append(item.nodeid)
        else:
            continue
        item.stash[left_alone] = True
    lines = [f"this project defines its own `energy` fixture ({where}): pytest-energy leaves alone the "
             f"{len(nodeids)} test(s) that use it ({_names(nodeids)}); rename yours to measure them with "
             "pytest-energy's `energy` fixture" for where, nodeids in fixtures.items()]
    if marked:
        lines.append(f"this project registers its own `energy` marker ({registered[0]!r}): pytest-energy leaves "
                     f"alone the {len(marked)} test(s) whose `energy` marker is not pytest-energy's "
                     f"({_names(marked)}); rename yours to measure them")
    return lines

