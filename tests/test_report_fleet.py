"""The nightly report of a fleet: every test of the window per device kind, its trend over dates and
commits, its change points with their commit range, and its runners; from a real SQLite history."""

from __future__ import annotations

import dataclasses
import re

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


# -- what changed: the nightly report's opening ------------------------------------------------------
NIGHTS = 12


def _night(history: History, night: int, runner: str, tests: dict[str, tuple[float, str]],
           failing: dict[str, tuple[float, float]] | None = None) -> None:
    """One nightly run of ``runner`` at night ``night``'s commit: test -> (joules, verdict); ``failing``:
    test -> (accuracy, its budget) missed in this run."""
    info = dataclasses.replace(make_run_info(run_id=f"n{night:02d}-{runner}"), fingerprint=RUNNERS[runner],
                               git_commit=_commit(night))
    info.started = f"2026-11-{night:02d}T02:{list(RUNNERS).index(runner):02d}:00+00:00"
    records = []
    for name, (joules, _) in tests.items():
        record = make_record(name, joules * (1 + 0.004 * ((night * 7) % 5 - 2)))
        record.fingerprint = RUNNERS[runner]
        if name in (failing or {}):
            accuracy, budget = failing[name]
            record.quality = {"accuracy": {"value": accuracy, "computed_by": "evaluate 0.4", "budget": budget,
                                           "budget_met": False}}
            record.outcome = "failed"
        records.append(record)
    verdicts = [make_verdict(name, status, 1.0) for name, (_, status) in tests.items() if status]
    history.append(info, records, make_judgement(verdicts))


@pytest.fixture
def changed_history(tmp_path):
    """12 nights, both H100 runners each night at that night's commit: test_step costs 20 % more from
    night 7 (and is judged a regression from then on), test_new regresses on the last night only,
    test_budget misses its accuracy budget on the last night, test_runner reads 15 % more on h100-b than
    on h100-a every night, and the runners' verdicts on test_verdict differ on the last night."""
    history = History(tmp_path / "history.sqlite")
    for night in range(1, NIGHTS + 1):
        last = night == NIGHTS
        for runner in ("h100-a", "h100-b"):
            step = night >= STEP_NIGHT
            tests = {
                "t.py::test_step": (10.0 * (1.2 if step else 1.0), "regression" if step else "unchanged"),
                "t.py::test_new": (5.0, "regression" if last else "unchanged"),
                "t.py::test_budget": (3.0, "unchanged"),
                "t.py::test_runner": (8.0 * (1.15 if runner == "h100-b" else 1.0), "unchanged"),
                "t.py::test_verdict": (6.0, "regression" if last and runner == "h100-a" else "unchanged"),
            }
            _night(history, night, runner, tests, {"t.py::test_budget": (0.81, 0.9)} if last else None)
    return tmp_path / "history.sqlite"


def test_what_changed_names_each_change_with_its_commit_range(changed_history):
    changed = build_fleet(History(changed_history)).changed
    lines = {group.key: [(c.test.name, c.text, c.commits) for c in group.changes] for group in changed.groups}
    last = f"2026-11-{NIGHTS}T02:01:00"  # h100-b's run, the night's last
    # The regression of the last night's commit, the commits to look in since the last run without one.
    assert lines["new-regressions"] == [
        ("t.py::test_new", f"regression in the run of {last}, the first of the window (commits since "
                           "the last judged without one)", f"{_commit(NIGHTS - 1)[:12]}..{_commit(NIGHTS)[:12]}")]
    assert changed.still_regressed == 1  # test_step, regressed since night 7: not new
    assert lines["missed-budgets"] == [
        ("t.py::test_budget", f"quality budget missed: accuracy 0.81 < 0.9, in the run of {last}",
         _commit(NIGHTS)[:12])]
    assert lines["change-points"] == [
        ("t.py::test_step", f"+20.2 % at 2026-11-{STEP_NIGHT:02d}T02:00:00",  # medians of the noisy levels
         f"{_commit(STEP_NIGHT - 1)[:12]}..{_commit(STEP_NIGHT)[:12]}")]
    (runner_name, runner_text, runner_commits), (verdict_name, verdict_text, verdict_commits) = lines["disagreements"]
    assert (runner_name, runner_commits) == ("t.py::test_runner", "")
    assert runner_text == ("h100-b reads 9.163 J, h100-a 7.968 J (+15.0 %; medians of 12 and 12 runs since "
                           "the window's start)")
    assert (verdict_name, verdict_commits) == ("t.py::test_verdict", _commit(NIGHTS)[:12])
    assert verdict_text == "their verdicts at its latest commit: h100-a regression, h100-b unchanged"
    # Every test had both runners' 24 runs to compare; the stepped one from its change point on.
    assert changed.compared == 5 and changed.detectable == 5
    assert changed.summary == ("1 new regression, 1 test failed in its latest run, 1 change point, 2 tests whose "
                               "runners disagree; 1 test regressed at an earlier commit of the window already "
                               "(first in the table)")


def test_the_page_opens_with_what_changed_each_line_linking_to_its_row(changed_history, tmp_path, capsys):
    out = tmp_path / "nightly.html"
    assert cli.main(["report", "--history", str(changed_history), "--out", str(out)]) == 0
    page = out.read_text()
    opening = page[page.index('<section id="changed">'):page.index('<section class="kind"')]
    assert page.index('<section id="changed">') < page.index("<table")  # before the full table
    links = re.findall(r'<li><a href="#([^"]+)">([^<]+)</a>', opening)
    assert [name for _, name in links] == ["t.py::test_new", "t.py::test_budget", "t.py::test_step",
                                           "t.py::test_runner", "t.py::test_verdict"]
    for anchor, name in links:  # each to the row of its test
        assert f'<tr class="' in page and re.search(f'<tr class="[^"]*" id="{anchor}" data-name="{re.escape(name)}"',
                                                     page)
    assert f"<code>{_commit(STEP_NIGHT - 1)[:12]}..{_commit(STEP_NIGHT)[:12]}</code>" in opening
    # A sparkline per row: the step marked in test_step's, its newest point coloured by its verdict.
    row = page[page.index('data-name="t.py::test_step"'):]
    spark = row[row.index('<svg class="spark"'):row.index("</svg>")]
    assert spark.count('<line class="step"') == 1 and '<circle class="dot s-reg"' in spark
    assert "<script" not in page and "http" not in page.split("</head>")[1]
    printed = capsys.readouterr().out
    assert "What changed: 1 new regression, 1 test failed in its latest run, 1 change point" in printed
    assert (f"    t.py::test_step on {H100}: +20.2 % at 2026-11-{STEP_NIGHT:02d}T02:00:00 "
            f"({_commit(STEP_NIGHT - 1)[:12]}..{_commit(STEP_NIGHT)[:12]})") in printed


def test_a_quiet_window_says_nothing_changed(tmp_path):
    history = History(tmp_path / "history.sqlite")
    for night in range(1, 9):
        for runner in ("h100-a", "h100-b"):
            _night(history, night, runner, {"t.py::test_a": (10.0, "unchanged"), "t.py::test_b": (2.0, "")})
    fleet = render_from_history(tmp_path / "history.sqlite", tmp_path / "nightly.html")
    assert fleet.changed.count == 0 and fleet.changed.still_regressed == 0
    assert fleet.changed.summary == ("Nothing changed in the window: no new regression, no missed budget or failed "
                                     "test in the latest runs, no change point, no runners that disagree")
    page = (tmp_path / "nightly.html").read_text()
    opening = page[page.index('<section id="changed">'):page.index('<section id="summary"')]
    assert "Nothing changed in the window" in opening and "<a href" not in opening
    # What each "none" rests on: both tests had the runs to find a step and to compare the runners.
    assert "no step in the trends (2 tests of the window have the 5 runs on one device kind" in opening
    assert "2 tests measured by several runners of one device kind could be compared" in opening


def test_a_window_too_short_to_judge_says_so(tmp_path):
    history = History(tmp_path / "history.sqlite")
    for night in (1, 2):
        _night(history, night, "h100-a", {"t.py::test_a": (10.0, "unchanged")})
    changed = build_fleet(History(tmp_path / "history.sqlite")).changed
    assert changed.count == 0 and changed.detectable == 0 and changed.compared == 0
    assert "no step in the trends (0 tests of the window have the 5 runs" in changed.groups[2].empty


def test_a_sparkline_draws_the_last_runs_and_keeps_small_noise_flat():
    from pytest_energy.report.sparkline import HEIGHT, sparkline
    from pytest_energy.report.trends import Trend, TrendPoint, steps_of

    def heights(markup: str) -> list[float]:
        line = re.search(r'<polyline class="trend" points="([^"]+)"', markup).group(1)
        return [float(point.split(",")[1]) for point in line.split()]

    noisy = [TrendPoint(f"2026-11-{n:02d}", 10.0 * (1.01 if n % 2 else 0.99), "unchanged") for n in range(1, 41)]
    flat = heights(sparkline(Trend("t", noisy, [])))
    assert len(flat) == 30 and max(flat) - min(flat) < HEIGHT / 4  # 2 % of noise: a fifth of the 10 % it spans
    stepped = noisy[:20] + [dataclasses.replace(p, joules=p.joules * 1.5, status="regression") for p in noisy[20:]]
    markup = str(sparkline(Trend("t", stepped, steps_of(stepped))))
    assert max(heights(markup)) - min(heights(markup)) > HEIGHT / 2
    assert markup.count('<line class="step"') == 1 and '<circle class="dot s-reg"' in markup
    assert "last 30 runs: 9.9 to 15.15 J/iteration, latest 14.85 J" in markup
    assert str(sparkline(Trend("t", [], []))) == ""
