"""Faults of trust (issue 22): no broken input turns the gate green.

A corrupt baseline file, few rounds, a budget on a frozen counter, a model change without a digest,
another unit of measurement, a round below idle power, a renamed test or a mistyped baseline set each
once read as passed. Unit tests drive gate.py on synthetic records; the `pytest --energy` runs (serially
and with ``-n 2``) measure the fake RAPL package of test_gate_integration.py, or a fake NVML GPU whose
counter is frozen (both from pytest_energy.testing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_energy.core.facts import ModelFacts
from pytest_energy.testing.records import FINGERPRINT, make_record, make_run_info
from test_gate_integration import (ARGS, BASE, CONFTEST, _energy, _record, _record_baselines, _scaled, _settings,
                                   run_energy, store_run)

from pytest_energy.store import baselines as store
from pytest_energy.core.record import Collection
from pytest_energy.judge.gate import judge

HW = FINGERPRINT["id"]


# -- 2. an unreadable baseline file fails the gate ---------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "garbage", "list", "empty"])
def test_an_unreadable_baseline_file_fails_the_gate_unless_updating(tmp_path: Path, damage: str) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE), _record("u.py::b", BASE)])
    path = store.set_folder(tmp_path / "baselines", "default") / "t.py.json"
    text = path.read_text()
    path.write_text({"truncated": text[:200], "garbage": "<<<<<<< HEAD\n" + text, "list": "[1,2,3]",
                     "empty": ""}[damage])
    records = [_record("t.py::a", _scaled(2.0)), _record("u.py::b", BASE)]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    assert judgement.gate_failed and judgement.document({})["outcome"] == "incomplete"
    assert judgement.summary[0].startswith("pytest-energy gate INCOMPLETE: 1 unchanged, 1 incomparable; 1 baseline "
                                           "file unreadable, not compared (see below) (set 'default'")
    assert judgement.summary[1] == (f"pytest-energy: {path} could not be read, so the baselines it holds were not "
                                    "compared and the gate cannot pass; the line below says what is wrong and what "
                                    "to do")
    [error] = judgement.errors
    assert error.startswith(f"pytest-energy: baseline file {path} ")
    assert error.endswith("fix it, or delete it and re-record with --energy-update-baselines (other baselines are "
                          "still used, this file is left as it is)")
    # The incomparable record says why under the head line.
    assert f"t.py::a  baseline file {path} is unreadable (see the error above)" in judgement.summary
    # An update run refuses the file (left as it is) and is not failed by it.
    updating = judge(records, _settings(tmp_path, update_baselines=True), FINGERPRINT, tmp_path)
    assert not updating.gate_failed and not updating.incomplete


# -- 3. few rounds judged as single windows ----------------------------------------------------------
def test_three_rounds_at_twice_the_energy_fail_and_a_small_change_says_why(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE[:3]), _record("t.py::b", BASE[:3])])
    records = [_record("t.py::a", _scaled(2.0, BASE[:3])), _record("t.py::b", _scaled(1.1, BASE[:3]))]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    doubled, small = _energy(judgement, "t.py::a"), _energy(judgement, "t.py::b")
    assert doubled.status == "regression" and doubled.gating and judgement.gate_failed
    assert small.status == "inconclusive"
    assert ("3 rounds here and 3 in the baseline are too few for the rank interval, so they are judged as single "
            "windows are" in small.message)
    assert f"t.py::b  {small.message}" in judgement.summary


# -- 4. a budget that could not be checked fails the gate ---------------------------------------------
def _frozen(name: str, budget: dict | None = None):
    """A record of a frozen GPU counter: rounds, none valid, no energy figure."""
    record = _record(name, BASE)
    for round_ in record.rounds:
        round_.valid = False
    record.components[0].valid = False
    record.components[0].note = "window(s) invalid: the energy counter did not change for 0.3 s (a frozen counter)"
    if budget is not None:
        record.criteria["energy"] = [budget]
    return record


def test_a_budget_not_checked_keeps_its_state_and_fails_the_gate(tmp_path: Path) -> None:
    from pytest_energy.core.budget import EnergyBudget, check

    record = _frozen("t.py::a")
    check([EnergyBudget(0.001)], [record], "t.py::a")  # never raises: there is nothing to exceed
    [entry] = record.criteria["energy"]
    assert entry == {"limit_joules": 0.001, "per": "iteration", "basis": "gross", "met": None,
                     "state": "not checked: every window was invalid (gpu:0: window(s) invalid: the energy counter "
                              "did not change for 0.3 s (a frozen counter))"}
    judgement = judge([record], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert judgement.gate_failed and judgement.incomplete == [
        "pytest-energy: t.py::a: energy budget 1 mJ per iteration not checked: every window was invalid (gpu:0: "
        "window(s) invalid: the energy counter did not change for 0.3 s (a frozen counter)); the gate cannot pass a "
        "budget nobody checked (pytest-energy doctor shows what this runner can measure)"]
    # Not "new": nothing was measured that a baseline could hold.
    assert _energy(judgement, "t.py::a").status == "inconclusive" and judgement.new == []
    # Without baselines compared, and whatever --energy-fail-on-regression says, it still fails.
    for settings in (_settings(tmp_path, baselines="none"), _settings(tmp_path, fail_on_regression=False)):
        assert judge([record], settings, FINGERPRINT, tmp_path).gate_failed


def test_a_per_test_budget_with_one_measurement_unread_is_not_checked() -> None:
    from pytest_energy.core.budget import EnergyBudget, check

    read, frozen = _record("t.py::a", BASE), _frozen("t.py::a")
    check([EnergyBudget(1e6, per="test")], [read, frozen], "t.py::a")  # under it without the frozen one
    assert read.criteria["energy"][0]["met"] is None and frozen.criteria["energy"][0]["met"] is None
    assert read.criteria["energy"][0]["state"] == ("not checked: 1 of the test's measurements have no energy "
                                                   "figure, so its total is unknown")


def test_the_totals_never_read_0_j_for_a_reading_that_was_invalid(tmp_path: Path) -> None:
    from pytest_energy.report import build_report

    record = _frozen("t.py::a")
    judgement = judge([record], _settings(tmp_path), FINGERPRINT, tmp_path)
    line = build_report([record], judgement, make_run_info(), None).totals.line
    assert line == "1 measured, no energy figure: 1 without a valid energy figure (every window invalid); 1 inconclusive"
    both = build_report([record, _record("t.py::b", BASE)], None, make_run_info(), None).totals.line
    assert both == ("2 measured, 750 J gross (0.2083 Wh), 500 J net, 0.014 g CO2eq; 1 without a valid energy figure "
                    "(every window invalid), not counted")


# -- 11. every identity field of the model is compared --------------------------------------------------
def _model_record(**model: str):
    return make_record("t.py::case", 0.2, unit="inference", model=ModelFacts(**{"dtype": "float32", **model}))


def test_a_model_change_without_a_digest_is_a_change(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_model_record(requested="org/m", ran="org/m", dtype="float32")])
    changed = judge([_model_record(requested="org/m", ran="tiny-fallback", dtype="int8")], _settings(tmp_path),
                    FINGERPRINT, tmp_path)
    [model] = [v for v in changed.verdicts if v.metric == "model"]
    assert model.status == "model changed" and model.gating and changed.gate_failed
    assert model.message.startswith("model changed: org/m -> org/m (ran tiny-fallback); dtype float32 -> int8; "
                                    "the gate fails until --energy-update-baselines records the new model")
    # Nothing differs that both name, but no digest proves the same weights: not "unchanged".
    same = judge([_model_record(requested="org/m", ran="org/m", dtype="float32")], _settings(tmp_path),
                 FINGERPRINT, tmp_path)
    [unproven] = [v for v in same.verdicts if v.metric == "model"]
    assert unproven.status == "inconclusive" and not same.gate_failed
    assert unproven.message.startswith("model org/m: this run and the baseline names no digest of the model, so it "
                                       "cannot be told the same as the baseline's")
    assert f"t.py::case  {unproven.message}" in same.summary
    # With digests on both sides, equal ones prove it; the device (the runner's) is never compared.
    _record_baselines(tmp_path, [_model_record(requested="org/m", digest="d1", dtype="float32")])
    on_gpu = _model_record(requested="org/m", digest="d1", dtype="float32")
    on_gpu.model.device = "cuda:0"
    [proven] = [v for v in judge([on_gpu], _settings(tmp_path), FINGERPRINT, tmp_path).verdicts if v.metric == "model"]
    assert proven.status == "unchanged"
    cast = judge([_model_record(requested="org/m", digest="d1", dtype="float16")], _settings(tmp_path),
                 FINGERPRINT, tmp_path)
    [dtype] = [v for v in cast.verdicts if v.metric == "model"]
    assert dtype.status == "model changed" and dtype.message.startswith("model changed: org/m: dtype float32 -> "
                                                                         "float16; the gate fails until")


# -- 12. energy measured in another unit or form ---------------------------------------------------------
def _block(name: str, joules: float):
    """One `with energy.measure()` block of 20 inferences (unit "run"): one window, one iteration."""
    record = make_record(name, joules, rounds=1, iterations=1, unit="run")
    record.form = "block"
    return record


def test_energy_measured_in_another_unit_fails_until_recorded(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_block("t.py::a", 20.0)])
    per_inference = make_record("t.py::a", 2.0)  # twice the energy per inference: 2 J, not 1 J
    per_inference.unit = "inference"
    judgement = judge([per_inference], _settings(tmp_path), FINGERPRINT, tmp_path)
    statuses = {v.metric: v.status for v in judgement.verdicts}
    assert statuses == {"measurement": "regression", "energy": "incomparable"} and judgement.gate_failed
    [measured] = [v for v in judgement.verdicts if v.metric == "measurement"]
    assert measured.message == ("measured differently: unit run -> inference, form block -> call (energy per run in the "
                                "baseline, per inference here), so the energy is not compared; the gate fails until "
                                "--energy-update-baselines records the new measurement")
    assert judgement.summary[1] == f"t.py::a  {measured.message}"
    assert "improvement" not in " ".join(judgement.summary)
    # A case's batch: each call counts as 8 inferences instead of 1.
    _record_baselines(tmp_path, [make_record("t.py::b", 2.0, unit="inference")])
    batched = make_record("t.py::b", 1.0, unit="inference", iterations_per_call=8)
    [changed] = [v for v in judge([batched], _settings(tmp_path), FINGERPRINT, tmp_path).verdicts
                 if v.metric == "measurement"]
    assert changed.message.startswith("measured differently: iterations per call 1 -> 8 ")
    # Recorded: the old measurement's energy goes on every device kind, and the next run compares again.
    settings = _settings(tmp_path, update_baselines=True)
    lines = store_run([per_inference], judge([per_inference], settings, FINGERPRINT, tmp_path), settings,
                    make_run_info())
    assert ("  refreshed t.py::a  (measured differently: the old measurement's energy on every device kind "
            "dropped)") in lines
    entry = store.load_set(tmp_path / "baselines" / "default").baselines["t.py::a"]
    assert (entry.unit, entry.form, entry.iterations_per_call) == ("inference", "call", 1)
    again = judge([per_inference], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert not again.gate_failed and _energy(again, "t.py::a").status == "unchanged"


def test_a_baseline_that_predates_form_and_calls_compares_by_unit_alone(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [make_record("t.py::a", 10.0)])
    path = store.set_folder(tmp_path / "baselines", "default") / "t.py.json"
    data = json.loads(path.read_text())
    assert data["records"]["t.py::a"]["form"] == "call" and data["records"]["t.py::a"]["iterations_per_call"] == 1
    for key in ("form", "iterations_per_call"):
        del data["records"]["t.py::a"][key]
    path.write_text(json.dumps(data))
    judgement = judge([make_record("t.py::a", 10.0)], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert {v.metric: v.status for v in judgement.verdicts} == {"energy": "unchanged"}


# -- 13. a round at or below zero never voids a verdict, and is never recorded ------------------------------
def test_a_round_below_idle_is_not_recorded_and_never_voids_a_verdict(tmp_path: Path) -> None:
    settings = _settings(tmp_path, update_baselines=True)
    dipped = _record("t.py::a", [10.0, -8.9, 9.95, 10.02, 9.98])  # the GPU dipped below its idle power
    store_run([dipped], judge([dipped], settings, FINGERPRINT, tmp_path), settings, make_run_info())
    [energy] = store.load_set(tmp_path / "baselines" / "default").baselines["t.py::a"].energy.values()
    assert [r.net_per_iteration for r in energy.rounds] == pytest.approx([10.0, 9.95, 10.02, 9.98])
    tripled = judge([_record("t.py::a", _scaled(3.0))], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert _energy(tripled, "t.py::a").status == "regression" and tripled.gate_failed
    # From the current side: four rounds at twice the energy and one disturbed round.
    disturbed = judge([_record("t.py::a", [20.0, 20.1, -3.0, 19.9, 20.05])], _settings(tmp_path), FINGERPRINT,
                      tmp_path)
    verdict = _energy(disturbed, "t.py::a")
    assert verdict.status == "regression" and disturbed.gate_failed
    assert "1 of 5 rounds here left out (net energy at or below zero" in verdict.message
    # A baseline recorded before this fix, with such a round stored: left out, with what to do.
    _record_baselines(tmp_path, [_record("t.py::b", [10.0, -8.9, 9.95, 10.02, 9.98])])
    path = store.set_folder(tmp_path / "baselines", "default") / "t.py.json"
    data = json.loads(path.read_text())
    [kind] = data["records"]["t.py::b"]["energy"]
    data["records"]["t.py::b"]["energy"][kind]["rounds"].insert(1, {"iterations": 10, "seconds": 1.0,
                                                                    "by_device": {"gpu:0": -89.0}})
    path.write_text(json.dumps(data))
    old = judge([_record("t.py::b", _scaled(3.0))], _settings(tmp_path), FINGERPRINT, tmp_path)
    stored = _energy(old, "t.py::b")
    assert stored.status == "regression" and stored.message.endswith(
        "1 of 5 rounds of the baseline left out (net energy at or below zero or not finite: a dip below idle power or "
        "a disturbed reading); re-record it with --energy-update-baselines")


# -- 14. baselines no collected test matched ---------------------------------------------------------------
def test_a_renamed_test_lists_its_old_baseline_and_fails_where_baselines_are_required(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::old", BASE), _record("t.py::kept[1]", BASE),
                                 _record("u.py::elsewhere", BASE)])
    collection = Collection(tests={"t.py::new", "t.py::kept[1]"}, whole={"t.py"})
    records = [_record("t.py::new", BASE), _record("t.py::kept[1]", BASE)]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path, collection)
    path = store.set_folder(tmp_path / "baselines", "default") / "t.py.json"
    # u.py was not collected: a run of t.py alone says nothing of its baselines.
    assert judgement.orphaned == [{"name": "t.py::old", "baseline_set": "default", "path": str(path)}]
    assert judgement.document({})["orphaned"] == judgement.orphaned and not judgement.gate_failed
    assert judgement.summary[0].startswith("pytest-energy gate passed: 1 new, 1 unchanged; 1 baseline no collected "
                                           "test matched (set 'default'")
    assert judgement.summary[-2:] == [
        "pytest-energy: 1 baseline no collected test matched (a test renamed, parametrised otherwise or removed): "
        "re-record under the new name with --energy-update-baselines and delete the old entry",
        f"  orphaned  t.py::old  (set 'default', {path})"]
    required = judge(records, _settings(tmp_path, require_baselines=True), FINGERPRINT, tmp_path, collection)
    assert required.gate_failed
    assert required.summary[0].startswith("pytest-energy gate FAILED: 1 new, 1 unchanged; 1 baseline no collected "
                                          "test matched; 2 failing --energy-require-baselines (set")
    assert any(line.startswith("t.py::new  energy: no baseline in 'default' yet") and
               line.endswith("[no baseline: --energy-require-baselines]") for line in required.summary)
    # An update run records the new one and is not failed; a test merely deselected or skipped is matched.
    assert not judge(records, _settings(tmp_path, require_baselines=True, update_baselines=True), FINGERPRINT,
                     tmp_path, collection).gate_failed
    kept_only = Collection(tests={"t.py::old", "t.py::kept[1]"}, whole={"t.py"})
    quiet = judge(records[1:], _settings(tmp_path, require_baselines=True), FINGERPRINT, tmp_path, kept_only)
    assert quiet.orphaned == [] and not quiet.gate_failed


def test_a_collection_covers_only_what_it_collected_whole() -> None:
    collection = Collection()
    root = Path("/project")
    collection.scope(["tests", "suites/test_a.py::test_one", "other/test_b.py"], root, root)
    collection.left_out |= {"tests/skipped.py", "tests/test_c.py::Broken"}
    assert collection.whole == {"tests", "other/test_b.py"} and collection.partial == {"suites/test_a.py"}
    assert collection.covers("tests/test_x.py::t") and collection.covers("other/test_b.py::t[1]")
    assert not collection.covers("suites/test_a.py::test_two")  # named with ::, collected in part
    assert not collection.covers("tests/skipped.py::t") and not collection.covers("tests/test_c.py::Broken::t")
    assert not collection.covers("elsewhere/test_d.py::t") and not collection.covers("testsuite/test_e.py::t")
    everything = Collection()
    everything.scope(["."], root, root)
    assert everything.whole == {""} and everything.covers("anything.py::t")


# -- 15. the head line's counts each have their reason ------------------------------------------------------
def test_a_frozen_counter_with_a_baseline_says_why_and_counts_its_baseline(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE)])
    judgement = judge([_frozen("t.py::a")], _settings(tmp_path), FINGERPRINT, tmp_path)
    verdict = _energy(judgement, "t.py::a")
    assert verdict.status == "inconclusive" and verdict.gating and verdict.baseline_hardware == HW
    assert judgement.summary == [
        f"pytest-energy gate passed: 1 inconclusive (set 'default', hardware {HW}; baselines: 1 verdicts from this "
        "hardware, 0 from other hardware, 0 with none)",
        f"t.py::a  {verdict.message}"]
    assert verdict.message.startswith("energy: every window of this run was invalid")


def test_every_record_counted_inconclusive_or_incomparable_has_its_reason(tmp_path: Path) -> None:
    modelled = {"cpu": "modelled", "ram": "modelled"}
    _record_baselines(tmp_path, [_record("t.py::a", BASE, devices=modelled)])
    _record_baselines(tmp_path, [_record("t.py::b", BASE)], fingerprint=dict(FINGERPRINT, id="other", gpus=[
        {"device": "gpu:0", "name": "NVIDIA A100-SXM4-80GB"}]))
    records = [_record("t.py::a", [10.5, 9.7, 11.4, 10.0, 10.9], devices=modelled), _record("t.py::b", BASE)]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    assert judgement.summary[0].startswith("pytest-energy gate passed: 1 inconclusive, 1 incomparable (set")
    a, b = _energy(judgement, "t.py::a"), _energy(judgement, "t.py::b")
    assert not a.gating and a.status == "inconclusive" and b.status == "incomparable"
    assert judgement.summary[1:] == [f"t.py::a  {a.message}  [not gating]", f"t.py::b  {b.message}"]


# -- `pytest --energy` runs ------------------------------------------------------------------------------
# Energy ratios are asserted on the fake RAPL package of test_gate_integration.py, whose counter advances by
# exactly the joules a test spends (1.5 % seeded noise): a ticking fake GPU on this shared 2-core machine
# sometimes places a round's edge a tick late, which the ratios here must not depend on. The frozen
# counter is a fake NVML GPU's (pytest_energy.testing), as in test_faults_meter.py.
FROZEN_GPU = """
import importlib.util
import sys

from pytest_energy.testing import FakeGpu, FakeNvmlModule

# One fake H100 per process (the controller, each xdist worker) at 80 W, its counter frozen from the start.
sys.modules["pynvml"] = FakeNvmlModule([FakeGpu(power=80.0, frozen_from=0.0)])
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *rest: None if name == "torch" else _find_spec(name, *rest)
"""

ROUNDS = '''
import time


def work(package):
    time.sleep(0.05)  # the counter's 1 ms update period is then 2 % of a window's energy
    package.spend({work})


def test_model(energy, package):
    energy.run(work, args=(package,), iterations=1, rounds={rounds})
'''

BUDGET = '''
import time
import pytest


@pytest.mark.energy(budget="{budget}")
def test_model(energy):
    energy.run(time.sleep, args=(0.02,), rounds=3, min_window=0.25, warmup=0)
'''

BLOCK = '''
def test_model(energy, package):
    with energy.measure():  # 20 inferences of 1 J, one "run"
        for _ in range(20):
            package.spend(1.0)
'''

PER_INFERENCE = '''
def test_model(energy, package):
    energy.run(package.spend, args=(2.0,), iterations=1, unit="inference")
'''

RENAMED = '''
import pytest


@pytest.mark.parametrize("size", [{sizes}])
def test_{name}(energy, package, size):
    energy.run(package.spend, args=(1.0,), iterations=1)


def test_other(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)
'''


def _recording(workers: list[str], extra: tuple[str, ...]) -> list[str]:
    """An update run under xdist takes one worker: under -n 2 the workers share the package, whose energy
    is then never a baseline (issue 25); the judged runs take both."""
    return ["-p", "xdist", "-n", "1"] if "--energy-update-baselines" in extra and "-n" in workers else workers


@pytest.fixture(params=["serial", "xdist"])
def energy_run(request, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Write ``test_trust.py`` from ``source`` and run `pytest --energy` on it (the fake RAPL package, or
    with ``frozen`` a fake GPU whose counter is frozen); returns the result and the JSON document."""
    monkeypatch.setenv("COLUMNS", "300")
    workers = ["-p", "xdist", "-n", "2"] if request.param == "xdist" else ["-p", "no:xdist"]

    def go(source: str, *extra: str, frozen: bool = False, seed: int = 0, **values) -> tuple[pytest.RunResult, dict]:
        pytester.makeconftest(FROZEN_GPU if frozen else CONFTEST)
        pytester.makepyfile(test_trust=source.format(**values))
        monkeypatch.setenv("FAKE_SEED", str(seed))
        out = pytester.path / "out.json"
        out.unlink(missing_ok=True)
        devices = ["--energy-devices", "gpu", "--energy-idle-seconds", "0.3"] if frozen else []
        result = run_energy(pytester, *ARGS, *devices, *_recording(workers, extra), *extra)
        return result, json.loads(out.read_text()) if out.exists() else {}

    go.mode = request.param
    return go


def _text(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def test_a_truncated_baseline_file_with_twice_the_work_fails(energy_run, pytester: pytest.Pytester) -> None:
    recorded, _ = energy_run(ROUNDS, "--energy-update-baselines", work=1.0, rounds=5)
    assert recorded.ret == 0, _text(recorded)
    [path] = (pytester.path / "baselines").rglob("test_trust.py.json")
    path.write_text(path.read_text()[:200])
    result, document = energy_run(ROUNDS, seed=1, work=2.0, rounds=5)
    assert result.ret == 1, _text(result)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "pytest-energy gate INCOMPLETE: 1 incomparable; 1 baseline file unreadable, not compared (see below)*",
        f"pytest-energy: {path} could not be read, so the baselines it holds were not compared and the gate cannot "
        "pass*",
        f"test_trust.py::test_model  baseline file {path} is unreadable*",
        f"pytest-energy: baseline file {path} is not valid JSON*fix it, or delete it and re-record with "
        "--energy-update-baselines*"])
    assert document["gate"]["outcome"] == "incomplete" and document["session"]["exitstatus"] == 1
    assert "Traceback" not in _text(result)
    updating, _ = energy_run(ROUNDS, "--energy-update-baselines", seed=2, work=2.0, rounds=5)
    # Refused and said, never rewritten; not INCOMPLETE, but the update asked for was not written: exit 74.
    assert updating.ret == 74, _text(updating)
    updating.stdout.fnmatch_lines(["pytest-energy gate passed: 1 incomparable; 1 baseline file unreadable*",
                                   "pytest-energy: exit 74: the baselines could not be written*"])
    assert len(path.read_text()) == 200


def test_three_rounds_at_twice_the_energy_fail(energy_run) -> None:
    recorded, _ = energy_run(ROUNDS, "--energy-update-baselines", work=1.0, rounds=3)
    assert recorded.ret == 0, _text(recorded)
    result, _ = energy_run(ROUNDS, seed=1, work=2.0, rounds=3)
    # Under -n 2 the package's counter counts both workers (issue 25): the regression is said, not gating.
    serial = energy_run.mode == "serial"
    assert result.ret == (1 if serial else 0), _text(result)
    result.stdout.fnmatch_lines([
        "pytest-energy gate FAILED: 1 regression*" if serial else
        "pytest-energy gate passed: 1 regression (not gating)*",
        "test_trust.py::test_model  energy (cpu:package-0) +*regression*3 rounds here and 3 in the baseline are too "
        "few for the rank interval, so they are judged as single windows are*"])


def test_a_budgeted_test_on_a_frozen_gpu_counter_fails_incomplete(energy_run) -> None:
    result, document = energy_run(BUDGET, frozen=True, budget="0.001 J")
    assert result.ret == 1, _text(result)
    result.assert_outcomes(passed=1)  # the machine's fault, not the test's
    [record] = document["records"]
    [budget] = record["criteria"]["energy"]
    assert budget["met"] is None and budget["state"].startswith("not checked: every window was invalid (gpu:0: ")
    assert document["gate"]["outcome"] == "incomplete" and document["session"]["exitstatus"] == 1
    result.stdout.fnmatch_lines([
        "1 measured, no energy figure: 1 without a valid energy figure (every window invalid); 1 inconclusive",
        "pytest-energy gate INCOMPLETE: 1 inconclusive (set 'default'*)",
        "pytest-energy: test_trust.py::test_model: energy budget 1 mJ per iteration not checked: every window was "
        "invalid*",
        "test_trust.py::test_model  energy: every window of this run was invalid*"])
    assert " 0 J gross" not in _text(result)


def test_the_same_work_measured_in_another_unit_at_twice_the_energy_fails(energy_run) -> None:
    recorded, _ = energy_run(BLOCK, "--energy-update-baselines")
    assert recorded.ret == 0, _text(recorded)
    result, _ = energy_run(PER_INFERENCE, seed=1)
    assert result.ret == 1, _text(result)
    result.stdout.fnmatch_lines([
        "pytest-energy gate FAILED: 1 regression*",
        "test_trust.py::test_model  measured differently: unit run -> inference, form block -> call (energy per run "
        "in the baseline, per inference here)*"])
    assert "improvement" not in _text(result)


def test_a_mistyped_baseline_set_is_a_usage_error(energy_run, pytester: pytest.Pytester) -> None:
    recorded, _ = energy_run(ROUNDS, "--energy-update-baselines", work=1.0, rounds=3)
    assert recorded.ret == 0, _text(recorded)
    result, _ = energy_run(ROUNDS, "--energy-baseline-set", "defualt", work=1.0, rounds=3)
    assert result.ret == 4, _text(result)
    assert (f"pytest-energy: --energy-baseline-set has 'defualt', but {pytester.path / 'baselines'} holds no such "
            "baseline set (it holds default); give one of those, or record the set with --energy-update-baselines"
            in _text(result))
    assert "Traceback" not in _text(result)
    recorded, _ = energy_run(ROUNDS, "--energy-baseline-set", "defualt", "--energy-update-baselines", work=1.0,
                             rounds=3)
    assert recorded.ret == 0, _text(recorded)  # recording a new set on purpose


def test_a_renamed_test_lists_its_old_baseline_and_required_baselines_fail(energy_run, pytester) -> None:
    recorded, _ = energy_run(RENAMED, "--energy-update-baselines", name="model", sizes="1, 2")
    assert recorded.ret == 0, _text(recorded)
    [path] = (pytester.path / "baselines").rglob("test_trust.py.json")
    result, document = energy_run(RENAMED, name="renamed", sizes="1, 2")
    assert result.ret == 0, _text(result)
    assert sorted(o["name"] for o in document["gate"]["orphaned"]) == [
        "test_trust.py::test_model[1]", "test_trust.py::test_model[2]"]
    result.stdout.fnmatch_lines([
        "pytest-energy gate passed: 2 new, 1 unchanged; 2 baselines no collected test matched*",
        "pytest-energy: 2 baselines no collected test matched (a test renamed, parametrised otherwise or removed)*",
        f"  orphaned  test_trust.py::test_model[[]1[]]  (set 'default', {path})"])
    strict, _ = energy_run(RENAMED, "--energy-require-baselines", name="renamed", sizes="1, 2")
    assert strict.ret == 1, _text(strict)
    strict.stdout.fnmatch_lines(["pytest-energy gate FAILED: 2 new, 1 unchanged; 2 baselines no collected test "
                                 "matched; 4 failing --energy-require-baselines*"])
    # Another parametrisation is the same fault; the ini key turns the option on as well.
    pytester.makeini("[pytest]\nenergy_require_baselines = true\n")
    reparametrised, document = energy_run(RENAMED, name="model", sizes="1, 3")
    assert reparametrised.ret == 1, _text(reparametrised)
    assert [o["name"] for o in document["gate"]["orphaned"]] == ["test_trust.py::test_model[2]"]
    # Deselected, or left out by naming a test on the command line: the others are not orphaned.
    deselected, document = energy_run(RENAMED, "-k", "not other", name="model", sizes="1, 2")
    assert deselected.ret == 0 and document["gate"]["orphaned"] == [], _text(deselected)
    alone, document = energy_run(RENAMED, "test_trust.py::test_other", name="model", sizes="1, 2")
    assert alone.ret == 0 and document["gate"]["orphaned"] == [], _text(alone)
