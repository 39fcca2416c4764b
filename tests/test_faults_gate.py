"""Faults of the gate (issue 12): many rounds, absurd baselines, a judge that breaks, one-window records,
positional marker budgets and update runs. None may pass the gate by accident or silence it.

Unit tests drive verdict.py and gate.py directly; the `pytest --energy` runs use the fake RAPL package
of test_gate_integration.py (a counter that advances only by the joules a test spends), serially and
with ``-n 2``.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from pytest_energy.core.facts import CaseFacts
from pytest_energy.testing.records import FINGERPRINT, make_run_info
from test_gate_integration import (ARGS, BASE, CONFTEST, _energy, _record, _record_baselines, _scaled, _settings,
                                   run_energy, store_run)

from pytest_energy.store import baselines as store
from pytest_energy.judge import gate, verdict
from pytest_energy.stats.ranks import rank_sum_counts
from pytest_energy.judge.gate import judge
from pytest_energy.store.history import History
from pytest_energy.core.record import Record
from pytest_energy.judge.verdict import critical_rank, judge_energy, ratio_interval

HW = FINGERPRINT["id"]


# -- many rounds: exact where cheap, the normal approximation beyond -----------------------------------
def test_600_rounds_give_an_interval_not_an_overflow() -> None:
    # The exact count would be C(1200, 600) (~10^359, no float) over 10^8 steps: the normal
    # approximation of U (mean 180000, sd 6002.5) gives the rank at once.
    assert critical_rank(600, 600, 0.01) == 166036
    rng = random.Random(7)
    baseline = [10.0 * math.exp(rng.gauss(0, 0.02)) for _ in range(600)]
    same = [10.0 * math.exp(rng.gauss(0, 0.02)) for _ in range(600)]
    assert judge_energy("t", same, baseline, 0.05, "default").status == "unchanged"
    doubled = judge_energy("t", [2 * v for v in same], baseline, 0.05, "default")
    assert doubled.status == "regression" and doubled.ratio == pytest.approx(2.0, rel=0.01)
    assert doubled.low > 1.9 and doubled.high < 2.1


@pytest.mark.parametrize("n, m", [(79, 79), (60, 100), (20, 600), (5, 600)])
def test_normal_rank_is_close_to_the_exact_one_and_on_its_wide_side(monkeypatch, n: int, m: int) -> None:
    normal = critical_rank(n, m, 0.01)  # these sizes are past the exact limit
    monkeypatch.setattr(verdict, "EXACT_STEPS", 10**9)
    rank_sum_counts.cache_clear()
    exact = critical_rank(n, m, 0.01)
    assert 0.95 * exact <= normal <= exact  # a smaller rank is a wider interval


def test_ties_within_a_sample_narrow_the_normal_interval_but_never_break_it() -> None:
    untied = critical_rank(600, 600, 0.01)
    # Counter readings quantised to three levels: 200 equal values each, in both samples.
    ties = 2 * 3 * (200**3 - 200)
    assert critical_rank(600, 600, 0.01, ties) > untied
    levels = [9.9, 10.0, 10.1] * 200
    same = ratio_interval(levels, levels[::-1])
    assert (same.ratio, same.low, same.high) == (1.0, 1.0, 1.0)
    assert judge_energy("t", [v * 1.5 for v in levels], levels, 0.05, "default").status == "regression"


def test_selected_order_statistics_equal_the_sorted_ones(monkeypatch) -> None:
    rng = random.Random(3)
    current = [round(rng.uniform(9, 11), 2) for _ in range(300)]  # rounded: many equal differences
    baseline = [round(rng.uniform(9, 11), 2) for _ in range(250)]
    sorted_interval = ratio_interval(current, baseline)
    monkeypatch.setattr(verdict, "SORTED_DIFFERENCES", 0)
    assert ratio_interval(current, baseline) == sorted_interval


def test_small_samples_keep_their_exact_ranks() -> None:
    # Published Mann-Whitney tables (as test_verdict.py), through the same function that now also
    # approximates: k is the critical U + 1.
    assert [critical_rank(5, 5, 0.01), critical_rank(10, 10, 0.01), critical_rank(10, 10, 0.025)] == [2, 20, 24]
    assert critical_rank(3, 3, 0.01) == 0


# -- one window: judged against the noise one window can have ------------------------------------------
def _window(name: str, joules: float, *, method: str = "counter", stated: float = 0.0) -> Record:
    """A record of one window (a marked test without the fixture) with ``stated`` joules of uncertainty."""
    device = "cpu" if method == "modelled" else "gpu:0"
    record = _record(name, [joules], devices={device: method})
    record.rounds[0].iterations = 1
    record.rounds[0].net_joules = record.rounds[0].by_device[device] = joules
    for component in record.components:
        component.uncertainty_joules = stated
    return record


def test_one_window_ten_times_the_work_is_a_regression_and_a_small_change_says_why(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_window("t.py::big", 10.0), _window("t.py::small", 10.0)])
    records = [_window("t.py::big", 100.0, stated=0.1), _window("t.py::small", 12.0, stated=0.1)]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    big, small = _energy(judgement, "t.py::big"), _energy(judgement, "t.py::small")
    assert big.status == "regression" and big.gating and big.ratio == pytest.approx(10.0)
    assert "one window here and in the baseline can vary by about ±" in big.message
    assert small.status == "inconclusive" and small.gating
    assert small.message.startswith("energy (gpu:0) +20.0 % [")
    assert "so a smaller change cannot show; measure the work in rounds (energy.run)" in small.message
    assert judgement.gate_failed
    # The reason is in the gate's lines, shown at every verbosity.
    assert f"t.py::small  {small.message}" in judgement.summary


def test_one_window_advice_names_what_its_form_can_change(tmp_path: Path) -> None:
    # Issue 28 (item 2): "measure the work in rounds (energy.run)" is no advice a case or a block can
    # follow; each is told what it can change.
    def measured_as(record, form: str, unit: str | None = None, case: str = ""):
        record.form, record.unit = form, unit or record.unit
        record.case = CaseFacts(case) if case else None
        return record

    forms = {"t.py::tune": ("case", "step", "fine-tune"), "t.py::block": ("block", None, ""),
             "t.py::case": ("case", None, "inference")}
    tune, block, case = (measured_as(_window(name, 12.0), *forms[name]) for name in forms)
    # The baselines were measured the same way (another form would be "measured differently").
    _record_baselines(tmp_path, [measured_as(_window(name, 10.0), *forms[name]) for name in forms])
    judgement = judge([tune, block, case], _settings(tmp_path), FINGERPRINT, tmp_path)
    advice = {name: _energy(judgement, name).message.split("so a smaller change cannot show; ")[1]
              for name in ("t.py::tune", "t.py::block", "t.py::case")}
    assert advice["t.py::tune"].startswith(
        "measure it in rounds (the FineTuneCase's rounds=5 or more, and steps enough for each round to last "
        "--energy-min-window, ")
    assert advice["t.py::block"].startswith(
        "measure it in rounds (block.step() after each step inside energy.measure(iterations=steps), with steps "
        "enough for each round to last --energy-min-window, ")
    assert advice["t.py::case"].startswith("measure it in rounds (the case's rounds=5 or more) for a finer verdict")
    assert all("energy.run" not in text for text in advice.values())


def test_one_window_counts_its_stated_uncertainty(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_window("t.py::a", 10.0)])
    quiet = judge([_window("t.py::a", 20.0, stated=0.2)], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert _energy(quiet, "t.py::a").status == "regression"
    # A reading uncertain by half its value cannot tell twice the energy from noise.
    loose = judge([_window("t.py::a", 20.0, stated=10.0)], _settings(tmp_path), FINGERPRINT, tmp_path)
    wide, narrow = _energy(loose, "t.py::a"), _energy(quiet, "t.py::a")
    assert wide.status == "inconclusive" and not loose.gate_failed
    assert wide.high / wide.ratio > narrow.high / narrow.ratio


def test_modelled_one_window_leaves_out_the_models_scale_error(tmp_path: Path) -> None:
    # The model's stated 30 % is its error against a wall meter, the same on both sides of the ratio.
    _record_baselines(tmp_path, [_window("t.py::a", 10.0, method="modelled")])
    record = _window("t.py::a", 25.0, method="modelled", stated=0.3 * 25.0)
    gated = judge([record], _settings(tmp_path, gate_modelled=True), FINGERPRINT, tmp_path)
    assert _energy(gated, "t.py::a").status == "regression" and gated.gate_failed
    ungated = judge([record], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert not _energy(ungated, "t.py::a").gating and not ungated.gate_failed


def test_one_window_against_a_baseline_of_rounds_uses_their_spread(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE)])
    judgement = judge([_window("t.py::a", 20.0)], _settings(tmp_path), FINGERPRINT, tmp_path)
    doubled = _energy(judgement, "t.py::a")
    assert doubled.status == "regression" and "one window here can vary by about ±" in doubled.message


def test_inconclusive_lines_are_capped_under_the_head_line(tmp_path: Path) -> None:
    names = [f"t.py::w{i:02d}" for i in range(12)]
    _record_baselines(tmp_path, [_window(name, 10.0) for name in names])
    judgement = judge([_window(name, 11.0) for name in names], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert judgement.summary[0].startswith("pytest-energy gate passed: 12 inconclusive (set")
    assert [line.split("  ")[0] for line in judgement.summary[1:11]] == names[:10]
    assert judgement.summary[11] == ("... and 2 more inconclusive (pytest -v or the HTML report gives each "
                                     "reason)")


# -- a record that cannot be judged, and a judge that cannot run ---------------------------------------
def test_absurd_baseline_iterations_make_that_record_inconclusive(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE), _record("t.py::b", BASE)])
    path = store.set_folder(tmp_path / "baselines", "default") / "t.py.json"
    data = json.loads(path.read_text())
    for energy in data["records"]["t.py::a"]["energy"].values():  # each device kind's rounds
        energy["rounds"][0]["iterations"] = 10**400
    path.write_text(json.dumps(data))
    records = [_record("t.py::a", BASE), _record("t.py::b", _scaled(2.0))]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    absurd = _energy(judgement, "t.py::a")
    assert absurd.status == "inconclusive"
    assert absurd.message.startswith("energy: could not be judged (a round holds more than 2**53 iterations")
    reason = absurd.message.removeprefix("energy: could not be judged (").removesuffix(")")
    assert reason.endswith("more than any run counts; fix the baseline file or re-record it with "
                           "--energy-update-baselines")
    assert judgement.errors == [
        f"pytest-energy: t.py::a: could not be judged against 'default' ({reason}); its verdict is inconclusive"]
    assert _energy(judgement, "t.py::b").status == "regression" and judgement.gate_failed


def test_a_fault_while_judging_one_record_names_it_and_the_rest_is_judged(tmp_path, monkeypatch) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE), _record("t.py::b", BASE)])
    real = gate._energy_verdict

    def breaks_on_a(record, *args, **kwargs):
        if record.name == "t.py::a":
            raise ZeroDivisionError("float division by zero")
        return real(record, *args, **kwargs)

    monkeypatch.setattr(gate, "_energy_verdict", breaks_on_a)
    records = [_record("t.py::a", BASE), _record("t.py::b", _scaled(2.0))]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    broken = _energy(judgement, "t.py::a")
    assert broken.status == "inconclusive" and broken.gating
    assert broken.message == "energy: could not be judged (ZeroDivisionError: float division by zero)"
    assert f"t.py::a  {broken.message}" in judgement.summary
    assert judgement.summary[0].startswith("pytest-energy gate FAILED: 1 regression, 1 inconclusive")


def test_unjudged_session_fails_and_keeps_the_rootdir(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    failed = gate.unjudged(OverflowError("int too large to convert to float"), settings, tmp_path)
    assert failed.gate_failed and failed.rootdir == str(tmp_path)
    assert failed.summary == ["pytest-energy gate FAILED: the records could not be judged "
                              "(OverflowError: int too large to convert to float)"]
    relaxed = gate.unjudged(RuntimeError("x"), _settings(tmp_path, fail_on_regression=False), tmp_path)
    assert not relaxed.gate_failed and relaxed.summary[0].startswith("pytest-energy gate not judged:")
    assert relaxed.document({})["outcome"] == "not judged"  # the JSON never says "passed" either


# -- an update run passes for what it rewrote ----------------------------------------------------------
def test_update_run_passes_for_the_regression_it_rewrote(tmp_path: Path) -> None:
    settings = _settings(tmp_path, update_baselines=True)
    below_budget = _record("t.py::b", _scaled(2.0))
    below_budget.quality = {"accuracy": {"value": 0.71, "computed_by": "pytest_energy.cases.metrics", "budget": 0.8}}
    failed = _record("t.py::c", _scaled(2.0), outcome="failed")
    records = [_record("t.py::a", _scaled(2.0)), below_budget, failed]
    _record_baselines(tmp_path, [_record("t.py::a", BASE), _record("t.py::b", BASE), _record("t.py::c", BASE)])
    judgement = judge(records, settings, FINGERPRINT, tmp_path)
    assert judgement.gate_failed
    lines = store_run(records, judgement, settings, make_run_info("run-update"))
    assert "  refreshed t.py::a" in lines and "  refreshed t.py::b" in lines
    assert ("pytest-energy: 2 regressions refreshed by this update no longer fail the gate: t.py::a, t.py::b"
            in lines)
    # b's accuracy is under its budget, which a refresh does not change: it still fails the gate.
    assert judgement.gate_failed
    assert _energy(judgement, "t.py::a").message.endswith("; its baseline was rewritten by this run")
    [accuracy] = [v for v in judgement.verdicts if v.name == "t.py::b" and v.metric == "accuracy"]
    assert accuracy.status == "regression" and accuracy.gating and accuracy.by_budget
    # c's test failed: what changed is shown, never gating and never written (the session fails through
    # the test itself, which the gate's head line names).
    shown = [v for v in judgement.verdicts if v.name == "t.py::c"]
    assert shown and not any(v.gating for v in shown)
    assert judgement.failed == {"t.py::c": "the test failed (not on a budget)"}
    stored = store.load_set(store.set_folder(tmp_path / "baselines", "default")).baselines
    [energy_a] = stored["t.py::a"].energy.values()
    [energy_c] = stored["t.py::c"].energy.values()
    assert energy_a.rounds[0].net_per_iteration == pytest.approx(20.0)
    assert energy_c.rounds[0].net_per_iteration == pytest.approx(10.0)
    [run] = History(tmp_path / "history.sqlite").runs()
    assert run.gate_failed


def test_update_run_passes_when_all_it_rewrote_regressed_but_a_budget_still_gates(tmp_path: Path) -> None:
    settings = _settings(tmp_path, update_baselines=True)
    quality = {"accuracy": {"value": 0.71, "computed_by": "pytest_energy.cases.metrics", "budget": 0.8}}
    _record_baselines(tmp_path, [_record("t.py::a", BASE), _record("t.py::c", BASE)])
    a = _record("t.py::a", _scaled(2.0))
    judgement = judge([a], settings, FINGERPRINT, tmp_path)
    store_run([a], judgement, settings, make_run_info("run-1"))
    assert not judgement.gate_failed
    assert judgement.summary[0].startswith("pytest-energy gate passed: 1 regression (not gating) (set")
    c = _record("t.py::c", BASE)
    c.quality = quality
    budgeted = judge([c], settings, FINGERPRINT, tmp_path)
    store_run([c], budgeted, settings, make_run_info("run-2"))
    assert budgeted.gate_failed  # below its accuracy budget whatever the baseline says


def test_update_run_still_fails_on_the_set_it_only_compares(tmp_path: Path) -> None:
    settings = _settings(tmp_path, update_baselines=True, compare="main")
    _record_baselines(tmp_path, [_record("t.py::a", BASE)], set_name="main")
    _record_baselines(tmp_path, [_record("t.py::a", BASE)])
    records = [_record("t.py::a", _scaled(2.0))]
    judgement = judge(records, settings, FINGERPRINT, tmp_path)
    store_run(records, judgement, settings, make_run_info())
    assert judgement.gate_failed and _energy(judgement, "t.py::a", "main").gating


# -- `pytest --energy` runs ----------------------------------------------------------------------------
MANY_ROUNDS = '''
import pytest


@pytest.mark.energy(rounds=600, min_window=0.0005, warmup=0)
def test_many(energy, package):
    energy.run(package.spend, args=(0.01,), iterations=1)


def test_doubling(energy, package):
    energy.run(package.spend, args=({work},), iterations=1)
'''

WHOLE = '''
import time

import pytest


@pytest.mark.energy
def test_whole(package):
    time.sleep(0.2)  # 50 W, so the counter's 1 ms update period is 1 % of the window's energy
    package.spend({work})
'''


@pytest.fixture(params=["serial", "xdist"])
def energy_run(request, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Write ``test_faults.py`` from ``source``, run `pytest --energy` on it, return the result."""
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\n")
    # One xdist worker: the whole hand-over to the controller, on a package no other worker counts in (under
    # -n 2 the package is shared and its energy never gates, issue 25: tests/test_gate_integration.py).
    workers = ["-n", "1"] if request.param == "xdist" else []

    def go(source: str, *extra: str, seed: int = 0, **values: float) -> pytest.RunResult:
        pytester.makepyfile(test_faults=source.format(**values))
        monkeypatch.setenv("FAKE_SEED", str(seed))
        return run_energy(pytester, *ARGS, *workers, *extra, str(pytester.path / "test_faults.py"))

    return go


def _lines(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def test_600_rounds_beside_a_doubled_test_fail_the_gate(energy_run, pytester: pytest.Pytester) -> None:
    recorded = energy_run(MANY_ROUNDS, "--energy-update-baselines", work=1.0)
    assert recorded.ret == 0, _lines(recorded)
    doubled = energy_run(MANY_ROUNDS, seed=1, work=2.0)
    assert doubled.ret == 1, _lines(doubled)
    doubled.assert_outcomes(passed=2)
    doubled.stdout.fnmatch_lines(["*pytest-energy gate FAILED: 1 regression, 1 unchanged*",
                                  "*test_faults.py::test_doubling  energy (cpu:package-0) +*regression*"])
    assert "could not" not in _lines(doubled) and "Traceback" not in _lines(doubled)
    many = json.loads((pytester.path / "out.json").read_text())["records"]
    assert [len(r["rounds"]) for r in many if r["name"].endswith("test_many")] == [600]
    # The same change with --energy-update-baselines passes and says what it rewrote.
    refreshed = energy_run(MANY_ROUNDS, "--energy-update-baselines", seed=2, work=2.0)
    assert refreshed.ret == 0, _lines(refreshed)
    refreshed.stdout.fnmatch_lines([
        "*pytest-energy gate passed: 1 regression (not gating), 1 unchanged*",
        "*  refreshed test_faults.py::test_doubling*",
        "*1 regression refreshed by this update no longer fails the gate: test_faults.py::test_doubling*"])


def test_marker_only_test_doing_ten_times_the_work_fails_the_gate(energy_run) -> None:
    assert energy_run(WHOLE, "--energy-update-baselines", work=10.0).ret == 0
    more = energy_run(WHOLE, seed=1, work=12.0)  # +20 %: within what one window can vary
    assert more.ret == 0, _lines(more)
    more.stdout.fnmatch_lines([  # the reason, at default verbosity
        "*pytest-energy gate passed: 1 inconclusive*",
        "*test_faults.py::test_whole  energy (cpu:package-0) +*inconclusive*one window here and in the "
        "baseline can vary by about ±*measure the work in rounds (energy.run)*"])
    tenfold = energy_run(WHOLE, seed=2, work=100.0)
    assert tenfold.ret == 1, _lines(tenfold)
    tenfold.assert_outcomes(passed=1)
    tenfold.stdout.fnmatch_lines(["*pytest-energy gate FAILED: 1 regression*",
                                  "*test_faults.py::test_whole  energy (cpu:package-0) +*regression*"])


def test_absurd_baseline_is_one_line_and_the_gate_still_fails(energy_run, pytester: pytest.Pytester) -> None:
    assert energy_run(MANY_ROUNDS, "--energy-update-baselines", work=1.0).ret == 0
    [path] = (pytester.path / "baselines").rglob("test_faults.py.json")
    data = json.loads(path.read_text())
    for energy in data["records"]["test_faults.py::test_many"]["energy"].values():  # each device kind's rounds
        energy["rounds"][0]["iterations"] = 10**400
    path.write_text(json.dumps(data))
    result = energy_run(MANY_ROUNDS, seed=1, work=2.0)
    assert result.ret == 1, _lines(result)
    result.stdout.fnmatch_lines([
        "*pytest-energy gate FAILED: 1 regression, 1 inconclusive*",
        "*test_faults.py::test_many  energy: could not be judged (a round holds more than 2**53 iterations*"])
    assert "Traceback" not in _lines(result)


BREAK_JUDGE = '''
import pytest_energy.judge.gate


def _broken(*args, **kwargs):
    raise OverflowError("int too large to convert to float")


pytest_energy.judge.gate.judge = _broken
'''


def test_a_judge_that_cannot_run_fails_the_gate_and_stores_under_the_rootdir(
        energy_run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(CONFTEST + BREAK_JUDGE)
    elsewhere = pytester.mkdir("elsewhere")
    monkeypatch.chdir(elsewhere)
    result = energy_run(MANY_ROUNDS, "--energy-update-baselines", work=1.0)
    assert result.ret == 1, _lines(result)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*pytest-energy gate FAILED: the records could not be judged "
                                 "(OverflowError: int too large to convert to float)*"])
    assert (pytester.path / "reports" / "energy-history.sqlite").is_file()
    assert list((pytester.path / "baselines").rglob("test_faults.py.json"))
    assert not (elsewhere / "reports").exists() and not (elsewhere / "baselines").exists()


POSITIONAL = '''
import pytest


@pytest.mark.energy("1 mJ")
def test_over(package):
    package.spend(1.0)


@pytest.mark.energy("1 kJ")
def test_under(package):
    package.spend(1.0)


@pytest.mark.energy("1 J", "test")
def test_two_positional(package):
    package.spend(1.0)


@pytest.mark.energy("1 J", budget="2 J")
def test_twice(package):
    package.spend(1.0)
'''


def test_a_positional_budget_is_the_budget_and_more_are_an_error(energy_run, pytester: pytest.Pytester) -> None:
    result = energy_run(POSITIONAL)
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random([
        "*energy budget exceeded: * per iteration (gross, counter) > budget 1 mJ per iteration*",
        "*energy marker: positional arguments '1 J', 'test': the only one it takes is the budget*",
        "*energy marker: the budget is given twice, as '1 J' and budget='2 J'*"])
    assert "Traceback" not in _lines(result)
    by_name = {r["name"].split("::")[-1]: r for r in json.loads((pytester.path / "out.json").read_text())["records"]}
    assert by_name["test_under"]["criteria"]["energy"] == [
        {"limit_joules": 1000.0, "per": "iteration", "basis": "gross", "met": True}]
