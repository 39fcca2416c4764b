"""docs/ci/'s workflow files: valid YAML, and every pytest / pytest-energy command in them one that the
plugin's real option parser and the CLI's argparse parser accept, with values the settings accept."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from pytest_energy import cli
from pytest_energy import config as settings_module

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "docs" / "ci").glob("*.yml"))
#: What CI substitutes at run time, replaced by a value of the right shape: GitHub expressions and the
#: shell variables the recipes set.
PLACEHOLDERS = {
    r"\$\{\{\s*secrets\.ENERGY_HISTORY_URL\s*\}\}": "postgresql://energy@db.example:5432/energy",
    r"\$\{\{[^}]*\}\}": "x",
    r"\$\{?(ENERGY_HISTORY|ENERGY_HISTORY_URL)\}?": "postgresql://energy@db.example:5432/energy",
    r"\$\{?CI_[A-Z_]+\}?": "x",
}
#: Subcommands helper "store" adds (issue 15 items 2 and 4), not in this branch yet: their commands are
#: expected to parse once it is merged (strict xfail: the mark must go then).
PENDING = {("import",): "pytest-energy import (issue 15.2)",
           ("baselines", "update"): "pytest-energy baselines update --from-history (issue 15.4)"}


def _scripts(document: object) -> list[str]:
    """Every shell script of a workflow: GitHub steps' ``run`` and GitLab jobs' ``script`` lists."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "run" and isinstance(value, str):
                found.append(value)
            elif key in ("script", "before_script", "after_script") and isinstance(value, list):
                found += [line for line in value if isinstance(line, str)]
            else:
                found += _scripts(value)
    elif isinstance(document, list):
        for item in document:
            found += _scripts(item)
    return found


def _commands(script: str) -> list[list[str]]:
    """The pytest and pytest-energy commands of a script, as argument lists with CI values filled in."""
    for pattern, value in PLACEHOLDERS.items():
        script = re.sub(pattern, value, script)
    commands = []
    for part in re.split(r"&&|\|\||;|\n", script.replace("\\\n", " ")):
        words = shlex.split(part, comments=True)
        while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value before the command
            words = words[1:]
        if words[:3] in (["python", "-m", "pytest"], ["python3", "-m", "pytest"]):
            words = ["pytest", *words[3:]]
        if words and words[0] in ("pytest", "pytest-energy"):
            commands.append(words)
    return commands


def _all_commands() -> list[pytest.param]:
    params = []
    for path in RECIPES:
        for script in _scripts(yaml.safe_load(path.read_text(encoding="utf-8"))):
            for words in _commands(script):
                pending = next((why for words_start, why in PENDING.items()
                                if words[0] == "pytest-energy" and tuple(words[1:1 + len(words_start)]) == words_start),
                               None)
                marks = [pytest.mark.xfail(strict=True, reason=f"{pending} is not merged yet")] if pending else []
                params.append(pytest.param(words, id=f"{path.name}: {' '.join(words)[:70]}", marks=marks))
    return params


COMMANDS = _all_commands()


def test_the_recipes_exist_and_hold_the_three_jobs():
    names = {path.name for path in RECIPES}
    assert {"github-pr.yml", "github-nightly.yml", "github-baseline-refresh.yml", "gitlab-ci.yml"} <= names
    spoken = [" ".join(param.values[0]) for param in COMMANDS]
    assert any(c.startswith("pytest --energy") and "--energy-history postgresql://" in c for c in spoken)
    assert any(c.startswith("pytest-energy report") for c in spoken)
    assert any("--from-history" in c for c in spoken)
    assert len(COMMANDS) >= 12


def _check(words: list[str], pytester: pytest.Pytester) -> None:
    """Raises where the plugin or the CLI refuses the command (argparse's SystemExit, pytest's
    UsageError, or the settings' SettingError for a value)."""
    if words[0] == "pytest-energy":
        cli._parser().parse_args(words[1:])
        return
    # The real option parser, with every installed plugin (pytest-energy's own through its entry point).
    parsed = pytester.parseconfig(*words[1:])
    settings_module.resolve(settings_module.enabled(parsed.option.energy, False, {}), vars(parsed.option),
                            lambda name: settings_module.INI_UNSET, {})


@pytest.mark.parametrize("words", COMMANDS)
def test_every_command_is_one_the_plugin_or_the_cli_accepts(words, pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    try:
        _check(words, pytester)
    except SystemExit as error:
        pytest.fail(f"pytest-energy refuses {' '.join(words[1:])!r} (exit {error.code})")


@pytest.mark.parametrize("words", [
    ["pytest-energy", "report", "--histroy", "x"],
    ["pytest-energy", "reports"],
    ["pytest", "--energy", "--energy-min-efect", "0.1"],
    ["pytest", "--energy", "--energy-min-effect", "five"],
])
def test_a_wrong_command_is_caught(words, pytester):
    """The check above can fail: misspelt options, an unknown subcommand and a bad value are refused."""
    with pytest.raises((SystemExit, pytest.UsageError, settings_module.SettingError)):
        _check(words, pytester)
