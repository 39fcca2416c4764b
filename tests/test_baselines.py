"""The baselines store: layout, stable reviewable files, refusal of bad files, and safe concurrent writes."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from pytest_energy.testing.records import make_record

from pytest_energy.store import baselines as store
from pytest_energy.store.locking import atomic_write_text, locked


H100 = "gpu: NVIDIA H100 80GB HBM3 x1"


def _folder(tmp_path: Path) -> Path:
    return store.set_folder(tmp_path / "baselines", "default")


def test_layout_mirrors_the_test_module(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert folder == tmp_path / "baselines" / "default"
    assert store.file_for(folder, "tests/unit/test_x.py::test_y[a/b]") == folder / "tests" / "unit" / "test_x.py.json"
    # Paths out of the folder cannot be written through a node id or a set name.
    assert store.file_for(folder, "../outside/test_z.py::t") == folder / "_" / "outside" / "test_z.py.json"
    assert store.set_folder(tmp_path, "../main") == tmp_path / "_main"


def test_round_trip_keeps_rounds_devices_and_quality(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    record = make_record("tests/test_m.py::test_a", joules=10.0, quality={"rougeL": 0.412345678})
    record.reference_joules = {"gpu:0": 350.0}
    result = store.update(folder, [store.from_record(record)])
    assert result.written == {"tests/test_m.py::test_a": "new"}
    loaded = store.load_set(folder)
    assert loaded.errors == []
    baseline = loaded.baselines["tests/test_m.py::test_a"]
    # Energy is stored per device kind: the GPU's product and count, not the host.
    assert list(baseline.energy) == ["gpu: NVIDIA H100 80GB HBM3 x1"]
    energy = baseline.energy["gpu: NVIDIA H100 80GB HBM3 x1"]
    assert energy.devices == {"gpu:0": "counter"}
    assert [r.iterations for r in energy.rounds] == [r.iterations for r in record.rounds]
    assert [r.net_per_iteration for r in energy.rounds] == pytest.approx(
        [r.net_per_iteration for r in record.rounds], rel=1e-5)
    assert energy.rounds[0].by_device["gpu:0"] == pytest.approx(record.rounds[0].by_device["gpu:0"], rel=1e-5)
    assert baseline.quality == {"rougeL": 0.412346}  # rounded to 6 significant digits
    assert energy.reference_joules == {"gpu:0": 350.0}
    assert baseline.hardware == energy.hardware == "nvidia-h100-80gb-hbm3-x1-1a2b3c4d"
    assert baseline.path == folder / "tests" / "test_m.py.json"


def test_reference_joules_that_are_not_numbers_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    store.update(folder, [store.from_record(make_record("tests/test_m.py::test_a"))])
    path = folder / "tests" / "test_m.py.json"
    data = json.loads(path.read_text())
    data["records"]["tests/test_m.py::test_a"]["energy"]["gpu: NVIDIA H100 80GB HBM3 x1"]["reference_joules"] = {
        "gpu:0": "hot"}
    path.write_text(json.dumps(data))
    [error] = store.load_set(folder).errors
    assert error.startswith(f"pytest-energy: baseline file {path} has record 'tests/test_m.py::test_a' energy "
                            "'gpu: NVIDIA H100 80GB HBM3 x1' whose 'reference_joules' is not device -> joules; fix it")


def test_files_are_stable_and_reviewable(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    records = [make_record("tests/test_m.py::test_b", joules=3.0), make_record("tests/test_m.py::test_a")]
    store.update(folder, [store.from_record(r) for r in records])
    path = folder / "tests" / "test_m.py.json"
    text = path.read_text()
    data = json.loads(text)
    assert data["schema_version"] == store.SCHEMA_VERSION
    assert list(data["records"]) == ["tests/test_m.py::test_a", "tests/test_m.py::test_b"]
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert data["records"]["tests/test_m.py::test_b"]["energy"]["gpu: NVIDIA H100 80GB HBM3 x1"][
        "per_iteration_net_joules"] == pytest.approx(
        records[0].per_iteration_net_joules, rel=1e-5)
    # Writing the same baselines again changes nothing on disk.
    before = path.stat().st_mtime_ns
    again = store.update(folder, [store.from_record(r) for r in records])
    assert again.files == [] and path.stat().st_mtime_ns == before
    assert again.written == {"tests/test_m.py::test_a": "refreshed", "tests/test_m.py::test_b": "refreshed"}


def test_update_keeps_the_other_entries_of_a_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    store.update(folder, [store.from_record(make_record("tests/test_m.py::test_a", joules=1.0))])
    store.update(folder, [store.from_record(make_record("tests/test_m.py::test_b", joules=2.0))])
    loaded = store.load_set(folder).baselines
    assert sorted(loaded) == ["tests/test_m.py::test_a", "tests/test_m.py::test_b"]


def test_truncated_file_is_one_line_naming_it_and_is_never_overwritten(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    store.update(folder, [store.from_record(make_record("tests/test_m.py::test_a")),
                          store.from_record(make_record("tests/test_n.py::test_c"))])
    path = folder / "tests" / "test_m.py.json"
    truncated = path.read_text()[:150]
    path.write_text(truncated)
    loaded = store.load_set(folder)
    assert list(loaded.baselines) == ["tests/test_n.py::test_c"]  # the other file is still used
    assert len(loaded.errors) == 1 and "\n" not in loaded.errors[0]
    assert str(path) in loaded.errors[0] and "not valid JSON" in loaded.errors[0]
    assert "--energy-update-baselines" in loaded.errors[0]
    result = store.update(folder, [store.from_record(make_record("tests/test_m.py::test_a"))])
    assert result.written == {} and str(path) in result.errors[0]
    assert path.read_text() == truncated


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d["records"]["tests/test_m.py::test_a"]["energy"][H100].pop("rounds"), "without a 'rounds' list"),
    (lambda d: d["records"]["tests/test_m.py::test_a"]["energy"][H100]["rounds"][1].update(iterations=0),
     "round 1 is not"),
    (lambda d: d["records"]["tests/test_m.py::test_a"].update(quality={"rougeL": "high"}), "'quality'"),
    (lambda d: d.update(records=[]), "no 'records' object"),
    (lambda d: d["records"]["tests/test_m.py::test_a"]["energy"][H100]["rounds"][0]["by_device"].update(
        {"gpu:0": 10**400}), "round 0 is not"),
    (lambda d: d["records"]["tests/test_m.py::test_a"].update(model={"requested": 3}), "'model'"),
])
def test_hand_edited_file_in_a_wrong_shape_is_refused(tmp_path: Path, edit, problem: str) -> None:
    folder = _folder(tmp_path)
    store.update(folder, [store.from_record(make_record("tests/test_m.py::test_a"))])
    path = folder / "tests" / "test_m.py.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(store.BaselineError, match=problem) as caught:
        store.read_file(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("damage, problem", [
    (lambda text: text.replace('"seconds": ', '"seconds": NaN, "x": ', 1).encode(), "NaN is not a number JSON"),
    (lambda text: text.replace("test_a", "test_\xff").encode("latin-1"), "is not UTF-8 text"),
])
def test_nan_or_bytes_that_are_not_utf8_are_one_line_and_the_gate_goes_on(tmp_path: Path, damage, problem) -> None:
    folder = _folder(tmp_path)
    store.update(folder, [store.from_record(make_record("tests/test_m.py::test_a")),
                          store.from_record(make_record("tests/test_n.py::test_c"))])
    path = folder / "tests" / "test_m.py.json"
    path.write_bytes(damage(path.read_text()))
    loaded = store.load_set(folder)
    assert list(loaded.baselines) == ["tests/test_n.py::test_c"]
    [error] = loaded.errors
    assert str(path) in error and problem in error and "\n" not in error


def test_other_schema_versions_are_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema_version": 99, "records": {}}))
    with pytest.raises(store.BaselineError, match="newer than this pytest-energy reads .*upgrade pytest-energy"):
        store.read_file(path)
    path.write_text(json.dumps({"records": {}}))
    with pytest.raises(store.BaselineError, match="schema_version None, not 2; fix it, or delete it and re-record"):
        store.read_file(path)
    path.write_text(json.dumps({"schema_version": 1, "records": {}}))
    with pytest.raises(store.BaselineError, match="schema_version 1, not 2; fix it, or delete it and re-record"):
        store.read_file(path)


def test_a_refresh_keeps_the_energy_of_other_device_kinds(tmp_path: Path) -> None:
    # Replaces the lookup of other hardware's folders: every runner's energy now lives in one entry.
    folder = _folder(tmp_path)
    h100 = make_record("t.py::x", joules=10.0)
    a100 = make_record("t.py::x", joules=20.0)
    a100.fingerprint = dict(a100.fingerprint, id="a100-x1-aaaa",
                            gpus=[{"device": "gpu:0", "name": "NVIDIA A100-SXM4-80GB"}])
    store.update(folder, [store.from_record(h100)])
    store.update(folder, [store.from_record(a100)])
    entry = store.load_set(folder).baselines["t.py::x"]
    assert sorted(entry.energy) == ["gpu: NVIDIA A100-SXM4-80GB x1", H100]
    assert entry.energy[H100].rounds[0].net_per_iteration == pytest.approx(h100.rounds[0].net_per_iteration, rel=1e-5)
    assert entry.hardware == "a100-x1-aaaa"  # the hardware-independent part is the newest


def _write_one(folder: str, index: int, barrier) -> None:
    barrier.wait()
    record = make_record(f"tests/test_m.py::test_{index}", joules=1.0 + index)
    store.update(Path(folder), [store.from_record(record)])


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    workers = [context.Process(target=_write_one, args=(str(folder), i, barrier)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    loaded = store.load_set(folder)
    assert loaded.errors == []
    assert sorted(loaded.baselines) == [f"tests/test_m.py::test_{i}" for i in range(6)]
    assert [p.name for p in (folder / "tests").iterdir()] == ["test_m.py.json"]  # no temporary left


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "sub" / "out.json"
    atomic_write_text(path, "old\n")
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)

    def interrupted(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(path.parent) == ["out.json"]


def test_lock_is_exclusive_between_processes(tmp_path: Path) -> None:
    target = tmp_path / "thing.json"
    context = multiprocessing.get_context("fork")
    entered = context.Event()

    def hold() -> None:
        with locked(target):
            entered.set()
            # The parent must not get the lock while this child holds it.
            import time

            time.sleep(0.5)

    child = context.Process(target=hold)
    child.start()
    assert entered.wait(30)
    import time

    started = time.perf_counter()
    with locked(target):
        waited = time.perf_counter() - started
    child.join(30)
    assert waited >= 0.3


def test_work_counts_are_stored_exactly(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    record = make_record("tests/test_m.py::test_a")
    record.proxies = {"flops_per_inference": 52_987_654.5, "flops": 52_987_654_500.0}
    store.update(folder, [store.from_record(record)])
    text = (folder / "tests" / "test_m.py.json").read_text()
    assert '"flops_per_inference": 52987654.5' in text
    assert store.load_set(folder).baselines["tests/test_m.py::test_a"].work == {"flops_per_inference": 52_987_654.5}
