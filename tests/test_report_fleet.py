"""The nightly report of a fleet: every test of the window per device kind, its trend over dates and
commits, its change points with their commit range, and its runners; from a real SQLite history."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_energy.testing.records import FINGERPRINT, make_judgement, make_record, make_run_info, make_verdict
from pytest_energy.commands import cli
from pytest_energy.store.history import History, HistoryError
from pytest_energy.report import render_from_history
from pytest_energy.report.fleet import build_fleet

H100 = "gpu: NVIDIA H100 80GB HBM3 x1"
A100 = "gpu: NVIDIA A100-SXM4-80GB x1"
# Two H100 runners on different hosts (one device kind, two fingerprint ids) and an A100 runner.
RUNNERS = {
    "h100-a": {**FINGERPRINT, "id": "h100-a"},
    "h100-b": {**FINGERPRINT, "id": "h100-b", "cpu_model": "AMD EPYC 9654", "logical_cpus": 32},
    "a100-c": {**FINGERPRINT, "id": "a100-c", "gpus": [{"device": "gpu:0", "name": "NVIDIA A100-SXM4-80GB"}]},
}
STEP_NIGHT = 7  # test_a costs 20 % more from this night's commit on


def _commit(night: int) -> str:
    return f"c{night:02d}" + "0" * 38


def _append(history: History, night: int, runner: str, tests: dict[str, float], statuses: dict[str, str]) -> None:
    info = dataclasses.replace(make_run_info(run_id=f"n{night:02d}-{runner}"), fingerprint=RUNNERS[runner],
                               git_commit=_commit(night))
    info.started = f"2026-11-{night:02d}T02:{list(RUNNERS).index(runner):02d}:00+00:00"
    records = []
    for name, joules in tests.items():
        record = make_record(name, joules * (1 + 0.004 * ((night * 7) % 5 - 2)))
        record.fingerprint = RUNNERS[runner]
        records.append(record)
    history.append(info, records, make_judgement([make_verdict(n, s, 1.0) for n, s in statuses.items()]))


@pytest.fixture
def fleet_history(tmp_path):
    """14 nights: the H100 runners take turns; test_b was removed after night 6, test_c added on night 12;
    the A100 runner measures test_a every other night, where it never changed."""
    history = History(tmp_path / "history.sqlite")
    for night in range(1, 15):
        step = 1.2 if night >= STEP_NIGHT else 1.0
        tests = {"t.py::test_a": 10.0 * step}
        if night <= 6:
            tests["t.py::test_b"] = 4.0
        if night >= 12:
            tests["t.py::test_c"] = 2.0
        statuses = {"t.py::test_a": "regression" if night >= STEP_NIGHT else "unchanged"}
        _append(history, night, "h100-a" if night % 2 else "h100-b", tests, statuses)
        if night % 2 == 0:
            _append(history, night, "a100-c", {"t.py::test_a": 6.0}, {"t.py::test_a": "unchanged"})
    return tmp_path / "history.sqlite"


def test_every_test_of_the_window_per_device_kind_with_its_step_at_the_right_commit(fleet_history):
    fleet = build_fleet(History(fleet_history))
    assert fleet.runs == 21 and [k.kind for k in fleet.kinds] == [A100, H100]
    a100, h100 = fleet.kinds
    assert h100.runners == ["h100-a", "h100-b"] and h100.runs == 14 and a100.runners == ["a100-c"]
    tests = {t.name: t for t in h100.tests}
    assert list(tests) == ["t.py::test_a", "t.py::test_b", "t.py::test_c"]  # the regression first
    a, b, c = tests.values()
    assert [len(t.trend.points) for t in (a, b, c)] == [14, 6, 3]
    assert (a.status, b.status, c.status) == ("regression", "", "")
    assert a.runners == ["h100-a", "h100-b"] and b.last_started.startswith("2026-11-06")
    step, = a.trend.steps
    assert (step.commit_before, step.commit_after) == (_commit(STEP_NIGHT - 1), _commit(STEP_NIGHT))
    assert step.started.startswith("2026-11-07") and step.ratio == pytest.approx(1.2, abs=0.01)
    assert [p.commit for p in a.trend.points] == [_commit(n) for n in range(1, 15)]
    assert b.trend.steps == [] and c.trend.steps == []
    a100_a, = a100.tests
    assert len(a100_a.trend.points) == 7 and a100_a.trend.steps == [] and a100_a.status == "unchanged"
    assert fleet.steps == 1 and fleet.regressions == 1 and fleet.runners == ["a100-c", "h100-a", "h100-b"]


def test_the_html_shows_every_test_its_dated_trend_and_the_commit_range(fleet_history, tmp_path):
    render_from_history(fleet_history, tmp_path / "nightly.html")
    page = (tmp_path / "nightly.html").read_text()
    h100 = page[page.index(f'data-kind="{H100}"'):]
    for name in ("t.py::test_a", "t.py::test_b", "t.py::test_c"):
        assert f'data-name="{name}"' in h100
    # A trend chart per test with two runs or more and a sparkline in every row; the step on both.
    assert h100.count('<svg class="chart"') == 3 and h100.count('<svg class="spark"') == 3
    assert h100.count('<line class="step"') == 2
    assert f" % at 2026-11-07T02:00:00 ({_commit(6)[:12]}..{_commit(7)[:12]})" in h100
    assert ">2026-11-01</text>" in h100 and f">{_commit(1)[:7]}</text>" in h100  # dates and commits on the axis
    assert "<script" not in page and "h100-b" in h100


def test_the_cli_prints_the_fleet_and_windows_by_count_or_date(fleet_history, tmp_path, capsys):
    out = tmp_path / "nightly.html"
    assert cli.main(["report", "--history", str(fleet_history), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "21 runs" in printed and f"{H100}: 14 runs, 3 tests, runners h100-a, h100-b" in printed
    assert f"step +20.2 % at 2026-11-07T02:00:00 ({_commit(6)[:12]}..{_commit(7)[:12]})" in printed
    assert "2 more tests without change points" in printed and out.exists()

    assert cli.main(["report", "--history", str(fleet_history), "--out", str(out), "--since", "2026-11-10"]) == 0
    recent = capsys.readouterr().out
    assert "8 runs since 2026-11-10T00:00:00" in recent and "step +" not in recent
    assert f"{H100}: 5 runs, 2 tests" in recent  # test_b was last measured before the window

    assert cli.main(["report", "--history", str(fleet_history), "--out", str(out), "--last", "3"]) == 0
    assert "the last 3 runs" in capsys.readouterr().out


def test_a_window_without_runs_or_a_bad_date_is_one_line(fleet_history, tmp_path, capsys):
    out = tmp_path / "nightly.html"
    assert cli.main(["report", "--history", str(fleet_history), "--out", str(out), "--since", "2027-01-01"]) == 2
    assert capsys.readouterr().err.strip() == ("pytest-energy: the history holds no run since 2027-01-01T00:00:00 "
                                               "yet; run `pytest --energy` first or give an earlier --since")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "--history", str(fleet_history), "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "'yesterday': expected a date YYYY-MM-DD or an ISO time" in capsys.readouterr().err
    with pytest.raises(HistoryError, match="no history at"):
        render_from_history(tmp_path / "missing.sqlite", out)


def test_runs_of_the_plugin_that_measured_different_tests_all_show_in_the_nightly(pytester, capsys):
    """Through the plugin: a full run, then a run of one test; the nightly lists both tests."""
    pytester.makepyfile(test_work="""
        def test_a(energy):
            energy(sum, range(20000))

        def test_b(energy):
            energy(sorted, list(range(5000)))
    """)
    fast = ["--energy", "--energy-min-window", "0.02", "--energy-rounds", "3", "--energy-warmup", "1",
            "--energy-idle-seconds", "0.05", "--energy-report", "none", "-p", "no:cacheprovider"]
    pytester.runpytest(*fast).assert_outcomes(passed=2)
    pytester.runpytest(*fast, "-k", "test_a").assert_outcomes(passed=1, deselected=1)
    history = pytester.path / "reports" / "energy-history.sqlite"
    fleet = build_fleet(History(history))
    kind, = fleet.kinds
    runs = {test.name: test.runs for test in kind.tests}
    assert fleet.runs == 2 and runs == {"test_work.py::test_a": 2, "test_work.py::test_b": 1}
    assert len(kind.tests[0].runners) == 1 and kind.tests[0].runners[0] == fleet.runners[0] != ""
    assert cli.main(["report", "--history", str(history), "--out", str(pytester.path / "nightly.html")]) == 0
    page = (pytester.path / "nightly.html").read_text()
    assert 'data-name="test_work.py::test_a"' in page and 'data-name="test_work.py::test_b"' in page


def test_names_from_tests_are_text_in_the_nightly_page(tmp_path):
    history = History(tmp_path / "history.sqlite")
    name = 't.py::test_x[<script>alert(1)</script>]'
    for night in (1, 2):
        _append(history, night, "h100-a", {name: 3.0}, {name: "unchanged"})
    render_from_history(tmp_path / "history.sqlite", tmp_path / "nightly.html")
    page = (tmp_path / "nightly.html").read_text()
    assert "<script" not in page and "t.py::test_x[&lt;script&gt;alert(1)&lt;/script&gt;]" in page
