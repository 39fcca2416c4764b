"""docs/ci/'s workflow files: valid YAML, and every pytest / pytest-energy command in them one that the
plugin's real option parser and the CLI's argparse parser accept, with values the settings accept."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from pytest_energy.commands import cli
from pytest_energy.core import config as settings_module

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
                params.append(pytest.param(words, id=f"{path.name}: {' '.join(words)[:70]}"))
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


# -- the template for a user's project ------------------------------------------------------------
PROJECT_RECIPES = ("github-project-gate.yml", "github-project-baselines.yml")
#: Every option the plugin or the CLI has, as written on a command line.
KNOWN_OPTIONS = {"--energy", *(o.cli for o in settings_module.OPTIONS),
                 *(o.negative_cli for o in settings_module.OPTIONS if o.switch)}


def _recipe(name: str) -> dict:
    return yaml.safe_load((ROOT / "docs" / "ci" / name).read_text(encoding="utf-8"))


def _measuring_jobs(name: str) -> dict[str, tuple[str, dict]]:
    """The jobs of a project recipe that run ``pytest --energy``: name -> (runner kind, job), the kind
    "gpu" for a self-hosted runner, "cpu" for a hosted one."""
    jobs = {}
    for job_name, job in _recipe(name)["jobs"].items():
        if any(words[:2] == ["pytest", "--energy"] for script in _scripts(job) for words in _commands(script)):
            jobs[job_name] = ("gpu" if "self-hosted" in job["runs-on"] else "cpu", job)
    return jobs


def _step(job: dict, uses: str) -> dict:
    return next(step for step in job["steps"] if step.get("uses", "").startswith(uses))


@pytest.mark.parametrize("name", PROJECT_RECIPES)
def test_a_project_installs_pytest_energy_by_name_with_the_torch_its_runner_needs(name):
    jobs = _measuring_jobs(name)
    assert sorted(kind for kind, _ in jobs.values()) == ["cpu", "gpu"]
    for kind, job in jobs.values():
        installs = [line.strip() for script in _scripts(job) for line in script.splitlines()
                    if line.strip().startswith("pip install")]
        assert any(re.fullmatch(r'pip install "pytest-energy\[[a-z,]+\]".*', line) for line in installs), installs
        assert not any("-e \".[" in line or "-e '.[" in line for line in installs), installs  # not this repository
        index = "https://download.pytorch.org/whl/cu" if kind == "gpu" else "https://download.pytorch.org/whl/cpu"
        torch = [line for line in installs if line.startswith("pip install torch")]
        assert torch and all(f"--index-url {index}" in line for line in torch)
        # CUDA torch first: pytest-energy's torch requirement is then met, and pip keeps that build.
        assert installs.index(torch[0]) < next(i for i, line in enumerate(installs) if "pytest-energy[" in line)


@pytest.mark.parametrize("name", PROJECT_RECIPES)
def test_each_runner_kind_judges_and_records_its_own_baseline_set(name):
    for kind, job in _measuring_jobs(name).values():
        commands = [words for script in _scripts(job) for words in _commands(script)
                    if words[:2] == ["pytest", "--energy"]]
        assert commands and all(words[words.index("--energy-baseline-set") + 1] == kind for words in commands)
        if name == "github-project-baselines.yml":
            assert all("--energy-update-baselines" in words for words in commands)
            pull_request = _step(job, "peter-evans/create-pull-request")
            assert pull_request["with"]["add-paths"] == f"baselines/{kind}"


@pytest.mark.parametrize("name", PROJECT_RECIPES)
def test_the_gpu_runner_fills_a_hugging_face_cache_once_and_runs_offline(name):
    (job,) = [job for kind, job in _measuring_jobs(name).values() if kind == "gpu"]
    home = job["env"]["HF_HOME"]
    cache = _step(job, "actions/cache")
    assert cache["with"]["path"] == home and "hashFiles('.github/energy-models.txt')" in cache["with"]["key"]
    fill = next(step for step in job["steps"] if "hf download" in step.get("run", ""))
    assert fill["if"] == f"steps.{cache['id']}.outputs.cache-hit != 'true'"
    assert ".github/energy-models.txt" in fill["run"]
    steps = job["steps"]
    assert steps.index(cache) < steps.index(fill) < next(
        i for i, step in enumerate(steps) if step.get("run", "").startswith("pytest --energy"))
    for step in steps:
        if step.get("run", "").startswith("pytest --energy"):
            assert step["env"]["HF_HUB_OFFLINE"] == "1"


def test_the_gate_judges_against_the_base_branchs_set_and_runs_without_one():
    """Before the first baselines are merged, the base branch has no set: the gate's checkout must not
    fail there (every record is then new); where it has one, the branch's own never judge."""
    for kind, job in _measuring_jobs("github-project-gate.yml").values():
        script = next(step["run"] for step in job["steps"] if "git checkout" in step.get("run", ""))
        assert f"rm -rf baselines/{kind}" in script
        assert f'git cat-file -e "origin/$BASE:baselines/{kind}"' in script
        assert f'git checkout "origin/$BASE" -- baselines/{kind}' in script
        assert "else" in script and "every record is new" in script


def test_the_bootstrap_records_only_a_missing_set():
    recipe = _recipe("github-project-baselines.yml")
    assert recipe[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as true
    check = recipe["jobs"]["missing"]
    assert set(check["outputs"]) == {"cpu", "gpu"}
    for job_name, (kind, job) in _measuring_jobs("github-project-baselines.yml").items():
        assert job["needs"] == "missing" and job["if"] == f"needs.missing.outputs.{kind} == 'true'"
    assert '[ -d "baselines/$set" ]' in check["steps"][-1]["run"]
    assert recipe["permissions"] == {"contents": "write", "pull-requests": "write"}


def test_every_energy_option_the_recipes_and_the_page_name_is_real():
    """Options named anywhere (a pull request's body, a comment, docs/ci.md's prose) exist too."""
    texts = [path.read_text(encoding="utf-8") for path in RECIPES] + [(ROOT / "docs" / "ci.md").read_text()]
    named = {option for text in texts for option in re.findall(r"--energy(?:-[a-z0-9]+)*", text)}
    assert {"--energy-baseline-set", "--energy-update-baselines"} <= named
    assert sorted(named - KNOWN_OPTIONS) == []


# -- the pull-request comment ----------------------------------------------------------------------
GATES = ("github-pr.yml", "github-project-gate.yml")


def test_the_comment_workflow_alone_holds_the_write_token_and_never_runs_the_pull_requests_code():
    """Fork-safe: a workflow_run job from the base branch posts what the gate uploaded, read as data."""
    from pytest_energy.report.markdown import MARKER

    recipe = _recipe("github-pr-comment.yml")
    assert recipe[True] == {"workflow_run": {"workflows": ["energy gate"], "types": ["completed"]}}
    assert recipe["permissions"] == {}
    (job,) = recipe["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    uses = [step.get("uses", "") for step in job["steps"]]
    assert not any(use.startswith("actions/checkout") for use in uses)  # no code of the pull request's head
    assert _scripts(job) == []  # no shell step: nothing of the artifact is run
    download = _step(job, "actions/download-artifact")
    assert download["with"]["name"] == "energy-comment"
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    script = _step(job, "actions/github-script")["with"]["script"]
    assert f"const marker = '{MARKER}';" in script  # the markdown's last line
    # The number the pull request's code wrote is checked against the commit the gate ran on.
    assert "pull.head.sha !== process.env.HEAD_SHA" in script
    assert _step(job, "actions/github-script")["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    # One sticky comment: the bot's own comment ending with the marker is updated, else one is created.
    assert "c.user.login === 'github-actions[bot]' && c.body.trimEnd().endsWith(marker)" in script
    assert "updateComment" in script and "createComment" in script and "body.length > 65536" in script


@pytest.mark.parametrize("name", GATES)
def test_the_gate_uploads_its_markdown_and_the_pull_requests_number_with_a_read_only_token(name):
    recipe = _recipe(name)
    assert recipe["name"] == _recipe("github-pr-comment.yml")[True]["workflow_run"]["workflows"][0]
    assert set(recipe[True]) == {"pull_request"} and recipe["permissions"] == {"contents": "read"}
    (job,) = [job for job in recipe["jobs"].values()
              if any(step.get("with", {}).get("name") == "energy-comment" for step in job["steps"])]
    (words,) = [words for script in _scripts(job) for words in _commands(script) if words[:2] == ["pytest", "--energy"]]
    assert words[words.index("--energy-markdown") + 1] == "energy-comment/comment.md"
    number = next(step for step in job["steps"] if "pr-number" in step.get("run", ""))
    assert number["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}" and number["if"] == "always()"
    assert 'echo "$PR_NUMBER" > energy-comment/pr-number' in number["run"]
    upload = next(step for step in job["steps"] if step.get("with", {}).get("name") == "energy-comment")
    assert upload["uses"].startswith("actions/upload-artifact") and upload["with"]["path"] == "energy-comment/"
    assert upload["if"] == "always()"  # a failing gate has the most to say
    steps = job["steps"]
    assert steps.index(number) < steps.index(upload)
