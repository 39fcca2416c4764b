"""The project's pytest-energy settings outside a pytest run, for ``pytest-energy doctor`` and
``calibrate``: the ini file pytest would use, the settings resolved from it as the plugin resolves
them, and the calibrated keys written into ``pyproject.toml``.

Unlike the other modules besides the plugin, this one calls into pytest: the file pytest picks
(pytest.toml, pytest.ini, pyproject.toml, tox.ini, setup.cfg, in an order that changes between
versions) is found by pytest's own search where it can be called. That search is private
(``_pytest.config.findpaths.locate_config``), so one function alone touches it
(:func:`_pytest_search`), and where it is gone or answers in another shape this module's copy of
pytest 9's search (:func:`_own_search`) takes its place.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.config import BY_NAME, Settings, resolve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib


class ProjectError(ValueError):
    """The project's configuration cannot be read or written; the message is one line saying why."""


@dataclass
class Project:
    """The configuration file pytest would read from ``start`` (None: none found) and its values."""

    start: Path
    inifile: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def ini(self, name: str) -> Any:
        """An ini value as ``config.getini`` gives it to the plugin (None where unset)."""
        return self.values.get(name)


def find_project(start: Path | None = None) -> Project:
    """The ini file pytest itself would pick when run in ``start`` (default: the current folder),
    found with pytest's own search, so the settings shown are the ones the plugin gets."""
    import pytest

    start = (start or Path.cwd()).resolve()
    try:
        found = _pytest_search(start)
        inifile, values = found if found is not None else _own_search(start)
    except (pytest.UsageError, pytest.fail.Exception, OSError, ValueError) as error:  # a malformed or unreadable file
        raise ProjectError(f"pytest-energy: pytest cannot read its configuration here: {error}") from None
    # pytest 9 wraps each value in a ConfigValue; older pytest gives the string or list itself.
    return Project(start, inifile, {name: getattr(value, "value", value) for name, value in values.items()})


#: The files pytest reads its configuration from, in the order pytest 9 tries them in each folder.
CONFIG_NAMES = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def _pytest_search(start: Path) -> tuple[Path | None, dict[str, Any]] | None:
    """The ini file and values pytest's own search finds from ``start``; None where that search (a
    private function of pytest, ``_pytest.config.findpaths.locate_config``) is gone, takes other
    arguments or answers in another shape. The one place this package reaches into pytest's privates."""
    try:
        from _pytest.config.findpaths import locate_config
    except ImportError:
        return None
    try:
        parameters = len(inspect.signature(locate_config).parameters)
    except (TypeError, ValueError):
        return None
    if parameters not in (1, 2):
        return None
    found = locate_config(start, [start]) if parameters == 2 else locate_config([start])  # type: ignore[call-arg]
    if not (isinstance(found, tuple) and len(found) >= 3 and isinstance(found[2], dict)
            and (found[1] is None or isinstance(found[1], Path))):
        return None
    return found[1], found[2]


def _own_search(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """pytest 9's search, for a pytest whose own cannot be called: from ``start`` up, the first folder
    holding one of :data:`CONFIG_NAMES` that configures pytest (a ``pytest.ini``, ``.pytest.ini``,
    ``pytest.toml`` or ``.pytest.toml`` always does, even empty), the first in that order; else the
    nearest ``pyproject.toml``, with no values. Raises ValueError for a file that cannot be parsed."""
    nearest_pyproject: Path | None = None
    for folder in (start, *start.parents):
        for name in CONFIG_NAMES:
            path = folder / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and nearest_pyproject is None:
                nearest_pyproject = path
            values = _config_values(path)
            if values is not None:
                return path, values
    return nearest_pyproject, {}


def _config_values(path: Path) -> dict[str, Any] | None:
    """The pytest settings of one configuration file as pytest 9 reads them (None: it configures no
    pytest): an ini file's ``[pytest]`` section, setup.cfg's ``[tool:pytest]``, pytest.toml's
    ``[pytest]`` table, pyproject.toml's ``[tool.pytest]`` (native types) or ``[tool.pytest.ini_options]``
    (scalars as text)."""
    if path.suffix in (".ini", ".cfg"):
        import iniconfig  # pytest's own dependency

        try:
            parsed = iniconfig.IniConfig(str(path))
        except iniconfig.ParseError as error:
            raise ValueError(str(error)) from None
        section = "pytest" if path.suffix == ".ini" else "tool:pytest"
        if section in parsed:
            return dict(parsed[section].items())
        if path.suffix == ".cfg" and "pytest" in parsed:
            raise ValueError(f"{path}: [pytest] in setup.cfg files is no longer supported, use [tool:pytest] instead")
        return {} if path.name in ("pytest.ini", ".pytest.ini") else None
    if path.suffix != ".toml":
        return None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from None
    if path.name in ("pytest.toml", ".pytest.toml"):
        return dict(config.get("pytest", {}))
    tool_pytest = config.get("tool", {}).get("pytest", {})
    native = {key: value for key, value in tool_pytest.items() if key != "ini_options"}
    ini_options = tool_pytest.get("ini_options")
    if native and ini_options:
        raise ValueError(f"{path}: Cannot use both [tool.pytest] (native TOML types) and [tool.pytest.ini_options]")
    if native:
        return native
    if ini_options is None:
        return None
    return {key: value if isinstance(value, list) else str(value) for key, value in ini_options.items()}


def settings_for(project: Project, overrides: dict[str, Any], command: str,
                 environ: dict[str, str] | None = None) -> Settings:
    """The settings the plugin would use in ``project`` with ``--energy``, the command's own options
    (``overrides``: setting name -> value, None where not given) taking the place of the command line.

    Raises :class:`~pytest_energy.core.config.SettingError` (one line naming the source) for a bad value.
    """
    cli = {BY_NAME[name].dest: value for name, value in overrides.items()}
    settings = resolve(True, cli, project.ini, os.environ if environ is None else environ)
    for name, value in overrides.items():
        if value is not None:
            settings.sources[name] = f"{command} --{name.replace('_', '-')}"
    return settings


# -- writing calibrated settings -----------------------------------------------------------------------
_HEADER = re.compile(r"^\s*\[\s*tool\s*\.\s*pytest\s*\.\s*ini_options\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 0.5, 2.0: the shortest text that reads back as the same float
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _refuse_read_only(path: Path) -> None:
    """Raise :class:`ProjectError` where ``path`` (through a link: its target) is a file without write
    permission: its mode says so even to root, who could replace it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ProjectError(f"pytest-energy: cannot read {path}: {error}") from None
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise ProjectError(f"pytest-energy: {path} is read-only; nothing written: make it writable "
                           f"(chmod u+w {path}) or add the energy_* settings to [tool.pytest.ini_options] by hand")


def pyproject_target(project: Project) -> Path:
    """The pyproject.toml that ``calibrate --write`` changes: the one pytest reads, else a new one in
    the starting folder. Raises :class:`ProjectError` where pytest would not read what is written there,
    or where the file is read-only."""
    if project.inifile is None:
        return project.start / "pyproject.toml"
    if project.inifile.name != "pyproject.toml":
        raise ProjectError(
            f"pytest-energy: pytest reads this project's settings from {project.inifile}, not pyproject.toml: "
            "add the energy_* settings to its pytest section")
    try:
        tool_pytest = tomllib.loads(project.inifile.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ProjectError(f"pytest-energy: cannot read {project.inifile}: {error}") from None
    if any(key != "ini_options" for key in tool_pytest):
        raise ProjectError(
            f"pytest-energy: {project.inifile} configures pytest in [tool.pytest] (native TOML), which pytest "
            "does not allow beside [tool.pytest.ini_options]: add the energy_* settings to [tool.pytest]")
    _refuse_read_only(project.inifile)
    return project.inifile


def _trailing_comment(value_text: str) -> str:
    """The comment after a one-line TOML value, with the spaces before it ("" where there is none):
    ``value_text`` is what follows the ``=`` of a key's line. A ``#`` inside a string is not one: the
    comment starts at the first ``#`` before which the text parses as a value."""
    for index, char in enumerate(value_text):
        if char != "#":
            continue
        try:
            tomllib.loads("value =" + value_text[:index])
        except tomllib.TOMLDecodeError:
            continue
        return value_text[len(value_text[:index].rstrip()):]
    return ""


def write_ini_options(path: Path, values: dict[str, Any]) -> str:
    """Set ``values`` (ini name -> value) in ``path``'s ``[tool.pytest.ini_options]`` table: each key's
    line replaced where it exists, added at the end of the table otherwise, the table added at the
    end of the file where there is none; every other byte of the file stays as it was.

    A replaced line keeps its trailing comment; a symlinked file is written through the link (its
    target changes, the link stays); a read-only file is refused. The result is parsed back before it
    is written: where the other settings would not read exactly as before (a layout this line editor
    does not handle), nothing is written and :class:`ProjectError` says so. Returns what was done, in
    one line.
    """
    _refuse_read_only(path)
    try:
        original = path.read_bytes().decode("utf-8") if path.exists() else ""  # \r\n kept as it is
        before = tomllib.loads(original)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ProjectError(f"pytest-energy: cannot read {path}: {error}") from None
    lines = [line + "\n" for line in original.split("\n")]  # str.splitlines also splits at \x0c, \x1c...
    lines[-1] = lines[-1][:-1]
    newline = "\r\n" if original.count("\r\n") > original.count("\n") / 2 else "\n"
    header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if header is None:
        if "ini_options" in before.get("tool", {}).get("pytest", {}):
            raise ProjectError(f"pytest-energy: {path} defines tool.pytest.ini_options other than as a "
                               "[tool.pytest.ini_options] table: add the energy_* settings to it by hand")
        block = [f"[tool.pytest.ini_options]{newline}"]
        block += [f"{name} = {_toml_value(value)}{newline}" for name, value in values.items()]
        # One blank line between the file's last line and the new table.
        separator = "" if not original.strip() else newline if original.endswith("\n") else newline * 2
        updated = original + separator + "".join(block)
        action = f"added a [tool.pytest.ini_options] table with {', '.join(values)} to {path}"
    else:
        end = next((i for i in range(header + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines))
        pending = dict(values)
        replaced: list[str] = []
        for index in range(header + 1, end):
            match = re.match(r"^(\s*)([A-Za-z0-9_]+)\s*=", lines[index])
            if match and match.group(2) in pending:
                name = match.group(2)
                text = lines[index].rstrip("\r\n")
                ending, comment = lines[index][len(text):], _trailing_comment(text[match.end():])
                lines[index] = f"{match.group(1)}{name} = {_toml_value(pending.pop(name))}{comment}{ending}"
                replaced.append(name)
        last = max((i for i in range(header, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")),
                   default=header)
        if pending:
            if not lines[last].endswith("\n"):
                lines[last] += newline
            lines[last + 1:last + 1] = [f"{name} = {_toml_value(value)}{newline}" for name, value in pending.items()]
        updated = "".join(lines)
        parts = ([f"updated {', '.join(replaced)}"] if replaced else []) + (
            [f"added {', '.join(pending)}"] if pending else [])
        action = f"{' and '.join(parts)} in [tool.pytest.ini_options] of {path}"
    _check(path, before, updated, values)
    from ..store.locking import atomic_write_text

    try:  # through a symlink: replacing the link itself would leave its target with the old values
        atomic_write_text(path.resolve() if path.is_symlink() else path, updated)
    except OSError as error:
        raise ProjectError(f"pytest-energy: cannot write {path}: {error}; nothing written") from None
    return action


def _given(arguments: list[str], option: str) -> str:
    """``option`` as the last of ``arguments`` that gives it ("--energy-rounds=3" or "--energy-rounds 3");
    "" where none does."""
    given = ""
    for argument, following in zip(arguments, [*arguments[1:], ""]):
        if argument == option:
            given = f"{argument} {following}".strip()
        elif argument.startswith(option + "="):
            given = argument
    return given


def overriding(project: Project, names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Where a pytest run in ``project`` would not use the ini values of ``names`` (``energy_rounds``...):
    the option given in the ini file's ``addopts`` or in ``PYTEST_ADDOPTS`` (the command line comes
    before the ini file), or its ``PYTEST_ENERGY_*`` variable set. One warning line each."""
    environ = os.environ if environ is None else environ
    addopts = project.ini("addopts") or ""
    sources = [(f"addopts in {project.inifile}", shlex.split(addopts) if isinstance(addopts, str) else list(addopts)),
               ("PYTEST_ADDOPTS", shlex.split(environ.get("PYTEST_ADDOPTS", "")))]
    lines = []
    for name in names:
        option = BY_NAME[name.removeprefix("energy_")]
        for where, arguments in sources:
            given = _given(arguments, option.cli)
            if given:
                lines.append(f"pytest-energy: warning: {where} has {given}, which overrides the {name} just written: "
                             "remove it there")
        if environ.get(option.env):
            lines.append(f"pytest-energy: warning: {option.env}={environ[option.env]} in the environment overrides "
                         f"the {name} just written: unset it")
    return lines


def _check(path: Path, before: dict[str, Any], updated: str, values: dict[str, Any]) -> None:
    """The edited text must hold ``values`` and, apart from them, parse exactly as ``before``."""
    try:
        after = tomllib.loads(updated)
    except tomllib.TOMLDecodeError as error:
        raise ProjectError(f"pytest-energy: editing {path} would break it ({error}); nothing written: "
                           "add the energy_* settings to [tool.pytest.ini_options] by hand") from None
    options = after.get("tool", {}).get("pytest", {}).get("ini_options", {})
    kept_after = {k: v for k, v in options.items() if k not in values}
    kept_before = {k: v for k, v in before.get("tool", {}).get("pytest", {}).get("ini_options", {}).items()
                   if k not in values}

    def without_options(document: dict[str, Any]) -> dict[str, Any]:
        tool = dict(document.get("tool", {}))
        pytest_table = {k: v for k, v in tool.get("pytest", {}).items() if k != "ini_options"}
        tool["pytest"] = pytest_table
        return {**document, "tool": tool}

    if ({k: options.get(k) for k in values} != values or kept_after != kept_before
            or without_options(after) != without_options(before)):
        raise ProjectError(f"pytest-energy: {path} has a layout this command cannot edit safely; nothing "
                           "written: add the energy_* settings to [tool.pytest.ini_options] by hand")
