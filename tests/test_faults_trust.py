"""Faults of trust (issue 22): no broken input turns the gate green.

A corrupt baseline file, few rounds, a budget on a frozen counter, a model change without a digest,
another unit of measurement, a round below idle power, a renamed test or a mistyped baseline set each
once read as passed. Unit tests drive gate.py on synthetic records; the `pytest --energy` runs measure a
fake NVML GPU (pytest_energy.testing) idling at 80 W whose tests draw a set power above it, serially and
with ``-n 2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import FINGERPRINT, make_record, make_run_info
from test_gate_integration import ARGS, BASE, CONFTEST, _energy, _record, _record_baselines, _scaled, _settings

from pytest_energy import baselines as store
from pytest_energy.gate import judge, persist

HW = FINGERPRINT["id"]


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


# -- 11. every identity field of the model is compared --------------------------------------------------
def _model_record(**model: str):
    extra = {"model": {k: v for k, v in model.items() if k != "dtype"}, "dtype": model.get("dtype", "float32")}
    return make_record("t.py::case", 0.2, unit="inference", extra=extra)


def test_a_model_change_without_a_digest_is_a_change(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_model_record(requested="org/m", ran="org/m", dtype="float32")])
    changed = judge([_model_record(requested="org/m", ran="tiny-fallback", dtype="int8")], _settings(tmp_path),
                    FINGERPRINT, tmp_path)
    [model] = [v for v in changed.verdicts if v.metric == "model"]
    assert model.status == "regression" and model.gating and changed.gate_failed
    assert model.message.startswith("model changed: org/m dtype float32 -> org/m (ran tiny-fallback) dtype int8; "
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
    on_gpu.extra["device"] = "cuda:0"
    [proven] = [v for v in judge([on_gpu], _settings(tmp_path), FINGERPRINT, tmp_path).verdicts if v.metric == "model"]
    assert proven.status == "unchanged"
    cast = judge([_model_record(requested="org/m", digest="d1", dtype="float16")], _settings(tmp_path),
                 FINGERPRINT, tmp_path)
    [dtype] = [v for v in cast.verdicts if v.metric == "model"]
    assert dtype.status == "regression" and "org/m dtype float32 -> org/m dtype float16" in dtype.message


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
    batched = make_record("t.py::b", 1.0, unit="inference")
    batched.count_each_call_as(8)
    [changed] = [v for v in judge([batched], _settings(tmp_path), FINGERPRINT, tmp_path).verdicts
                 if v.metric == "measurement"]
    assert changed.message.startswith("measured differently: iterations per call 1 -> 8 ")
    # Recorded: the old measurement's energy goes on every device kind, and the next run compares again.
    settings = _settings(tmp_path, update_baselines=True)
    lines = persist([per_inference], judge([per_inference], settings, FINGERPRINT, tmp_path), settings,
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
    persist([dipped], judge([dipped], settings, FINGERPRINT, tmp_path), settings, make_run_info())
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
