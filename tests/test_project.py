"""The ini file pytest picks, found outside a run: pytest's own (private) search where it can be called,
and this package's copy of it where it cannot, which must give the same answer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_energy.commands.project import ProjectError, _own_search, _pytest_search, find_project

ROOT = Path(__file__).resolve().parent.parent

#: Folder layouts (file -> text) pytest reads, each with the file it must pick from the innermost folder.
LAYOUTS = {
    "pyproject ini_options": ({"pyproject.toml": "[tool.pytest.ini_options]\nenergy_rounds = 7\naddopts = ['-q']\n"},
                              "pyproject.toml"),
    "pyproject native": ({"pyproject.toml": "[tool.pytest]\nenergy_rounds = 7\n"}, "pyproject.toml"),
    "pyproject without pytest": ({"pyproject.toml": "[project]\nname = 'x'\n"}, "pyproject.toml"),
    "empty pytest.ini": ({"pytest.ini": "", "tox.ini": "[pytest]\nenergy_rounds = 3\n"}, "pytest.ini"),
    "pytest.ini first": ({"pytest.ini": "[pytest]\nenergy_rounds = 4\n",
                          "pyproject.toml": "[tool.pytest.ini_options]\nenergy_rounds = 5\n"}, "pytest.ini"),
    ".pytest.ini": ({".pytest.ini": "[pytest]\nenergy_rounds = 4\n"}, ".pytest.ini"),
    "tox.ini": ({"tox.ini": "[tox]\n[pytest]\nenergy_rounds = 6\n"}, "tox.ini"),
    "tox.ini without pytest": ({"tox.ini": "[tox]\nenvlist = py\n", "setup.cfg": "[tool:pytest]\nenergy_rounds = 2\n"},
                               "setup.cfg"),
    "setup.cfg": ({"setup.cfg": "[metadata]\nname = x\n[tool:pytest]\nenergy_rounds = 8\n"}, "setup.cfg"),
    "parent's file": ({"pytest.ini": "[pytest]\nenergy_rounds = 9\n", "inner/pyproject.toml": "[project]\n"},
                      "pytest.ini"),
    "inner file": ({"tox.ini": "[pytest]\nenergy_rounds = 1\n", "inner/setup.cfg": "[tool:pytest]\nenergy_rounds = 2\n"},
                   "inner/setup.cfg"),
}
if int(pytest.__version__.split(".")[0]) >= 9:  # pytest 9 reads pytest.toml first
    LAYOUTS["pytest.toml"] = ({"pytest.toml": "[pytest]\nenergy_rounds = 10\n", "pytest.ini": "[pytest]\n"},
                              "pytest.toml")


def _lay_out(folder: Path, files: dict[str, str]) -> Path:
    """Write the layout's files; the folder a command runs in (its innermost)."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    inner = folder / "inner"
    inner.mkdir(exist_ok=True)
    return inner


def _plain(found: tuple[Path | None, dict]) -> tuple[Path | None, dict]:
    inifile, values = found
    return inifile, {name: getattr(value, "value", value) for name, value in values.items()}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_fallback_finds_what_pytest_finds(tmp_path: Path, layout: str) -> None:
    files, expected = LAYOUTS[layout]
    start = _lay_out(tmp_path, files)
    theirs = _pytest_search(start)
    assert theirs is not None, "the installed pytest's search could not be called: only the fallback is left"
    assert _plain(theirs) == _own_search(start)
    assert _own_search(start)[0] == tmp_path / expected


@pytest.mark.parametrize("start", [ROOT, ROOT / "tests", ROOT / "suites", ROOT / "pytest_energy" / "store"])
def test_the_fallback_finds_what_pytest_finds_in_this_repository(start: Path) -> None:
    inifile, values = _own_search(start)
    assert _plain(_pytest_search(start)) == (inifile, values)
    assert inifile == ROOT / "pyproject.toml" and values["energy_json"] == "reports/energy.json"


def test_without_pytests_search_the_project_is_found_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = _lay_out(tmp_path, {"tox.ini": "[pytest]\nenergy_rounds = 6\n"})
    found = find_project(start)
    assert (found.inifile, found.ini("energy_rounds")) == (tmp_path / "tox.ini", "6")
    monkeypatch.setitem(sys.modules, "_pytest.config.findpaths", None)  # an import of it now fails
    assert _pytest_search(start) is None
    assert find_project(start) == found


def test_a_search_of_another_signature_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import _pytest.config.findpaths as findpaths

    start = _lay_out(tmp_path, {"setup.cfg": "[tool:pytest]\nenergy_rounds = 8\n"})
    monkeypatch.setattr(findpaths, "locate_config", lambda a, b, c: None)
    assert _pytest_search(start) is None
    assert (find_project(start).inifile, find_project(start).ini("energy_rounds")) == (tmp_path / "setup.cfg", "8")


@pytest.mark.parametrize("files", [{"pyproject.toml": "[tool.pytest\n"}, {"tox.ini": "[pytest\n"},
                                   {"setup.cfg": "[pytest]\nenergy_rounds = 1\n"},
                                   {"pyproject.toml": "[tool.pytest]\na = 1\n[tool.pytest.ini_options]\nb = 2\n"}])
def test_a_malformed_file_is_one_line_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 files: dict[str, str]) -> None:
    start = _lay_out(tmp_path, files)
    with pytest.raises(ProjectError, match="^pytest-energy: pytest cannot read its configuration here: ") as pytests:
        find_project(start)
    monkeypatch.setitem(sys.modules, "_pytest.config.findpaths", None)
    with pytest.raises(ProjectError, match="^pytest-energy: pytest cannot read its configuration here: ") as ours:
        find_project(start)
    assert "\n" not in str(pytests.value) and "\n" not in str(ours.value)
