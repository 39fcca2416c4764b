"""The gate end to end: judge() and the stores on synthetic records, then `pytest --energy` runs (serial and
with `-n 2`) against their own baselines.

The plugin runs measure a CPU package through a fake RAPL tree (the one boundary this machine lacks)
whose counter advances by exactly the work each test declares, times 1.5 % seeded noise per round. On
this shared 2-core machine real (modelled) CPU energy moves by tens of percent between runs with the
other processes' load, so only a controlled source makes "10 % more work is a regression" a fact these
tests can assert every time; the verdict statistics under real-looking noise are tested in
test_verdict.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_energy.core.facts import ModelFacts
from pytest_energy.testing.records import FINGERPRINT, make_record, make_run_info

from pytest_energy.store import baselines as store
from pytest_energy.measure import reference
from pytest_energy.core.config import Settings, resolve
from pytest_energy.judge.gate import append_history, judge, update_baselines
from pytest_energy.store.history import History
from pytest_energy.report import build_report
from pytest_energy.core.record import Record

HW = FINGERPRINT["id"]


# -- judge() and the stores on synthetic records ----------------------------------------------------
def store_run(records: list[Record], judgement: Any, settings: Settings, run_info: Any) -> list[str]:
    """The session's store stages, in its order: the baselines (with --energy-update-baselines), then the
    history row; their lines for the terminal."""
    return (update_baselines(records, judgement, settings, run_info).lines
            + append_history(records, judgement, settings, run_info))


def _settings(tmp_path: Path, **values: Any) -> Settings:
    settings = resolve(True, {}, lambda name: None, environ={})
    settings.values.update(history=str(tmp_path / "history.sqlite"), **values)
    return settings


def _record(name: str, values: list[float], *, devices: dict[str, str] | None = None, quality: dict | None = None,
            criteria: dict | None = None, reference: dict[str, float] | None = None, outcome: str = "passed") -> Record:
    """A record whose rounds give these per-iteration net joules (split evenly over ``devices``)."""
    record = make_record(name.split("::label")[0], values=values, iterations=10, seconds_per_iteration=0.1,
                         idle_watts=50.0, devices=devices, quality=quality, criteria=criteria,
                         reference=reference, outcome=outcome)
    record.name = name
    return record


BASE = [10.0, 10.05, 9.95, 10.02, 9.98]


def _scaled(factor: float, values: list[float] = BASE) -> list[float]:
    return [v * factor for v in values]


A100 = dict(FINGERPRINT, id="nvidia-a100-x1-99999999", cpu_model="AMD EPYC 7763",
            gpus=[{"device": "gpu:0", "name": "NVIDIA A100-SXM4-80GB", "power_limit_watts": 400.0}])


def _record_baselines(tmp_path: Path, records: list[Record], set_name: str = "default",
                      fingerprint: dict[str, Any] = FINGERPRINT) -> None:
    for record in records:
        record.fingerprint = fingerprint
    store.update(store.set_folder(tmp_path / "baselines", set_name), [store.from_record(r) for r in records])


def _energy(judgement, name: str, set_name: str = "default"):
    [verdict] = [v for v in judgement.verdicts
                 if v.name == name and v.metric == "energy" and v.baseline_set == set_name]
    return verdict


def test_missing_baseline_is_new_never_a_failure(tmp_path: Path) -> None:
    judgement = judge([_record("t.py::a", BASE)], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert _energy(judgement, "t.py::a").status == "new"
    assert judgement.new == ["t.py::a"] and not judgement.gate_failed
    assert judgement.summary == [f"pytest-energy gate passed: 1 new (set 'default', hardware {HW}; baselines: "
                                 "0 verdicts from this hardware, 0 from other hardware, 1 with none)"]


def test_regression_fails_the_gate_with_its_size(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE), _record("t.py::b", BASE)])
    records = [_record("t.py::a", _scaled(1.10)), _record("t.py::b", _scaled(1.0, BASE[::-1]))]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    regression, same = _energy(judgement, "t.py::a"), _energy(judgement, "t.py::b")
    assert regression.status == "regression" and regression.ratio == pytest.approx(1.10, abs=0.005)
    assert same.status == "unchanged"
    assert judgement.gate_failed
    assert judgement.summary[0].startswith("pytest-energy gate FAILED: 1 regression, 1 unchanged")
    assert judgement.summary[1].startswith("t.py::a  energy (gpu:0) +10.0 % [+")
    assert judgement.summary[1].endswith("vs 'default': regression (threshold 5 %)")
    relaxed = judge(records, _settings(tmp_path, fail_on_regression=False), FINGERPRINT, tmp_path)
    assert not relaxed.gate_failed and _energy(relaxed, "t.py::a").status == "regression"


def test_improvement_is_reported_for_a_refresh(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE)])
    judgement = judge([_record("t.py::a", _scaled(0.90))], _settings(tmp_path), FINGERPRINT, tmp_path)
    verdict = _energy(judgement, "t.py::a")
    assert verdict.status == "improvement" and not judgement.gate_failed
    assert "--energy-update-baselines" in verdict.message
    assert any(line.startswith("t.py::a  energy (gpu:0) -10.0 %") for line in judgement.summary)


def test_modelled_energy_gates_only_when_asked(tmp_path: Path) -> None:
    modelled = {"cpu": "modelled", "ram": "modelled"}
    _record_baselines(tmp_path, [_record("t.py::a", BASE, devices=modelled)])
    records = [_record("t.py::a", _scaled(1.2), devices=modelled)]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    verdict = _energy(judgement, "t.py::a")
    assert verdict.status == "regression" and not verdict.gating and not judgement.gate_failed
    assert "modelled energy: not gating (--energy-gate-modelled gates it)" in verdict.message
    assert judgement.summary[0].startswith("pytest-energy gate passed: 1 regression (not gating) (set")
    assert judgement.summary[1].endswith("[not gating]")
    asked = judge(records, _settings(tmp_path, gate_modelled=True), FINGERPRINT, tmp_path)
    assert asked.gate_failed and _energy(asked, "t.py::a").gating


def test_measured_devices_are_judged_without_the_modelled_ones(tmp_path: Path) -> None:
    mixed = {"gpu:0": "counter", "cpu": "modelled"}
    baseline = _record("t.py::a", BASE, devices=mixed)
    _record_baselines(tmp_path, [baseline])
    current = _record("t.py::a", BASE, devices=mixed)
    for round_ in current.rounds:  # the modelled CPU share doubles (another process loaded the CPU)
        round_.by_device["cpu"] *= 2
        round_.net_joules = sum(round_.by_device.values())
    judgement = judge([current], _settings(tmp_path), FINGERPRINT, tmp_path)
    verdict = _energy(judgement, "t.py::a")
    assert verdict.status == "unchanged" and verdict.gating and verdict.message.startswith("energy (gpu:0) ")


def test_baseline_from_another_gpu_judges_quality_but_not_energy(tmp_path: Path) -> None:
    # Was: every verdict "incomparable". Quality depends on no hardware, so it is judged (and the line
    # names the runner); the A100's energy is another device kind, never compared with an H100's.
    _record_baselines(tmp_path, [_record("t.py::a", _scaled(0.5), quality={"rougeL": 0.4})], fingerprint=A100)
    judgement = judge([_record("t.py::a", BASE, quality={"rougeL": 0.4})], _settings(tmp_path), FINGERPRINT, tmp_path)
    statuses = {(v.metric, v.status, v.gating) for v in judgement.verdicts}
    assert statuses == {("energy", "incomparable", False), ("rougeL", "unchanged", True)}
    energy = _energy(judgement, "t.py::a")
    assert energy.message.startswith("energy: no baseline measured on gpu: NVIDIA H100 80GB HBM3 x1 in 'default' "
                                     "yet (it holds gpu: NVIDIA A100-SXM4-80GB x1)")
    [rouge] = [v for v in judgement.verdicts if v.metric == "rougeL"]
    assert rouge.message.endswith("; baseline from other hardware (nvidia-a100-x1-99999999)")
    assert not judgement.gate_failed and judgement.new == []
    assert judgement.summary[0].endswith("baselines: 0 verdicts from this hardware, 1 from other hardware, "
                                         "1 with none)")


def test_broken_baseline_file_is_one_error_and_the_rest_goes_on(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("a.py::x", BASE), _record("b.py::y", BASE)])
    broken = store.set_folder(tmp_path / "baselines", "default") / "a.py.json"
    broken.write_text(broken.read_text()[:-40])
    records = [_record("a.py::x", BASE), _record("b.py::y", _scaled(1.1))]
    settings = _settings(tmp_path, update_baselines=True)
    judgement = judge(records, settings, FINGERPRINT, tmp_path)
    assert len(judgement.errors) == 1 and str(broken) in judgement.errors[0]
    assert judgement.summary[0].startswith("pytest-energy gate FAILED: 1 regression, 1 incomparable; "
                                           "1 baseline file unreadable, not compared (see below) (set")
    assert _energy(judgement, "a.py::x").status == "incomparable"
    assert _energy(judgement, "b.py::y").status == "regression"
    before = broken.read_text()
    lines = store_run(records, judgement, settings, make_run_info())
    assert broken.read_text() == before
    assert not any(str(broken) in line for line in lines)  # judge() already gave its one line
    assert any("1 written, 0 unchanged kept, 1 refused (their file is unreadable" in line for line in lines)


def test_compare_set_gives_verdicts_labelled_with_it(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE)], set_name="main")
    judgement = judge([_record("t.py::a", _scaled(1.1))], _settings(tmp_path, compare="main"), FINGERPRINT, tmp_path)
    assert _energy(judgement, "t.py::a").status == "new"
    main = _energy(judgement, "t.py::a", "main")
    assert main.status == "regression" and "vs 'main'" in main.message
    assert judgement.gate_failed and judgement.new == ["t.py::a"]
    # The report shows the change against the set compared and updated; its status, the most urgent.
    _record_baselines(tmp_path, [_record("t.py::a", _scaled(1.1))])
    both = judge([_record("t.py::a", _scaled(1.1))], _settings(tmp_path, compare="main"), FINGERPRINT, tmp_path)
    [row] = build_report([_record("t.py::a", _scaled(1.1))], both, make_run_info(), None).rows
    assert row.status == "regression" and row.change.ratio == pytest.approx(1.0, abs=0.01)
    better = judge([_record("t.py::a", _scaled(0.9))], _settings(tmp_path, compare="main"), FINGERPRINT, tmp_path)
    assert _energy(better, "t.py::a", "main").message.endswith(
        "refresh the baseline with --energy-update-baselines --energy-baseline-set main")


def test_per_test_and_per_metric_thresholds(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE, quality={"rougeL": 0.40}),
                                 _record("t.py::b", BASE), _record("t.py::c", BASE)])
    records = [
        _record("t.py::a", _scaled(1.1), quality={"rougeL": 0.39},
                criteria={"threshold": 0.2, "thresholds": {"rougeL": {"atol": 0.005}}}),
        _record("t.py::b", _scaled(1.04), criteria={"thresholds": {"energy": 0.02}}),
        _record("t.py::c", _scaled(1.1), criteria={"threshold": "lots", "gate": False}),
    ]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    a = {v.metric: v for v in judgement.verdicts if v.name == "t.py::a"}
    assert a["energy"].status != "regression" and a["energy"].threshold == 0.2
    assert a["rougeL"].status == "regression" and "tolerance 0.005" in a["rougeL"].message
    assert _energy(judgement, "t.py::b").status == "regression"
    c = _energy(judgement, "t.py::c")
    assert c.status == "regression" and not c.gating and c.threshold == 0.05
    assert judgement.errors == ["pytest-energy: t.py::c: energy marker threshold = 'lots': expected a fraction "
                                ">= 0 such as 0.05, or {'atol': 0.01} / {'rtol': 0.05} (ignored: the next of thresholds, "
                                "threshold, --energy-min-effect applies)"]


def test_quality_budget_from_the_case_is_judged(tmp_path: Path) -> None:
    quality = {"accuracy": {"value": 0.71, "computed_by": "pytest_energy.cases.metrics", "budget": 0.8}}
    record = _record("t.py::a", BASE)
    record.quality = quality
    judgement = judge([record], _settings(tmp_path), FINGERPRINT, tmp_path)
    [verdict] = [v for v in judgement.verdicts if v.metric == "accuracy"]
    assert verdict.status == "regression" and judgement.gate_failed
    assert "accuracy 0.71 is below the minimum budget 0.8" in verdict.message


def _working(name: str, flops: float, values: list[float] = BASE, **kwargs: Any) -> Record:
    record = _record(name, values, devices={"cpu": "modelled", "ram": "modelled"}, **kwargs)
    record.proxies = {"parameters": 4e6, "flops": flops * 1000, "flops_per_inference": flops}
    return record


def test_counted_work_gates_even_where_energy_is_modelled(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_working("t.py::a", 2.0e7), _working("t.py::b", 2.0e7), _working("t.py::c", 2.0e7)])
    records = [_working("t.py::a", 4.0e7, _scaled(2.0)),  # twice the FLOPs: the modelled energy may not gate...
               _working("t.py::b", 2.0e7, _scaled(1.3)),  # ...and modelled noise alone is not a failure
               _working("t.py::c", 1.8e7)]
    judgement = judge(records, _settings(tmp_path), FINGERPRINT, tmp_path)
    work = {v.name: v for v in judgement.verdicts if v.metric == "flops_per_inference"}
    assert work["t.py::a"].status == "regression" and work["t.py::a"].gating
    assert work["t.py::a"].ratio == pytest.approx(2.0)
    assert work["t.py::a"].message == ("flops_per_inference 4e+07 vs 2e+07 (+100.0 %) in 'default': "
                                       "regression (threshold 5 %)")
    assert work["t.py::b"].status == "unchanged"
    assert work["t.py::c"].status == "improvement"
    assert not _energy(judgement, "t.py::a").gating and not _energy(judgement, "t.py::b").gating
    assert judgement.gate_failed
    # Records counted by their most urgent verdict; b's modelled energy is a regression that does not gate.
    assert judgement.summary[0].startswith("pytest-energy gate FAILED: 2 regression (1 not gating), 1 improvement (set")
    assert [line.split("  ")[0] for line in judgement.summary[1:]] == ["t.py::a", "t.py::a", "t.py::b", "t.py::c"]
    # A fine-tune has no per-inference FLOPs: its whole run's are judged; a per-metric threshold applies.
    tune = _working("t.py::d", 1.0)
    tune.proxies = {"flops": 1.04e12, "flops_per_step": 1.04e10}
    old = _working("t.py::d", 1.0)
    old.proxies = {"flops": 1.0e12}
    _record_baselines(tmp_path, [old])
    strict = dataclasses.replace(tune, criteria={"thresholds": {"flops": 0.01}})
    [verdict] = [v for v in judge([strict], _settings(tmp_path), FINGERPRINT, tmp_path).verdicts if v.metric == "flops"]
    assert verdict.status == "regression" and verdict.threshold == 0.01


def test_baseline_without_a_work_proxy_reads_as_new_for_it(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE)])  # recorded before the FLOP proxy was stored
    judgement = judge([_working("t.py::a", 2.0e7)], _settings(tmp_path), FINGERPRINT, tmp_path)
    [verdict] = [v for v in judgement.verdicts if v.metric == "flops_per_inference"]
    assert verdict.status == "new" and not judgement.gate_failed
    # The other way round: a baseline with a count that this run no longer makes is said, not dropped.
    _record_baselines(tmp_path, [_working("t.py::b", 2.0e7)])
    uncounted = judge([_record("t.py::b", BASE)], _settings(tmp_path), FINGERPRINT, tmp_path)
    [gone] = [v for v in uncounted.verdicts if v.metric == "flops_per_inference"]
    assert gone.status == "inconclusive" and not gone.gating and not uncounted.gate_failed
    assert gone.message.startswith("flops_per_inference: this run counted none (the baseline holds 2e+07)")
    # The gate's head line and the report rank a record's verdicts the same way.
    assert judgement.summary[0].startswith("pytest-energy gate passed: 1 new (set")
    [row] = build_report([_working("t.py::a", 2.0e7)], judgement, make_run_info(), None).rows
    assert row.status == "new"


def test_normalised_verdict_cancels_a_hotter_device(tmp_path: Path) -> None:
    _record_baselines(tmp_path, [_record("t.py::a", BASE, reference={"gpu:0": 100.0})])
    hotter = _record("t.py::a", _scaled(1.1), reference={"gpu:0": 110.0})  # same work, every joule 10 % dearer
    raw = judge([hotter], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert _energy(raw, "t.py::a").status == "regression"
    normalised = judge([hotter], _settings(tmp_path, normalise=True), FINGERPRINT, tmp_path)
    verdict = _energy(normalised, "t.py::a")
    assert verdict.status == "unchanged" and verdict.message.startswith("normalised energy")
    bare = judge([_record("t.py::a", BASE)], _settings(tmp_path, normalise=True), FINGERPRINT, tmp_path)
    assert _energy(bare, "t.py::a").status == "incomparable"
    assert "this run has no reference-workload joules for gpu:0" in _energy(bare, "t.py::a").message


def test_normalised_verdict_divides_each_device_by_its_own_reference(tmp_path: Path) -> None:
    mixed = {"gpu:0": "counter", "cpu": "modelled"}
    _record_baselines(tmp_path, [_record("t.py::a", BASE, devices=mixed, reference={"gpu:0": 100.0, "cpu": 50.0})])
    # The GPU runs 10 % dearer; the modelled CPU's reference doubled with another process's load. Only
    # the GPU is judged, so only its reference may scale it (the sum of both would read -14 %).
    hotter = _record("t.py::a", _scaled(1.1), devices=mixed, reference={"gpu:0": 110.0, "cpu": 100.0})
    verdict = _energy(judge([hotter], _settings(tmp_path, normalise=True), FINGERPRINT, tmp_path), "t.py::a")
    assert verdict.status == "unchanged" and verdict.message.startswith("normalised energy (gpu:0) ")
    assert verdict.ratio == pytest.approx(1.0, abs=0.01)


def test_reference_workload_is_fixed_cpu_work_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    workload = reference.reference_workload("cpu")
    started = time.process_time()
    workload()
    spent = time.process_time() - started
    assert 0.0005 < spent < 0.5  # a 48x48 product in pure Python: milliseconds
    assert workload.__qualname__ == "_cpu_workload.<locals>.workload"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else real_find_spec(name, *rest))
    assert reference.reference_workload("gpu:1") is None  # CPU work would say nothing of a GPU
    assert reference.reference_workload("cpu:package-0").__qualname__ == "_cpu_workload.<locals>.workload"


@pytest.mark.parametrize("session_window, reference_window", [(0.02, 0.02), (1.0, reference.WINDOW_SECONDS)])
def test_the_reference_fills_windows_no_longer_than_the_sessions_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_window: float, reference_window: float) -> None:
    from pytest_energy.measure.meter import Meter
    from pytest_energy.measure.sources import detect

    meter = Meter(detect("cpu", rapl_root=str(tmp_path / "no-powercap")).channels)  # the modelled CPU
    meter.start(None)
    windows: list[float] = []
    account = meter.account

    def recorded(*args: Any, **kwargs: Any) -> Any:
        measured = account(*args, **kwargs)
        windows.extend(r.seconds for r in measured.rounds)
        return measured

    monkeypatch.setattr(meter, "account", recorded)
    try:
        joules = reference.measure(meter, session_window)
    finally:
        meter.close()
    assert set(joules) == {"cpu"} and joules["cpu"] > 0
    assert len(windows) == 3 and all(reference_window <= w < 2 * reference_window + 0.02 for w in windows), windows


def test_reference_workload_on_a_gpu_uses_cuda_where_torch_sees_it() -> None:
    torch = pytest.importorskip("torch")
    workload = reference.reference_workload("gpu:0")
    if not torch.cuda.is_available():
        assert workload is None
        pytest.skip("torch sees no CUDA GPU here: the GPU reference workload cannot run")
    assert workload.__qualname__ == "_gpu_workload.<locals>.workload"
    workload()


def test_an_update_refreshes_only_what_changed_and_lists_unused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, update_baselines=True)
    first = [_record("t.py::a", BASE), _record("t.py::b", BASE), _record("t.py::c", BASE),
             _record("t.py::gone", BASE)]
    lines = store_run(first, judge(first, settings, FINGERPRINT, tmp_path), settings, make_run_info("run-1"))
    assert any("4 written, 0 unchanged kept" in line for line in lines)
    path = store.set_folder(tmp_path / "baselines", "default") / "t.py.json"
    second = [_record("t.py::a", BASE[::-1]), _record("t.py::b", _scaled(1.1)),
              _record("t.py::c", BASE[::-1], outcome="failed"), _record("t.py::new", BASE, outcome="failed")]
    judgement = judge(second, settings, FINGERPRINT, tmp_path)
    lines = store_run(second, judgement, settings, make_run_info("run-2"))
    # c is unchanged but failed: counted once, as not written.
    assert any("1 written, 1 unchanged kept, 2 not written (test not passed, or no valid round)" in line for line in lines)
    assert "  refreshed t.py::b" in lines
    assert any(line.startswith("  unused    t.py::gone") and str(path) in line for line in lines)
    stored = store.load_set(path.parent).baselines
    [energy] = stored["t.py::b"].energy.values()
    assert energy.rounds[0].net_per_iteration == pytest.approx(11.0)
    assert "t.py::new" not in stored
    assert sorted(r.run_id for r in History(tmp_path / "history.sqlite").runs()) == ["run-1", "run-2"]


def test_a_record_without_a_valid_window_records_its_quality_work_and_model_which_then_gate(tmp_path: Path) -> None:
    """A runner whose counter gave no valid window (a VM's frozen RAPL) used to record nothing, so its
    quality, work and model never gated there: they are recorded without energy."""
    def frozen(digest: str, accuracy: float) -> Record:
        record = _record("t.py::case", BASE, quality={"accuracy": accuracy})
        record.proxies = {"flops_per_inference": 1e6}
        record.model = ModelFacts("org/m", "org/m", "folder", digest)
        for round_ in record.rounds:
            round_.valid = False
        assert not record.valid
        return record

    settings = _settings(tmp_path, update_baselines=True)
    first = [frozen("aaaa", 0.9), _record("t.py::plain", BASE)]
    first[1].rounds = [dataclasses.replace(r, valid=False) for r in first[1].rounds]  # nothing else to record
    lines = store_run(first, judge(first, settings, FINGERPRINT, tmp_path), settings, make_run_info("run-1"))
    assert any(line.endswith("1 written (1 without energy: no valid window, so its quality, work and model only), "
                             "0 unchanged kept, 1 not written (test not passed, or no valid round)") for line in lines)
    [(name, entry)] = store.load_set(store.set_folder(tmp_path / "baselines", "default")).baselines.items()
    assert name == "t.py::case" and entry.energy == {} and entry.quality == {"accuracy": 0.9}
    assert entry.work == {"flops_per_inference": 1e6} and entry.model["digest"] == "aaaa"
    judgement = judge([frozen("bbbb", 0.9)], _settings(tmp_path), FINGERPRINT, tmp_path)
    assert {v.metric: v.status for v in judgement.verdicts}["model"] == "model changed" and judgement.gate_failed


def test_an_unchanged_entry_recorded_before_a_fact_was_kept_is_rewritten_with_it(tmp_path: Path) -> None:
    """Baselines recorded before a case's settings were part of its model kept being "unchanged", so an
    update never added them and a settings change could never be told: an update adds what they lack."""
    def case(settings: dict | None) -> Record:
        record = _record("t.py::case", BASE, quality={"accuracy": 0.9})
        record.model = ModelFacts("org/m", "org/m", "folder", "aaaa", settings=dict(settings or {}))
        return record

    settings = _settings(tmp_path, update_baselines=True)
    store_run([case(None)], judge([case(None)], settings, FINGERPRINT, tmp_path), settings, make_run_info("run-1"))
    folder = store.set_folder(tmp_path / "baselines", "default")
    [old] = store.load_set(folder).baselines.values()
    assert "settings" not in old.model
    again = [case(None)]
    lines = store_run(again, judge(again, settings, FINGERPRINT, tmp_path), settings, make_run_info("run-2"))
    assert any(line.endswith(": 0 written, 1 unchanged kept") for line in lines)  # nothing new: no churn
    newer = [case({"max_new_tokens": 40})]
    lines = store_run(newer, judge(newer, settings, FINGERPRINT, tmp_path), settings, make_run_info("run-3"))
    assert any(line.endswith(": 1 written, 0 unchanged kept") for line in lines)
    [entry] = store.load_set(folder).baselines.values()
    assert entry.model["settings"] == {"max_new_tokens": 40} and entry.energy == old.energy
    # Training runs measured by --energy-quality-seeds are recorded though every verdict is unchanged;
    # the same runs again (figures of more digits than a baseline keeps) are no change.
    for _ in range(2):
        seeded = [case({"max_new_tokens": 40})]
        seeded[0].quality["accuracy"]["runs"] = [{"value": 0.9, "seed": 0, "threads": 2},
                                                 {"value": 0.8123456789, "seed": 1, "threads": 1}]
        lines = store_run(seeded, judge(seeded, settings, FINGERPRINT, tmp_path), settings, make_run_info("run-4"))
        assert any(line.endswith(f": {1 - _} written, {_} unchanged kept") for line in lines), lines
    [entry] = store.load_set(folder).baselines.values()
    assert [run.values for run in entry.runs] == [{"accuracy": 0.9}, {"accuracy": 0.812346}]


def test_interrupted_run_keeps_history_but_not_baselines(tmp_path: Path) -> None:
    settings = _settings(tmp_path, update_baselines=True)
    records = [_record("t.py::a", BASE)]
    run_info = dataclasses.replace(make_run_info("run-int"), exitstatus=2)
    lines = store_run(records, judge(records, settings, FINGERPRINT, tmp_path), settings, run_info)
    assert "pytest-energy: the run was interrupted; baselines not updated" in lines
    assert not (tmp_path / "baselines").exists()
    assert [r.run_id for r in History(tmp_path / "history.sqlite").runs()] == ["run-int"]


# -- `pytest --energy` runs with a controlled energy source -----------------------------------------
CONFTEST = '''
import os
import random
import tempfile
from pathlib import Path

import pytest

from pytest_energy.testing import make_powercap

# Each process (controller, xdist worker) gets its own fake package counter, which advances only by
# the joules the tests spend, with 1.5 % seeded noise per call.
_tree = make_powercap(Path(tempfile.mkdtemp(prefix="rapl-", dir=Path(__file__).parent)), dram=False)
os.environ["PYTEST_ENERGY_POWERCAP"] = str(_tree.root)
_rng = random.Random(os.environ.get("FAKE_SEED", "0") + os.environ.get("PYTEST_XDIST_WORKER", ""))


class Package:
    microjoules = 0

    def spend(self, joules):
        Package.microjoules += round(joules * 1e6 * (1 + _rng.gauss(0, 0.015)))
        _tree.set_energy("intel-rapl:0", Package.microjoules)


@pytest.fixture
def package():
    return Package()
'''

TESTS_FILE = '''
WORK = {work}


def test_model(energy, package):
    energy.run(package.spend, args=(WORK,), iterations=1)


def test_steady(energy, package):
    energy.run(package.spend, args=(2.0,), iterations=1)


def test_labelled(energy, package):
    energy.run(package.spend, args=(0.5,), iterations=1, label="prefill")
'''


def run_energy(pytester: pytest.Pytester, *args: str, **kwargs: Any) -> pytest.RunResult:
    """``pytest *args`` on pytester's folder: in this process where its conftest is :data:`CONFTEST` (the
    fake package, which reaches the plugin through the environment alone, restored after each test), in a
    subprocess where the conftest patches the interpreter (a fake pynvml, ``os`` functions, the judge),
    which must not outlive its run. A started process costs ~0.5 s of CPU; the tests start hundreds."""
    conftest = pytester.path / "conftest.py"
    own_process = conftest.exists() and conftest.read_text().strip() == CONFTEST.strip()
    return (pytester.runpytest if own_process else pytester.runpytest_subprocess)(*args, **kwargs)


ARGS = ["-p", "no:cacheprovider", "--energy", "--energy-devices", "cpu", "--energy-rounds", "5",
        "--energy-min-window", "0.02", "--energy-idle-seconds", "0.05", "--energy-warmup", "1",
        "--energy-report", "none", "--energy-json", "out.json"]


@pytest.fixture(params=["serial", "xdist"])
def run(request, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Write the test file with ``work`` joules per call of test_model, run pytest, return the result."""
    pytester.makeconftest(CONFTEST)
    workers = ["-n", "2"] if request.param == "xdist" else []

    def go(work: float, seed: int, *extra: str) -> pytest.RunResult:
        pytester.makepyfile(test_gate=TESTS_FILE.format(work=work))
        monkeypatch.setenv("FAKE_SEED", str(seed))
        # An update run under xdist takes one worker: under -n 2 the workers share the package, whose
        # energy is then never a baseline (issue 25); the judged runs take both.
        recording = workers and "--energy-update-baselines" in extra
        return run_energy(pytester, *ARGS, *(["-n", "1"] if recording else workers), *extra)

    go.mode = request.param
    return go


def _records(pytester: pytest.Pytester) -> dict[str, dict]:
    document = json.loads((pytester.path / "out.json").read_text())
    return {r["name"]: r for r in document["records"]}


def _verdicts(pytester: pytest.Pytester) -> dict[str, str]:
    """Energy verdicts of the newest run, from the history store."""
    path = pytester.path / "reports" / "energy-history.sqlite"
    latest = History(path).runs(1)[0].run_id
    return {v["name"]: v["status"] for v in History(path).verdicts(latest) if v["metric"] == "energy"}


def test_same_code_passes_and_ten_percent_more_work_fails(run, pytester: pytest.Pytester) -> None:
    recorded = run(1.0, 0, "--energy-update-baselines")
    recorded.assert_outcomes(passed=3)
    assert recorded.ret == 0
    recorded.stdout.fnmatch_lines(["*baselines*: 3 written, 0 unchanged kept*"])
    for seed in (1, 2):  # A/A: the same code against its own baseline, run after run
        same = run(1.0, seed)
        assert same.ret == 0, same.stdout.str()
        assert set(_verdicts(pytester).values()) <= {"unchanged", "inconclusive"}
    more = run(1.1, 3)  # A/B: 10 % more work
    more.assert_outcomes(passed=3)
    if run.mode == "serial":
        assert more.ret == 1  # every test passed: the gate alone turned the session red
        more.stdout.fnmatch_lines(["*pytest-energy gate FAILED: 1 regression, 2 unchanged*",
                                   "*test_gate.py::test_model  energy (cpu:package-0) +*.* % [[]+*, +*[]] vs "
                                   "'default': regression (threshold 5 %)*"])
    else:  # the package's counter counts both workers' work in each window (issue 25): said, never gating
        assert more.ret == 0
        more.stdout.fnmatch_lines(["*pytest-energy gate passed: 1 regression (not gating), 2 unchanged*",
                                   "*test_gate.py::test_model  energy (cpu:package-0) +*.* % [[]+*, +*[]] vs "
                                   "'default': regression (threshold 5 %)*cpu:package-0 shared with 2 workers: not "
                                   "gating (run it without -n to gate it)*"])
    assert _verdicts(pytester)["test_gate.py::test_model"] == "regression"
    less = run(0.9, 4)  # 10 % less work
    assert less.ret == 0
    assert _verdicts(pytester)["test_gate.py::test_model"] == "improvement"
    less.stdout.fnmatch_lines(["*test_gate.py::test_model  energy (cpu:package-0) -*improvement*"
                               "--energy-update-baselines*"])


def test_baseline_from_other_hardware_never_fails(run, pytester: pytest.Pytester) -> None:
    names = ["test_gate.py::test_model", "test_gate.py::test_steady", "test_gate.py::test_labelled::prefill"]
    elsewhere = [_record(name, [0.1] * 5, devices={"cpu:package-0": "counter"}) for name in names]
    for record in elsewhere:
        record.nodeid = "test_gate.py::" + record.name.split("::")[1]
    store.update(store.set_folder(pytester.path / "baselines", "default"),
                 [store.from_record(r) for r in elsewhere])
    result = run(2.0, 1)  # ten to twenty times the joules, but the only baselines are another machine's
    assert result.ret == 0
    assert set(_verdicts(pytester).values()) == {"incomparable"}
    result.stdout.fnmatch_lines(["*3 incomparable*"])


def test_truncated_baseline_is_one_clear_line(run, pytester: pytest.Pytester) -> None:
    run(1.0, 0, "--energy-update-baselines").assert_outcomes(passed=3)
    [path] = (pytester.path / "baselines").rglob("test_gate.py.json")
    truncated = path.read_text()[:200]
    path.write_text(truncated)
    result = run(1.0, 1, "--energy-update-baselines")
    assert result.ret == 74  # the update asked for was refused: the run does not read as done (issue 22, item 9)
    result.assert_outcomes(passed=3)
    errors = [line for line in result.outlines if str(path) in line and "not valid JSON" in line]
    assert len(errors) == 1, result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*0 written, 0 unchanged kept, 3 refused (their file is unreadable, see above)"])
    assert path.read_text() == truncated  # left as it was, even with --energy-update-baselines
    assert set(_verdicts(pytester).values()) == {"incomparable"}


def test_xdist_gives_the_records_of_a_serial_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gate=TESTS_FILE.format(work=1.0))
    monkeypatch.setenv("FAKE_SEED", "0")
    pytester.runpytest_subprocess(*ARGS).assert_outcomes(passed=3)
    serial = _records(pytester)
    pytester.runpytest_subprocess(*ARGS, "-n", "2").assert_outcomes(passed=3)
    parallel = _records(pytester)
    assert sorted(serial) == sorted(parallel) == [
        "test_gate.py::test_labelled::prefill", "test_gate.py::test_model", "test_gate.py::test_steady"]
    for name in serial:
        assert [r["iterations"] for r in serial[name]["rounds"]] == [r["iterations"] for r in parallel[name]["rounds"]]
        assert serial[name]["methods"] == parallel[name]["methods"] == ["counter"]
        assert parallel[name]["per_iteration_net_joules"] == pytest.approx(serial[name]["per_iteration_net_joules"],
                                                                           rel=0.05)
    # One history row per session, not one per worker.
    with sqlite3.connect(pytester.path / "reports" / "energy-history.sqlite") as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone() == (2,)


def test_ctrl_c_keeps_the_records_taken(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gate='''
def test_measured(energy, package):
    energy.run(package.spend, args=(1.0,), iterations=1)


def test_interrupted():
    raise KeyboardInterrupt
''')
    result = pytester.runpytest_subprocess(*ARGS, "--energy-update-baselines")
    assert result.ret == 2  # interrupted
    assert list(_records(pytester)) == ["test_gate.py::test_measured"]
    assert not (pytester.path / "baselines").exists()
    result.stdout.fnmatch_lines(["*the run was interrupted; baselines not updated*"])
    runs = History(pytester.path / "reports" / "energy-history.sqlite").runs()
    assert len(runs) == 1 and runs[0].exitstatus == 2
