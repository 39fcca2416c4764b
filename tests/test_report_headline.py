"""The one headline (issue 24, item 1): the run's outcome, what decided it and the counts, in the same
words in the terminal summary, the HTML report, the energy JSON and the GitHub step summary, and never
green on a run that exits non-zero.

The pytester runs measure through the fake RAPL package of the gate's integration tests, whose counter
advances by exactly the joules a test spends (1.5 % seeded noise), so a regression and a missed energy
budget are facts every run; the model-level tests cover what a run cannot cheaply stage (lost records,
an output that could not be written).
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

import pytest
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from test_gate_integration import CONFTEST, run_energy

from pytest_energy.judge.verdict import Judgement
from pytest_energy.report import build_report
from pytest_energy.report import html as html_report
from pytest_energy.report.markdown import render as markdown_summary
from pytest_energy.report.model import build_headline

TESTS = '''
import pytest
from pytest_energy.cases.base import QualityBudgetError, apply_quality_budget

WORK = {work}


def test_model(energy, package):
    energy.run(package.spend, args=(WORK,), iterations=1)


def test_steady(energy, package):
    energy.run(package.spend, args=(2.0,), iterations=1)
'''

FAILING = '''

def test_broken(energy, package):
    energy.run(package.spend, args=(0.5,), iterations=1)
    assert False, "broken for another reason"


@pytest.mark.energy("0.1 J")
def test_over_budget(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)


def test_accuracy(energy, package):
    # What a case does with its quality budget (pytest_energy.cases.runner.check_quality), without a model.
    energy.run(package.spend, args=(0.5,), iterations=1)
    record = energy.last
    record.quality = {{"accuracy": {{"value": 0.5, "computed_by": "this test", "higher_is_better": True}}}}
    record.criteria["quality"] = {{"accuracy": 0.9}}
    missed = apply_quality_budget(record.quality, {{"accuracy": 0.9}})
    if missed:
        raise QualityBudgetError(missed)
'''

ARGS = ["-p", "no:cacheprovider", "--energy", "--energy-devices", "cpu", "--energy-rounds", "5",
        "--energy-min-window", "0.02", "--energy-idle-seconds", "0.05", "--energy-warmup", "1",
        "--energy-report", "report.html", "--energy-json", "out.json"]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run pytest on the test file with ``work`` joules per call of test_model (and the failing tests);
    return the result, the headline the JSON holds, the HTML page and the step summary."""
    pytester.makeconftest(CONFTEST)
    summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    def go(work: float, seed: int, *extra: str, failing: bool = False):
        pytester.makepyfile(test_run=TESTS.format(work=work) + (FAILING.format() if failing else ""))
        monkeypatch.setenv("FAKE_SEED", str(seed))
        summary.unlink(missing_ok=True)
        result = run_energy(pytester, *ARGS, *extra)
        document = json.loads((pytester.path / "out.json").read_text())
        page = (pytester.path / "report.html").read_text()
        return result, document["gate"].get("headline"), page, summary.read_text()

    return go


def _shown_everywhere(result: pytest.RunResult, headline: dict, page: str, summary: str) -> None:
    """The same words in the four places; green only where the run passed."""
    text = headline["text"]
    assert f"pytest-energy {text}" in result.outlines, result.stdout.str()
    assert summary.splitlines()[0] == f"### pytest-energy {text}"
    passed = headline["outcome"] == "passed"
    state = "passed" if passed else "failed"
    assert f'<span class="gate {state}" id="gate-state">{headline["outcome"]}</span>' in page
    assert f'<p class="headline {state}" id="headline">{html.escape(text, quote=True)}</p>' in page
    assert headline["exit_status"] == result.ret
    if not passed:
        assert 'class="gate passed"' not in page and 'class="ok"' not in page and "gate passed" not in page


def test_a_clean_run_passes_in_every_report(run) -> None:
    run(1.0, 0, "--energy-update-baselines")
    result, headline, page, summary = run(1.0, 1)
    assert result.ret == 0, result.stdout.str()
    assert headline["outcome"] == "passed"
    assert headline["text"].startswith("passed: nothing failed the gate; 2 records: ")
    _shown_everywhere(result, headline, page, summary)


def test_a_regression_heads_every_report(run) -> None:
    run(1.0, 0, "--energy-update-baselines")
    result, headline, page, summary = run(1.5, 1)
    assert result.ret == 1
    result.assert_outcomes(passed=2)  # the gate alone fails the run
    assert headline["outcome"] == "FAILED" and headline["decided_by"] == ["1 regression"]
    assert headline["text"].startswith("FAILED: 1 regression; 2 records: 1 regression, 1 ")
    _shown_everywhere(result, headline, page, summary)
    assert 'class="card alert" id="total-regressions"' in page


def test_missed_budgets_and_a_failed_test_head_every_report_and_come_first(run) -> None:
    run(1.0, 0, "--energy-update-baselines")
    result, headline, page, summary = run(1.0, 1, failing=True)
    assert result.ret == 1
    result.assert_outcomes(passed=2, failed=3)
    assert headline == {
        "outcome": "FAILED",
        "decided_by": ["1 energy budget missed", "1 quality budget missed", "1 test failed"],
        "counts": headline["counts"], "exit_status": 1, "text": headline["text"]}
    assert headline["counts"].startswith("5 records: 3 in failed tests, ")
    _shown_everywhere(result, headline, page, summary)
    # Regressions and failures first: the failed tests' records lead the table and their own section.
    results = page[page.index('<table id="results-table">'):]
    names = ["test_run.py::test_accuracy", "test_run.py::test_broken", "test_run.py::test_over_budget",
             "test_run.py::test_model", "test_run.py::test_steady"]
    assert sorted(names, key=lambda name: results.index(f'data-name="{name}"')) == names
    urgent = page[page.index('<section id="regressions">'):page.index('<section id="results">')]
    assert "Regressions, model changes and failed tests (3)" in urgent and "test_run.py::test_model" not in urgent
    assert 'id="total-failed"' in page


def test_serial_and_xdist_runs_give_the_same_headline(run) -> None:
    run(1.0, 0, "--energy-update-baselines")
    serial = run(1.0, 1, failing=True)
    spread = run(1.0, 1, "-p", "xdist", "-n", "2", failing=True)
    assert serial[0].ret == spread[0].ret == 1
    # Under -n 2 the package's counter counts both workers (issue 25): the energy budget it alone puts over
    # fails nothing; every other reason is the serial run's, in the same words.
    assert spread[1]["decided_by"] == [r for r in serial[1]["decided_by"] if r != "1 energy budget missed"]
    assert serial[1]["counts"].startswith("5 records: 3 in failed tests, ")
    assert spread[1]["counts"].startswith("5 records: 2 in failed tests, ")
    spread[0].stdout.fnmatch_lines(["*test_run.py::test_over_budget  energy budget 100 mJ per iteration: over budget "
                                    "(shared with other workers, not gating)*cpu:package-0 shared with 2 workers*"])
    _shown_everywhere(*spread)


# -- the headline on its own ---------------------------------------------------------------------------
def test_lost_records_make_the_run_incomplete() -> None:
    judgement = make_judgement([make_verdict("t.py::test_a", "unchanged", 1.0)])
    judgement.incomplete = ["pytest-energy: xdist worker gw1 crashed (...) while running t.py::test_b: ..."]
    judgement.gate_failed = True
    headline = build_headline([make_record("t.py::test_a", 1.0)], judgement, 1, lost=1)
    assert headline.text == "INCOMPLETE: 1 xdist worker crashed, records lost; 1 record: 1 unchanged"
    assert not headline.passed


def test_an_output_that_could_not_be_written_fails_the_headline() -> None:
    records = [make_record("t.py::test_a", 1.0)]
    headline = build_headline(records, make_judgement([make_verdict("t.py::test_a", "unchanged", 1.0)]), 74,
                              unwritten=("the energy JSON",))
    assert headline.text == "FAILED: the energy JSON could not be written; 1 record: 1 unchanged"
    report = build_report(records, None, make_run_info(), headline=headline)
    assert report.headline is headline and not report.passed
    assert 'class="gate failed"' in html_report.render(report)
    assert markdown_summary(report).startswith(f"### pytest-energy {headline.text}\n")


def test_regressions_that_cannot_fail_the_gate_leave_the_run_passed_and_say_so() -> None:
    records = [make_record("t.py::test_modelled", 2.0)]
    judgement = make_judgement([make_verdict("t.py::test_modelled", "regression", 1.3, gating=False)])
    headline = build_headline(records, judgement, 0)
    assert headline.text == "passed: 1 regression not gating; 1 record: 1 regression"
    assert build_headline(records, Judgement(), 0).text == "passed: nothing compared with a baseline; 1 record: " \
                                                          "1 not judged"


def test_a_note_many_rows_share_is_said_once_above_the_table() -> None:
    note = "energy: no baseline measured on modelled: Intel Xeon x2 in the set yet (it holds modelled: AMD EPYC x2)"
    names = ["t.py::test_a", "t.py::test_b", "t.py::test_c"]
    verdicts = [dataclasses.replace(make_verdict(name, "incomparable"), message=f"{note}; re-record here")
                for name in names[:2]]
    verdicts.append(dataclasses.replace(make_verdict(names[2], "incomparable"),
                                        message="energy: no figure; every window invalid"))
    report = build_report([make_record(name, 1.0) for name in names], make_judgement(verdicts), make_run_info())
    assert report.shared_notes == [f"not compared: {note}; re-record here"]
    assert [(row.note_ref, row.interval_note, row.decided_by) for row in report.rows] == [
        (1, "", "see note 1"), (1, "", "see note 1"),
        (None, "not compared: energy: no figure", "energy: no figure; every window invalid")]
    page = html_report.render(report)
    results = page[page.index('<section id="results">'):page.index('<section id="quality">')]
    assert results.count(note) == 1  # once above the table; each record's details keep its whole verdict
    assert results.count('href="#shared-notes">see note 1</a>') == 2
