"""The terminal table through pytest's own terminal reporter: regressions last, -q, NO_COLOR, pipes."""

from __future__ import annotations

import io
import re

import pytest
from _pytest.terminal import TerminalReporter

from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from pytest_energy.report import build_report
from pytest_energy.report import terminal
from pytest_energy.report.model import fmt

ESC = "\x1b["


def _report(count: int = 0):
    records = [
        make_record("t.py::test_regressed", 12.0, unit="inference", quality={"rougeL": 0.41}),
        make_record("t.py::test_[red]markup[/red]", 3.0),
        make_record("t.py::test_better", 4.0),
    ] + [make_record(f"t.py::test_bulk[{i}]", 1.0 + i) for i in range(count)]
    verdicts = [make_verdict("t.py::test_regressed", "regression", 1.25, 1.2, 1.3),
                make_verdict("t.py::test_better", "improvement", 0.8, 0.75, 0.85)]
    judgement = make_judgement(verdicts, errors=["pytest-energy: baselines/x.json: not JSON (line 3)"])
    return build_report(records, judgement, make_run_info())


def _render(pytestconfig, monkeypatch, verbosity=0, env=None, count=0, report=None):
    for name in ("NO_COLOR", "PY_COLORS", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    reporter = TerminalReporter(pytestconfig, out)
    terminal.render(report or _report(count), reporter, verbosity)
    return out.getvalue()


def test_table_lists_every_row_in_the_html_order_regressions_first(pytestconfig, monkeypatch):
    # Was "regressions last": the issue asks for the terminal and the HTML report in one order.
    report = _report()
    text = _render(pytestconfig, monkeypatch, report=report)
    assert ESC not in text  # a StringIO is no terminal: plain text
    assert "energy" in text.splitlines()[0]
    lines = text.splitlines()
    position = {name: next(i for i, line in enumerate(lines) if name in line)
                for name in ("test_better", "markup", "test_regressed")}
    assert position["test_better"] > position["test_regressed"]
    assert position["markup"] > position["test_regressed"]
    html_order = [row.name for row in report.rows]
    assert sorted(html_order, key=lambda name: next(i for i, line in enumerate(lines) if line == name)) == html_order
    assert "t.py::test_[red]markup[/red]" in text  # shown as text, not as rich markup
    figures = lines[position["test_regressed"] + 1]  # the figures line under the name
    regressed = next(row.record for row in report.rows if row.name == "t.py::test_regressed")
    assert figures.startswith("regression")
    assert (f"{fmt(regressed.per_iteration_net_joules)} J/{regressed.unit} ± "
            f"{fmt(regressed.per_iteration_uncertainty_joules, 2)} J") in figures
    assert "+25.0 % [+20.0 %, +30.0 %]" in figures and "rougeL 0.41" in figures
    assert f"{fmt(regressed.per_iteration_gross_joules / 3.6)} Wh per 1,000 inferences (gross)" in text
    assert "rougeL 0.41" in text
    assert "3 measured" in text
    assert "energy regression: t.py::test_regressed +25.0 %" in text
    assert "baselines/x.json: not JSON (line 3)" in text


def test_quiet_shows_only_the_totals_and_regressions(pytestconfig, monkeypatch):
    text = _render(pytestconfig, monkeypatch, verbosity=-1)
    assert "test_regressed" in text and "3 measured" in text
    assert "test_better" not in text and "markup" not in text


def test_colour_on_a_terminal_and_none_with_no_color(pytestconfig, monkeypatch):
    coloured = _render(pytestconfig, monkeypatch, env={"PY_COLORS": "1"})
    assert ESC in coloured
    regressed = next(line for line in coloured.splitlines() if "regression" in line and "+25.0 %" in line)
    assert "\x1b[1;31mregression" in regressed  # the verdict in bold red
    plain = _render(pytestconfig, monkeypatch, env={"NO_COLOR": "1"})
    assert ESC not in plain and "test_regressed" in plain


def test_long_runs_are_cut_at_default_verbosity_but_keep_regressions(pytestconfig, monkeypatch):
    text = _render(pytestconfig, monkeypatch, count=100)
    assert f"{103 - terminal.DEFAULT_ROWS} rows not shown here" in text
    assert "test_regressed" in text
    verbose = _render(pytestconfig, monkeypatch, verbosity=1, count=100)
    assert "rows not shown" not in verbose and "test_bulk[0]" in verbose
    assert "t.py::test_regressed: energy regression +25.0 %" in verbose  # verdict messages with -v


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_work="""
        def test_sum(energy):
            assert energy(sum, range(2000)) == 1999000
    """)
    return pytester


def test_plugin_prints_the_table_at_the_end_of_a_session(suite):
    result = suite.runpytest("--energy", "--energy-min-window", "0.02", "--energy-rounds", "2",
                             "--energy-warmup", "0", "--energy-idle-seconds", "0.05", "--energy-report", "none")
    result.assert_outcomes(passed=1)
    text = result.stdout.str()
    assert any(re.fullmatch(r"=+ energy =+", line) for line in text.splitlines())
    assert "test_work.py::test_sum" in text
    assert "1 measured" in text
    assert "modelled" in text
