"""The `pytest-energy` command: runs, a case's history, baselines, the report, and one-line errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_energy.testing.records import make_record, make_run_info

from pytest_energy.store import baselines as store
from pytest_energy.commands.cli import main
from pytest_energy.judge.gate import Judgement
from pytest_energy.store.history import History
from pytest_energy.judge.verdict import Verdict

NAME = "tests/test_model.py::test_infer"


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    for index, (joules, status, ratio) in enumerate([(10.0, "new", None), (11.0, "regression", 1.1)]):
        info = dataclasses.replace(make_run_info(f"run-{index}"), started=f"2026-11-2{index}T10:00:00+00:00")
        verdict = Verdict(NAME, "energy", status, ratio, None, None, 0.05, "default", status, True)
        History(path).append(info, [make_record(NAME, joules=joules)],
                             Judgement([verdict], gate_failed=status == "regression"))
    return path


def test_runs_lists_newest_first(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--history", str(history)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "started", "commit", "hardware", "records", "regressions", "gate", "exit",
                                "net", "energy", "CO2", "g"]
    assert lines[1].split()[:2] == ["run-1", "2026-11-21T10:00:00"]
    assert lines[1].split()[6:8] == ["failed", "0"] and lines[2].split()[6:8] == ["passed", "0"]
    assert main(["runs", "--history", str(history), "--last", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_history_shows_one_case_over_time(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", NAME, "--history", str(history)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == NAME
    assert [line.split()[1] for line in lines[2:]] == ["run-0", "run-1"]
    assert lines[3].split()[-4:] == ["counter", "regression", "+10.0", "%"]
    per_iteration = make_record(NAME, joules=11.0).per_iteration_net_joules
    assert f"{per_iteration:.4g} J" in lines[3]


def test_baselines_lists_sets_and_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "baselines"
    store.update(store.set_folder(root, "default"), [store.from_record(make_record("a.py::x")),
                                                             store.from_record(make_record("b.py::y"))])
    store.update(store.set_folder(root, "main"), [store.from_record(make_record("a.py::x"))])
    (store.set_folder(root, "main") / "a.py.json").write_text("{")
    assert main(["baselines", "--baselines", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Was one row per hardware fingerprint and set: sets are shared now, and list their device kinds.
    assert lines[:3] == ["set      baselines  files  device kinds",
                         "default  2          2      gpu: NVIDIA H100 80GB HBM3 x1",
                         "main     0          1      -"]
    assert len(lines) == 4 and "a.py.json is not valid JSON" in lines[3]


def test_report_renders_from_history(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nightly.html"
    assert main(["report", "--history", str(history), "--out", str(out), "--last", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("pytest-energy nightly report: 2 runs: the last 2 runs, 2026-11-20T10:00:00 to ")
    # What changed in the window first (the nightly's opening), then each device kind's table.
    assert lines[1] == "What changed: 1 new regression"
    kind = lines.index("gpu: NVIDIA H100 80GB HBM3 x1: 2 runs, 1 tests, runners nvidia-h100-80gb-hbm3-x1-1a2b3c4d")
    assert any(NAME in line for line in lines[2:kind]) and lines[kind + 1] == f"  {NAME}"
    assert lines[-1] == f"pytest-energy: nightly report written to {out}"
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


def test_report_never_overwrites_the_session_report_by_default(history: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    session_report = tmp_path / "reports" / "energy-report.html"
    session_report.parent.mkdir()
    session_report.write_text("the last run's report")
    assert main(["report", "--history", str(history)]) == 0
    assert (tmp_path / "reports" / "energy-nightly.html").exists()
    assert session_report.read_text() == "the last run's report"


@pytest.mark.parametrize("argv, message", [
    (["runs", "--history", "{missing}"], "no history at {missing}; run `pytest --energy` first"),
    (["history", "nobody::here", "--history", "{history}"], "no record named 'nobody::here' in"),
    (["runs", "--last", "0"], "argument --last: '0': expected a number >= 1"),
    (["history"], "the following arguments are required: name"),
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
    (["baselines", "--baselines", "{missing}"], "no baselines folder at {missing}"),
    (["report", "--history", "{missing}"], "no history at {missing}"),
])
def test_bad_input_is_one_line_and_exit_two(argv: list[str], message: str, history: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing")
    argv = [a.format(missing=missing, history=history) for a in argv]
    with pytest.raises(SystemExit) as exited:
        sys.exit(main(argv))
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("pytest-energy: ")
    assert message.format(missing=missing) in captured.err


def test_console_script_runs_outside_pytest(history: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; from pytest_energy.commands.cli import main; sys.exit(main())",
                           "runs", "--history", str(history)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "run-1" in done.stdout
    # The command reads history without importing the heavy libraries.
    check = subprocess.run([sys.executable, "-c", (
        "import sys; from pytest_energy.commands.cli import main; main(['runs', '--history', sys.argv[1]]); "
        "print(sorted(m for m in ('torch', 'transformers', 'codecarbon', 'pytest') if m in sys.modules))"),
        str(history)], capture_output=True, text=True, timeout=60)
    assert check.stdout.splitlines()[-1] == "[]"
