"""Energy in other tools' reports, end to end: pytest-html columns, JUnit XML properties, and
pytest-benchmark's extra_info; plus the nightly report from a real history store."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET

import pytest

from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from pytest_energy.store.history import History, HistoryError
from pytest_energy.report import render_from_history
from pytest_energy.report.exports import junit_properties
from pytest_energy.report.pytest_html import PytestHtmlHooks, energy_cells

FAST = ("--energy", "--energy-min-window", "0.02", "--energy-rounds", "2", "--energy-warmup", "0",
        "--energy-idle-seconds", "0.05", "--energy-report", "none", "--energy-history", "none")


def test_cells_group_properties_per_record_and_sum_co2():
    first = make_record("t.py::test_two::encode", 2.0, unit="inference")
    second = make_record("t.py::test_two::decode", 3.0)
    properties = [("other", "x"), *junit_properties(first), *junit_properties(second)]
    energy, co2 = energy_cells(properties)
    assert energy.startswith("encode: ") and "Wh / 1,000 inferences" in energy and "; decode: " in energy
    assert float(co2) == pytest.approx(first.co2_grams + second.co2_grams, rel=1e-3)
    assert energy_cells([("other", "x")]) == ("", "")


def test_row_cells_are_escaped_and_always_added():
    hooks = PytestHtmlHooks()
    header: list[str] = ["<th>Result</th>"]
    hooks.pytest_html_results_table_header(header)
    # Was "Energy / iteration (J, net)": a per-test record is not per iteration; each cell names its unit.
    assert header[1:] == ['<th class="sortable" data-column-type="energy">Net energy (J per unit)</th>',
                          '<th class="sortable" data-column-type="co2">CO2 (g)</th>']
    record = make_record("t.py::test_x::<b>label</b>", 1.0)
    record_two = make_record("t.py::test_x::plain", 1.0)

    class Report:
        user_properties = junit_properties(record) + junit_properties(record_two)

    cells: list[str] = []
    hooks.pytest_html_results_table_row(Report(), cells)
    assert "&lt;b&gt;label&lt;/b&gt;" in cells[0] and "<b>" not in cells[0]

    class Plain:
        user_properties: list = []

    cells = []
    hooks.pytest_html_results_table_row(Plain(), cells)
    assert cells == ['<td class="col-energy"></td>', '<td class="col-co2"></td>']


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_work="""
        def test_sum(energy):
            assert energy(sum, range(3000)) == 4498500

        def test_plain():
            pass
    """)
    return pytester


def test_pytest_html_report_and_junit_xml_carry_energy(suite):
    result = suite.runpytest(*FAST, "--html=page.html", "--self-contained-html", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2)
    page = (suite.path / "page.html").read_text()
    assert 'data-column-type="energy"' in page
    # pytest-html keeps rows as escaped JSON in the page; the measured test's row has a number in its cell.
    cells = re.findall(r'col-energy\\">([^<]*)</td>', html.unescape(page))
    assert any(re.fullmatch(r"[0-9.e+-]+ J/iteration", cell) for cell in cells), cells
    assert "" in cells  # the unmeasured test keeps an empty cell
    tree = ET.parse(suite.path / "junit.xml")
    measured, = (case for case in tree.iter("testcase") if case.get("name") == "test_sum")
    properties = {p.get("name"): p.get("value") for p in measured.iter("property")}
    assert properties["energy_record"] == "test_work.py::test_sum"
    assert float(properties["energy_joules_per_iteration"]) > 0
    assert properties["energy_method"] == "modelled"


def test_benchmark_json_carries_energy(pytester, monkeypatch):
    # Not named test_bench: tests/test_bench.py is already imported in this process.
    # Under `-n 2` this test runs in an xdist worker, whose PYTEST_XDIST_WORKER the inner run would inherit:
    # pytest-benchmark reads it as its own run being distributed and disables itself.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(test_timed="""
        def test_bench(benchmark, energy):
            assert energy(sum, range(3000)) == 4498500
            benchmark.pedantic(sum, args=(range(10),), rounds=2, iterations=1)
    """)
    result = pytester.runpytest(*FAST, "--benchmark-json=bench.json")
    result.assert_outcomes(passed=1)
    bench, = json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    extra = bench["extra_info"]
    assert extra["energy_record"] == "test_timed.py::test_bench"
    assert extra["energy_joules_per_iteration"] > 0 and extra["energy_method"] == "modelled"


def test_nightly_report_from_history_marks_the_step(tmp_path):
    history = History(tmp_path / "history.sqlite")
    for run in range(10):
        info = make_run_info(run_id=f"run{run}")
        info.started = f"2026-11-{run + 1:02d}T02:00:00+00:00"
        joules = 10.0 * (1.2 if run >= 5 else 1.0) * (1 + 0.002 * (run % 3))
        status = "regression" if run == 5 else "unchanged"
        history.append(info, [make_record("t.py::test_a", joules), make_record("t.py::test_b", 4.0)],
                       make_judgement([make_verdict("t.py::test_a", status, 1.2, 1.15, 1.25)]))
    render_from_history(tmp_path / "history.sqlite", tmp_path / "nightly.html", None)
    page = (tmp_path / "nightly.html").read_text()
    assert "nightly report: 10 runs" in page and "every stored run" in page
    # One trend chart per test, and each test's sparkline in the table.
    assert page.count('<svg class="chart"') == 2 and page.count('<svg class="spark"') == 2
    assert page.count('<line class="step"') == 2  # the step, marked on its chart and on its sparkline
    assert "at 2026-11-06T02:00:00" in page
    render_from_history(tmp_path / "history.sqlite", tmp_path / "recent.html", 3)
    last_three = (tmp_path / "recent.html").read_text()
    assert "nightly report: 3 runs" in last_three and '<line class="step"' not in last_three


def test_nightly_report_without_history_is_one_clear_error(tmp_path):
    with pytest.raises(HistoryError, match="no history at"):
        render_from_history(tmp_path / "missing.sqlite", tmp_path / "out.html", None)
