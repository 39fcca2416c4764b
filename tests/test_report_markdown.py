"""The markdown summary (issue 24, item 4): ``--energy-markdown`` writes a pull-request comment whose first
line is the run's headline, with the regressions and missed budgets (their interval, the measured figure
against the budget) before the folded table of every result, within GitHub's 65,536 characters, and the
marker a workflow finds it by last; ``pytest-energy report --from-json RUN.json --markdown`` makes the same
text from the run's JSON; the step summary is the same renderer's text.

The pytester runs measure through the fake RAPL package of the gate's integration tests (the tests of
``test_report_headline.py``), whose counter advances by exactly the joules a test spends.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from test_gate_integration import CONFTEST, run_energy
from test_report_headline import ARGS, FAILING, TESTS

from pytest_energy.commands import cli
from pytest_energy.report import build_report
from pytest_energy.report.markdown import COMMENT_LIMIT, MARKER, render

SUMMARY = "<details><summary>All {} results</summary>"


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run pytest on the test file with ``work`` joules per call of test_model (and the failing tests);
    return the result, the JSON document, the markdown written and the step summary."""
    pytester.makeconftest(CONFTEST)
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    def go(work: float, seed: int, *extra: str, failing: bool = False, markdown: str = "comment.md"):
        pytester.makepyfile(test_run=TESTS.format(work=work) + (FAILING.format() if failing else ""))
        monkeypatch.setenv("FAKE_SEED", str(seed))
        summary.unlink(missing_ok=True)
        written = pytester.path / markdown
        if written.exists():
            written.unlink()
        result = run_energy(pytester, *ARGS, "--energy-markdown", markdown, *extra)
        document = json.loads((pytester.path / "out.json").read_text())
        return result, document, written.read_text() if written.exists() else None, summary.read_text()

    return go


def _section(text: str) -> str:
    """The part before the folded table: the headline, the gate's lines and the urgent rows."""
    return text[:text.index("<details>")]


def _table_rows(text: str) -> list[str]:
    table = text[text.index("<details>"):]
    return [line for line in table.splitlines()
            if line.startswith("| ") and not line.startswith(("| verdict", "| ---"))]


# One xdist worker: two would share the fake package, whose energy then never gates (issue 25).
@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "1"]], ids=["serial", "xdist"])
def test_a_failing_run_says_failed_first_then_its_regression_and_missed_budgets(run, pytester, capsys,
                                                                               workers) -> None:
    run(1.0, 0, "--energy-update-baselines")
    result, document, text, summary = run(1.5, 1, *workers, failing=True)
    assert result.ret == 1
    result.assert_outcomes(passed=2, failed=3)
    headline = document["gate"]["headline"]
    assert headline["outcome"] == "FAILED"
    lines = text.splitlines()
    assert lines[0] == f"### pytest-energy {headline['text']}"
    for reason in ("1 regression", "1 energy budget missed", "1 quality budget missed", "1 test failed"):
        assert reason in lines[0]
    assert lines[-1] == MARKER and text.endswith(MARKER + "\n")
    # Before the table: the regression with its change and interval, each missed budget with its figure.
    urgent = _section(text)
    assert "#### Regressions, model changes and failed tests (4)" in urgent
    rows = [line for line in urgent.splitlines() if line.startswith("| ")]
    [regression] = [line for line in rows if line.startswith("| regression | test\\_run.py::test\\_model |")]
    change = re.search(r"\| \+(\d+\.\d) % \[\+(\d+\.\d) %, \+(\d+\.\d) %\] \|", regression)
    assert change, regression
    low, estimate, high = float(change[2]), float(change[1]), float(change[3])
    assert low <= estimate <= high and 40 < estimate < 60  # 1.5 J against 1.0 J
    [budget] = [line for line in rows if "test\\_over\\_budget" in line]
    assert re.search(r"energy budget: [\d.]+ m?J ± [\d.]+ m?J per iteration \(gross, counter\) &gt; budget 100 mJ "
                     r"per iteration", budget), budget
    [quality] = [line for line in rows if "test\\_accuracy" in line]
    assert "quality budget: accuracy 0.5 &lt; budget 0.9" in quality
    [broken] = [line for line in rows if "test\\_broken" in line]
    assert broken.startswith("| new, test failed |") and broken.endswith("| its test failed |")
    assert "test\\_steady" not in urgent and len(rows) == 2 + 4
    # Then every result, folded; nothing cut.
    assert SUMMARY.format(5) in text and len(_table_rows(text)) == 5 and "more rows not shown" not in text
    assert summary == text  # the step summary is the same renderer's text

    # The command makes the same text from the run's JSON, to a file and printed.
    assert cli.main(["report", "--from-json", str(pytester.path / "out.json"), "--markdown",
                     str(pytester.path / "again.md")]) == 0
    assert (pytester.path / "again.md").read_text() == text
    capsys.readouterr()
    assert cli.main(["report", "--from-json", str(pytester.path / "out.json"), "--markdown"]) == 0
    assert capsys.readouterr().out == text
    assert cli.main(["report", "--from-json", str(pytester.path / "out.json"), "--markdown",
                     str(pytester.path / "out.json")]) == 2
    assert capsys.readouterr().err == (f"pytest-energy: --markdown {pytester.path / 'out.json'} is the JSON read "
                                       "(--from-json): give another path\n")


def test_a_clean_run_says_passed_and_the_environment_turns_it_on(run, pytester, monkeypatch) -> None:
    run(1.0, 0, "--energy-update-baselines")
    monkeypatch.setenv("PYTEST_ENERGY_MARKDOWN", "from-env.md")
    result, document, text, _ = run(1.0, 1, markdown="none")  # the command line's "none" turns it off
    assert result.ret == 0 and text is None and not (pytester.path / "from-env.md").exists()
    pytester.makepyfile(test_run=TESTS.format(work=1.0))
    result = run_energy(pytester, *ARGS)
    assert result.ret == 0, result.stdout.str()
    text = (pytester.path / "from-env.md").read_text()
    headline = json.loads((pytester.path / "out.json").read_text())["gate"]["headline"]
    assert text.splitlines()[0] == f"### pytest-energy {headline['text']}"
    assert text.startswith("### pytest-energy passed: nothing failed the gate; 2 records: 2 unchanged\n")
    assert "####" not in text  # no regression or failure to list first
    assert SUMMARY.format(2) in text and len(_table_rows(text)) == 2
    assert f"pytest-energy: markdown summary (pull-request comment, {len(text):,} characters): " \
           f"{pytester.path / 'from-env.md'}" in result.outlines


def test_a_markdown_that_cannot_be_written_is_one_line_and_the_other_outputs_are_written(run, pytester) -> None:
    (pytester.path / "blocked").write_text("a file where the markdown's folder would be\n")
    result, document, text, summary = run(1.0, 0, markdown="blocked/comment.md")
    assert text is None
    failures = [line for line in result.outlines if "could not write" in line]
    assert len(failures) == 1 and failures[0].startswith("pytest-energy: could not write the markdown summary: ")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    # The other outputs are written, the step summary after it too; the run exits 74 as for any report
    # file it could not write (docs/faults.md), and its headline says why.
    assert result.ret == 74 and document["session"]["exitstatus"] == 74
    headline = document["gate"]["headline"]
    assert headline["decided_by"] == ["the markdown summary could not be written"]
    # The step summary, written after it, heads with the failure: never green on a run that exits 74.
    assert (pytester.path / "report.html").exists() and summary.startswith(f"### pytest-energy {headline['text']}\n")
    assert summary.startswith("### pytest-energy FAILED: the markdown summary could not be written; ")
    assert "pytest-energy: exit 74: the markdown summary could not be written (see above), so the run fails " \
           "though its tests passed" in result.outlines


def test_a_report_file_that_fails_before_it_heads_the_markdown_with_the_failure(run, pytester, capsys) -> None:
    (pytester.path / "blocked").write_text("a file where the HTML report's folder would be\n")
    result, document, text, _ = run(1.0, 0, "--energy-report", "blocked/report.html")
    assert result.ret == 74
    headline = document["gate"]["headline"]
    assert headline["decided_by"] == ["the HTML report could not be written"]
    assert text.splitlines()[0] == f"### pytest-energy {headline['text']}"
    assert text.startswith("### pytest-energy FAILED: the HTML report could not be written; ")
    capsys.readouterr()
    assert cli.main(["report", "--from-json", str(pytester.path / "out.json"), "--markdown"]) == 0
    assert capsys.readouterr().out == text


# -- the length limit, on the report model -----------------------------------------------------------
def _many(count: int, status: str) -> tuple[list, object]:
    names = [f"tests/test_{'long_module_name_' * 3}{i:05d}.py::test_case[param|{i}]" for i in range(count)]
    records = [make_record(name, 1.0) for name in names]
    verdicts = [make_verdict(name, status, 1.3 if status == "regression" else 1.0, 1.2, 1.4) for name in names]
    return records, make_judgement(verdicts)


def test_thousands_of_records_stay_within_a_comment_and_say_how_many_rows_are_not_shown() -> None:
    records, judgement = _many(3000, "unchanged")
    text = render(build_report(records, judgement, make_run_info()))
    assert len(text) <= COMMENT_LIMIT
    assert text.startswith("### pytest-energy passed: nothing failed the gate; 3000 records: 3000 unchanged\n")
    assert text.endswith(f"</details>\n\n{MARKER}\n")
    shown = _table_rows(text)
    [note] = [line for line in text.splitlines() if "more rows not shown" in line]
    assert note == f"... {3000 - len(shown)} more rows not shown: see the HTML report / JSON artifact"
    assert 200 < len(shown) < 3000 and SUMMARY.format(3000) in text
    assert "param\\|0\\]" in shown[0]  # a test name's | and brackets escaped: the row keeps its six cells
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 7 for row in shown)
    # A little more room shows more rows; the note's count follows.
    assert len(_table_rows(render(build_report(records, judgement, make_run_info()), limit=COMMENT_LIMIT * 2))) \
        > len(shown)


def test_thousands_of_regressions_are_cut_too_and_the_headline_stays_first() -> None:
    records, judgement = _many(3000, "regression")
    text = render(build_report(records, judgement, make_run_info()))
    assert len(text) <= COMMENT_LIMIT and text.splitlines()[-1] == MARKER
    assert text.startswith("### pytest-energy FAILED: 3000 regressions; ")
    urgent = _section(text)
    listed = [line for line in urgent.splitlines() if line.startswith("| regression |")]
    assert listed and f"\n... {3000 - len(listed)} more not shown: see the table below" in urgent
    assert "+30.0 % [+20.0 %, +40.0 %]" in listed[0]


def test_a_small_report_is_whole() -> None:
    records, judgement = _many(3, "regression")
    text = render(build_report(records, judgement, make_run_info()))
    assert "not shown" not in text and len(_table_rows(text)) == 3
    assert len([line for line in _section(text).splitlines() if line.startswith("| regression |")]) == 3


# -- the command's faults ----------------------------------------------------------------------------
def test_the_command_refuses_what_it_cannot_read_in_one_line(tmp_path: Path, capsys) -> None:
    assert cli.main(["report", "--markdown", str(tmp_path / "c.md")]) == 2
    assert capsys.readouterr().err.startswith("pytest-energy: report --from-json RUN.json --markdown [PATH] go "
                                              "together")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert cli.main(["report", "--from-json", str(broken), "--markdown", str(tmp_path / "c.md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pytest-energy: {broken} is not JSON (") and err.endswith("; no report made\n")
    assert len(err.splitlines()) == 1 and not (tmp_path / "c.md").exists()
