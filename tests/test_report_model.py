"""The report object: ordering, totals, per-row figures, Pareto front and trends."""

from __future__ import annotations

import math

import pytest

from pytest_energy.core.facts import CaseFacts
from pytest_energy.testing.records import make_judgement, make_record, make_run_info, make_verdict
from pytest_energy.report import build_report
from pytest_energy.report.model import fmt, is_fine_tune
from pytest_energy.report.trends import build_trends


def _report(history=None):
    records = [
        make_record("t.py::test_same", 3.0),
        make_record("t.py::test_faster", 4.0),
        make_record("t.py::test_slower", 10.0, unit="inference", quality={"rougeL": 0.41}),
        make_record("t.py::test_fresh", 2.0),
        make_record("t.py::test_quality_drop", 5.0, quality={"accuracy": 0.7}),
    ]
    verdicts = [
        make_verdict("t.py::test_same", "unchanged", 1.0, 0.98, 1.02),
        make_verdict("t.py::test_faster", "improvement", 0.8, 0.75, 0.85),
        make_verdict("t.py::test_slower", "regression", 1.2, 1.1, 1.3),
        make_verdict("t.py::test_fresh", "new"),
        make_verdict("t.py::test_quality_drop", "unchanged", 1.0, 0.99, 1.01),
        make_verdict("t.py::test_quality_drop", "regression", 0.9, metric="accuracy"),
    ]
    return records, build_report(records, make_judgement(verdicts), make_run_info(), history)


def test_rows_put_regressions_first_including_quality_regressions():
    _, report = _report()
    assert [row.status for row in report.rows] == ["regression", "regression", "improvement", "new", "unchanged"]
    assert [row.name for row in report.regressions] == ["t.py::test_quality_drop", "t.py::test_slower"]
    assert [row.index for row in report.rows] == [0, 1, 2, 3, 4]
    assert report.gate_failed


def test_totals_are_the_sums_of_the_records():
    records, report = _report()
    totals = report.totals
    assert totals.records == 5
    assert totals.gross_joules == pytest.approx(sum(r.total_gross_joules for r in records))
    assert totals.net_joules == pytest.approx(sum(r.total_net_joules for r in records))
    assert totals.co2_grams == pytest.approx(sum(r.co2_grams for r in records))
    assert totals.gross_wh == pytest.approx(totals.gross_joules / 3600)
    assert totals.counts == {"regression": 2, "improvement": 1, "new": 1, "unchanged": 1}
    assert "5 measured" in totals.line and "2 regression" in totals.line


def test_row_figures_come_from_the_record_and_its_verdicts():
    records, report = _report()
    slower = next(r for r in report.rows if r.name == "t.py::test_slower")
    record = records[2]
    assert slower.per_iteration_net == record.per_iteration_net_joules
    assert slower.wh_per_1000 == pytest.approx(record.per_iteration_gross_joules * 1000 / 3600)
    assert slower.change.ratio == 1.2 and slower.change.text == "+20.0 % [+10.0 %, +30.0 %]"
    assert [q.text for q in slower.quality] == ["rougeL 0.41"]
    same = next(r for r in report.rows if r.name == "t.py::test_same")
    assert same.wh_per_1000 is None  # only inference cases get Wh per 1,000
    drop = next(r for r in report.rows if r.name == "t.py::test_quality_drop")
    assert drop.quality[0].status == "regression"
    facts = dict(slower.facts())
    assert facts["gpu:0"].startswith("gpu, counter: gross")
    assert "standard error" in facts["per inference"]


def test_a_row_folds_what_would_make_it_tall():
    record = make_record("t.py::test_split", 3.0, quality={"accuracy": 0.7}, proxies={"flops": 2.5e9},
                         devices={"gpu:0": "counter", "cpu:0": "rapl"})
    verdicts = [make_verdict("t.py::test_split", "regression", 1.2, 1.1, 1.3),
                make_verdict("t.py::test_split", "regression", 0.9, metric="accuracy")]
    row, = build_report([record], make_judgement(verdicts), make_run_info()).rows
    folded = row.folded()
    assert folded == [
        ("decided by", "t.py::test_split: energy regression +20.0 %"),
        ("accuracy", "0.7, regression (-10.0 % vs baseline); rouge-score 0.1.2"),
        ("work", "2.5e+09 FLOPs"),
        ("method", "counter, rapl"),
        ("gpu:0", f"gpu, counter: net {fmt(record.components[0].net_joules)} J, 50 % of net"),
        ("cpu:0", f"cpu, rapl: net {fmt(record.components[1].net_joules)} J, 50 % of net"),
    ]
    assert fmt(record.components[0].net_joules) == "149.4"


def test_pareto_front_keeps_only_undominated_points():
    records = [make_record(f"t.py::test_{i}", joules, quality={"rougeL": q})
               for i, (joules, q) in enumerate([(5, 0.35), (10, 0.41), (15, 0.40), (20, 0.45), (25, 0.45)])]
    report = build_report(records, None, make_run_info())
    chart, = report.quality_charts
    front = {p.name for p in chart.points if p.on_front}
    assert front == {"t.py::test_0", "t.py::test_1", "t.py::test_3"}


def test_fmt_gives_significant_digits_without_exponents_in_the_usual_range():
    assert fmt(12.3456) == "12.35"
    assert fmt(13645.2) == "13,645"
    assert fmt(0.000123456) == "0.0001235"
    assert fmt(float("nan")) == "n/a" and fmt(None) == "n/a"
    assert fmt(100.0, 2) == "100"


class _History:
    def __init__(self, series):
        self._series = series
        self.asked = []

    def series(self, fingerprint_id=None):
        self.asked.append(fingerprint_id)
        return self._series


class _BrokenHistory:
    def series(self, fingerprint_id=None):
        raise RuntimeError("history x.sqlite is not a usable SQLite store")


def test_trends_come_from_the_history_of_this_hardware_with_steps():
    points = [(f"2026-11-{day:02d}T00:00:00", 3.0 if day < 10 else 3.6, "unchanged") for day in range(1, 17)]
    history = _History({"t.py::test_same": points, "t.py::gone": points, "t.py::test_fresh": points[:1]})
    _, report = _report(history)
    assert history.asked == ["nvidia-h100-80gb-hbm3-x1-1a2b3c4d"]
    trend, = report.trends  # a series of one run is no trend; a test not in this run is not drawn
    assert trend.name == "t.py::test_same"
    step, = trend.steps
    assert step.index == 9 and step.ratio == pytest.approx(1.2)
    assert report.steps == 1


def test_a_broken_history_costs_the_trends_only():
    _, report = _report(_BrokenHistory())
    assert report.trends == []
    assert report.trends_note == "history unavailable: history x.sqlite is not a usable SQLite store"
    assert len(report.rows) == 5


def test_trend_limit_keeps_the_most_urgent_rows_and_counts_the_rest():
    series = {f"t{i}": [("2026-01-01", 1.0, ""), ("2026-01-02", 1.0, "")] for i in range(5)}
    trends, left_out = build_trends(series, ["t3", "t1", "t0", "t4", "t2"], limit=2)
    assert [t.name for t in trends] == ["t3", "t1"] and left_out == 3
    every, none_left = build_trends(series, ["t0", "t1", "t2", "t3", "t4"])
    assert len(every) == 5 and none_left == 0


def test_records_without_valid_rounds_render_as_not_available():
    record = make_record("t.py::test_broken", 1.0)
    record.per_iteration_net_joules = math.nan
    report = build_report([record], None, None)
    assert report.rows[0].status == ""
    assert fmt(report.rows[0].per_iteration_net) == "n/a"
    assert report.quality_charts == []


def test_fine_tunes_are_recognised_by_their_case():
    assert is_fine_tune(make_record(case=CaseFacts("fine-tune")))
    assert not is_fine_tune(make_record(case=CaseFacts("inference")))
    assert not is_fine_tune(make_record(extra={"case": "fine-tune"}))  # extra is the user's: never read
    assert not is_fine_tune(make_record())


def test_the_not_compared_note_keeps_a_baseline_list_of_several_device_kinds_whole():
    """The row says the verdict's first clause; the "; " inside "(it holds X; Y)" does not end it."""
    message = ("energy: no baseline measured on modelled: Intel Xeon x2 in 'default' yet (it holds modelled: "
               "AMD EPYC x2; modelled: AMD EPYC x4); --energy-update-baselines adds it beside the others")
    verdict = make_verdict("t.py::test_moved", "incomparable")
    verdict.message = message
    record = make_record("t.py::test_moved", 1.0)
    report = build_report([record], make_judgement([verdict]), make_run_info(), None)
    [row] = report.rows
    assert row.interval_note == ("not compared: energy: no baseline measured on modelled: Intel Xeon x2 in "
                                 "'default' yet (it holds modelled: AMD EPYC x2; modelled: AMD EPYC x4)")
