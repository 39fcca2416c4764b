"""The SQLite history: what is stored, read back, refused, and appended concurrently."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from factories import make_record, make_run_info

from pytest_energy.gate import Judgement
from pytest_energy.history import SCHEMA_VERSION, History, HistoryError
from pytest_energy.verdict import Verdict


def _run(run_id: str, started: str, fingerprint_id: str = "nvidia-h100-80gb-hbm3-x1-1a2b3c4d"):
    info = make_run_info(run_id)
    return dataclasses.replace(info, started=started, fingerprint=dict(info.fingerprint, id=fingerprint_id))


def _judgement(name: str, status: str, ratio: float | None) -> Judgement:
    return Judgement(
        verdicts=[Verdict(name, "energy", status, ratio, 0.9 if ratio else None, 1.2 if ratio else None, 0.05,
                          "default", f"energy {status}", True),
                  Verdict(name, "rougeL", "unchanged", 1.0, None, None, 0.05, "default", "rougeL unchanged", True)],
        baseline_set="default", fingerprint_id="nvidia-h100-80gb-hbm3-x1-1a2b3c4d",
        gate_failed=status == "regression",
    )


def _fill(path: Path) -> History:
    history = History(path)
    name = "tests/test_model.py::test_infer"
    for index, (joules, status, ratio) in enumerate([(10.0, "new", None), (10.1, "unchanged", 1.01),
                                                     (11.5, "regression", 1.15)]):
        record = make_record(name, joules=joules, quality={"rougeL": 0.41})
        other = make_record("tests/test_model.py::test_other", joules=2.0)
        history.append(_run(f"run-{index}", f"2026-11-2{index}T10:00:00+00:00"), [record, other],
                       _judgement(name, status, ratio))
    return history


def test_runs_are_listed_newest_first_with_totals(tmp_path: Path) -> None:
    history = _fill(tmp_path / "reports" / "history.sqlite")
    runs = history.runs()
    assert [r.run_id for r in runs] == ["run-2", "run-1", "run-0"]
    assert [r.run_id for r in history.runs(2)] == ["run-2", "run-1"]
    latest = runs[0]
    assert latest.records == 2 and latest.regressions == 1 and latest.gate_failed
    assert latest.fingerprint_id == "nvidia-h100-80gb-hbm3-x1-1a2b3c4d"
    assert latest.baseline_set == "default"
    records = history.records("run-2")
    assert latest.total_net_joules == pytest.approx(sum(r.total_net_joules for r in records))
    assert latest.info["reference_joules"] == {"gpu:0": 350.0}


def test_case_history_is_chronological_with_verdicts(tmp_path: Path) -> None:
    history = _fill(tmp_path / "history.sqlite")
    points = history.case_history("tests/test_model.py::test_infer")
    assert [p.run_id for p in points] == ["run-0", "run-1", "run-2"]
    assert [p.status for p in points] == ["new", "unchanged", "regression"]
    assert points[2].ratio == pytest.approx(1.15)
    assert points[2].per_iteration_net_joules == pytest.approx(
        make_record(joules=11.5).per_iteration_net_joules)
    assert points[0].methods == ["counter"] and points[0].quality == {"rougeL": 0.41}
    assert [p.run_id for p in history.case_history("tests/test_model.py::test_infer", 2)] == ["run-1", "run-2"]
    assert history.case_history("nothing") == []


def test_series_and_records_rebuild_what_was_stored(tmp_path: Path) -> None:
    history = _fill(tmp_path / "history.sqlite")
    series = history.series()
    infer = series["tests/test_model.py::test_infer"]
    assert [point[0][:10] for point in infer] == ["2026-11-20", "2026-11-21", "2026-11-22"]
    assert [point[2] for point in infer] == ["new", "unchanged", "regression"]
    assert series["tests/test_model.py::test_other"][0][2] is None  # no verdict for it
    assert history.series("other-hardware") == {}
    rebuilt = history.records("run-1")
    original = make_record("tests/test_model.py::test_infer", joules=10.1, quality={"rougeL": 0.41})
    assert [r.name for r in rebuilt] == ["tests/test_model.py::test_infer", "tests/test_model.py::test_other"]
    assert rebuilt[0].to_dict() == original.to_dict()
    verdicts = history.verdicts("run-2")
    assert [(v["metric"], v["status"], v["gating"]) for v in verdicts] == [
        ("energy", "regression", True), ("rougeL", "unchanged", True)]
    assert Verdict(**verdicts[0]).ratio == pytest.approx(1.15)


def test_appending_a_run_again_replaces_it(tmp_path: Path) -> None:
    history = _fill(tmp_path / "history.sqlite")
    history.append(_run("run-2", "2026-11-22T10:00:00+00:00"), [make_record(joules=1.0)], None)
    assert len(history.runs()) == 3
    assert [r.name for r in history.records("run-2")] == ["tests/test_model.py::test_infer"]
    assert history.verdicts("run-2") == []


def test_schema_is_versioned_and_other_versions_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _fill(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),)
        connection.execute("UPDATE meta SET value = '7' WHERE name = 'schema_version'")
    with pytest.raises(HistoryError, match=rf"schema version 7, newer than this pytest-energy reads \({SCHEMA_VERSION}\); up"):
        History(path).runs()
    with pytest.raises(HistoryError, match="newer"):  # appending refuses too: nothing written into it
        History(path).append(_run("run-9", "2026-11-29T10:00:00+00:00"), [make_record()], None)


def test_unusable_files_are_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    with pytest.raises(HistoryError, match="no history at .*none.sqlite; run `pytest --energy` first"):
        History(missing).runs()
    assert not missing.exists()  # reading never creates the store
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_text("this is not a database, but a note somebody saved here\n" * 20)
    with pytest.raises(HistoryError) as caught:
        History(garbage).append(_run("r", "2026-11-20T10:00:00+00:00"), [make_record()], None)
    assert "not a usable SQLite store" in str(caught.value) and "\n" not in str(caught.value)


def _append(path: str, index: int, barrier) -> None:
    barrier.wait()
    History(path).append(_run(f"run-{index}", f"2026-11-20T10:00:0{index}+00:00"),
                         [make_record(f"tests/test_p.py::test_{index}")], None)


def test_concurrent_appends_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    workers = [context.Process(target=_append, args=(str(path), i, barrier)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert sorted(r.run_id for r in History(path).runs()) == [f"run-{i}" for i in range(6)]
