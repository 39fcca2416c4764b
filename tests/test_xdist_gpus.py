"""GPU runners under pytest-xdist (issue 25): a GPU block per worker with --energy-gpus-per-worker, and no
gating on a device several workers share.

The plugin runs use a fake NVML of several GPUs (pytest_energy.testing), installed by the conftest in the
controller and in every worker. Each fake GPU idles; a test's call raises its own GPU (the first
one CUDA shows its process) to ``FAKE_WATTS`` for 20 ms, so its net energy per call is set by the test
run, and each GPU's idle power differs (GPU i: 50 + 10 i W) so a record's idle watts name the GPU it read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_energy.core.config import SettingError, resolve
from pytest_energy.measure.sources import SourceUnavailable
from pytest_energy.measure.sources.base import Channel
from pytest_energy.measure.sources.nvml import visible_gpus
from pytest_energy.testing import FakeGpu, install_fake_nvml
from pytest_energy.xdist import gpu_blocks, share, with_gpus, worker_blocks

UUIDS = [f"GPU-{i}{i}{i}{i}a0b1-0000-4000-8000-00000000000{i}" for i in range(4)]


# -- the blocks, the specs, the shared devices -------------------------------------------------------
def test_blocks_are_consecutive_and_a_remainder_stays_idle() -> None:
    assert gpu_blocks(["0", "1", "2", "3"], 1) == ["0", "1", "2", "3"]
    assert gpu_blocks(["0", "1", "2", "3", "4"], 2) == ["0,1", "2,3"]
    assert gpu_blocks(UUIDS[:2], 1) == UUIDS[:2]
    assert gpu_blocks(["0"], 2) == []


def _settings(**environ: str):
    return resolve(True, {}, lambda name: None, environ=environ)


def test_each_worker_spec_carries_its_block_and_more_workers_than_blocks_is_refused() -> None:
    settings = _settings(PYTEST_ENERGY_GPUS_PER_WORKER="2")
    assert with_gpus(["popen", "popen"], ["0,1", "2,3"], settings) == [
        "popen//env:CUDA_VISIBLE_DEVICES=0,1", "popen//env:CUDA_VISIBLE_DEVICES=2,3"]
    assert with_gpus(["2*popen"], ["0,1", "2,3"], settings)[1] == "popen//env:CUDA_VISIBLE_DEVICES=2,3"
    with pytest.raises(SettingError) as refused:
        with_gpus(["popen"] * 3, ["0,1", "2,3"], settings)
    assert str(refused.value) == ("pytest-energy: 3 xdist workers but 2 block(s) of 2 GPU(s) "
                                  "(PYTEST_ENERGY_GPUS_PER_WORKER): run -n 2 or fewer, or -n auto")


@pytest.mark.parametrize("raw", ["0", "two", "65"])
def test_a_bad_value_names_its_source(raw: str) -> None:
    with pytest.raises(SettingError) as refused:
        _settings(PYTEST_ENERGY_GPUS_PER_WORKER=raw)
    assert "PYTEST_ENERGY_GPUS_PER_WORKER" in str(refused.value) and "an integer >= 1 and <= 64" in str(refused.value)


def test_visible_gpus_in_index_uuid_and_unset_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [FakeGpu(uuid=uuid) for uuid in UUIDS]
    install_fake_nvml(monkeypatch, gpus)
    assert visible_gpus() == ["0", "1", "2", "3"]
    install_fake_nvml(monkeypatch, gpus, cuda_visible_devices="3,1")
    assert visible_gpus() == ["3", "1"]
    install_fake_nvml(monkeypatch, gpus, cuda_visible_devices="GPU-2222,GPU-0000")  # prefixes: the full UUIDs
    assert visible_gpus() == [UUIDS[2], UUIDS[0]]
    install_fake_nvml(monkeypatch, gpus, cuda_visible_devices="1,7,2")  # CUDA stops at an entry naming no GPU
    assert visible_gpus() == ["1"]
    install_fake_nvml(monkeypatch, gpus, cuda_visible_devices="MIG-1234")
    with pytest.raises(SourceUnavailable, match="MIG"):
        visible_gpus()


def test_fewer_gpus_than_one_block_is_a_setting_error(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_nvml(monkeypatch, [FakeGpu()])
    with pytest.raises(SettingError) as refused:
        worker_blocks(_settings(PYTEST_ENERGY_GPUS_PER_WORKER="2"))
    assert str(refused.value) == ("pytest-energy: PYTEST_ENERGY_GPUS_PER_WORKER = 2, but CUDA shows this process "
                                  "1 GPU(s): give 1 or fewer per worker")


class _Device(Channel):
    def __init__(self, kind: str, method: str) -> None:
        self.device, self.kind, self.method = kind, kind, method

    def read(self) -> float:
        return 0.0


def test_shared_devices_are_the_counted_ones_a_worker_does_not_own() -> None:
    def shared(workers: int, own_gpus: bool) -> dict[str, int]:
        channels = [_Device("gpu", "counter"), _Device("cpu", "counter"), _Device("dram", "counter"),
                    _Device("ram", "modelled")]
        share(channels, workers, own_gpus)
        return {c.kind: c.shared_with for c in channels}

    assert shared(1, False) == {"gpu": 0, "cpu": 0, "dram": 0, "ram": 0}  # serial: unchanged
    assert shared(2, False) == {"gpu": 2, "cpu": 2, "dram": 2, "ram": 0}
    assert shared(4, True) == {"gpu": 0, "cpu": 4, "dram": 4, "ram": 0}


# -- `pytest --energy -n N` on a fake multi-GPU machine ---------------------------------------------
CONFTEST = '''
import importlib.util
import os
import sys
import time

import pytest

from pytest_energy.testing import FakeGpu, FakeNvmlModule

UUIDS = {uuids!r}
GPUS = int(os.environ.get("FAKE_GPUS", "4"))
sys.modules["pynvml"] = FakeNvmlModule([FakeGpu(uuid=UUIDS[i], power=50.0 + 10 * i) for i in range(GPUS)])
# torch cannot reach a fake GPU; hidden, the reference workload does not import it (seconds a process).
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *rest: None if name == "torch" else _find_spec(name, *rest)


@pytest.fixture
def load(request):
    """Draw FAKE_WATTS on this process's first GPU for 20 ms; log which worker ran on which GPUs."""
    nvml = sys.modules["pynvml"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    first = (visible or "0").split(",")[0]
    index = UUIDS.index(first) if first.startswith("GPU-") else int(first)
    with open(os.path.join(os.path.dirname(__file__), "seen.txt"), "a") as seen:
        seen.write(f"{{request.node.name}} {{os.environ.get('PYTEST_XDIST_WORKER', 'serial')}} {{visible}}\\n")

    def run():
        nvml.set_power(index, float(os.environ.get("FAKE_WATTS", "150")))
        time.sleep(0.02)
        nvml.set_power(index, 50.0 + 10 * index)

    return run
'''.format(uuids=UUIDS)

TESTS = '''
import pytest


@pytest.mark.parametrize("n", range({count}))
def test_gpu(energy, load, n):
    energy.run(load, rounds=5, min_window=0.1, warmup=0)
'''

# A second of idle: each record's idle watts name the GPU it read (10 W apart), and on a loaded host
# 0.2 s of idle (two counter ticks) read up to 12 W off.
ARGS = ["-p", "no:cacheprovider", "--energy", "--energy-devices", "gpu", "--energy-idle-seconds", "1",
        "--energy-report", "none", "--energy-json", "out.json"]


def _run(pytester: pytest.Pytester, *args: str, count: int = 8) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gpus=TESTS.format(count=count))
    seen = pytester.path / "seen.txt"
    seen.unlink(missing_ok=True)
    return pytester.runpytest_subprocess(*ARGS, *args)


def _seen(pytester: pytest.Pytester) -> dict[str, tuple[str, str]]:
    """test name -> (the worker that ran it, its CUDA_VISIBLE_DEVICES)."""
    lines = (pytester.path / "seen.txt").read_text().split("\n")
    return {name: (worker, visible) for name, worker, visible in (line.split(" ") for line in lines if line)}


def _records(pytester: pytest.Pytester) -> dict[str, dict]:
    document = json.loads((pytester.path / "out.json").read_text())
    return {r["name"].split("::")[-1]: r for r in document["records"]}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("PYTEST_ENERGY_GPUS_PER_WORKER", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # the lines are not cut


def test_four_workers_each_on_its_own_gpu_and_each_record_names_it(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "-n", "4", "--energy-gpus-per-worker", "1")
    result.assert_outcomes(passed=8)
    assert result.ret == 0
    seen = _seen(pytester)
    assert {visible for worker, visible in seen.values()} >= {"0", "1"}  # the tests ran on several GPUs
    for worker, visible in seen.values():
        assert visible == worker.removeprefix("gw")  # gw3 has the fourth GPU, and only it
    for name, record in _records(pytester).items():
        index = int(seen[name][1])
        [gpu] = record["fingerprint"]["gpus"]  # the one GPU it measured: index, UUID, product
        assert (gpu["device"], gpu["nvml_index"], gpu["uuid"], gpu["name"]) == (
            "gpu:0", index, UUIDS[index], "NVIDIA H100 80GB HBM3")
        [component] = record["components"]
        assert component["idle_watts"] == pytest.approx(50.0 + 10 * index, abs=3)  # read on that GPU
        assert component["shared_with"] == 0 and "shared" not in component["note"]
    assert "changes nothing" not in result.stdout.str()


@pytest.mark.slow
def test_the_option_in_a_run_without_workers_says_it_changes_nothing(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "-p", "no:xdist", "--energy-gpus-per-worker", "1", count=2)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--energy-gpus-per-worker = 1 changes nothing in a run without xdist workers: "
                                 "this run measured every GPU it sees (give -n N to split them)*"])
    assert all(len(record["components"]) == 4 for record in _records(pytester).values())


def test_uuids_in_cuda_visible_devices_give_blocks_of_uuids(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUIDS[3][:8]},{UUIDS[1]},{UUIDS[2]}")
    result = _run(pytester, "-n", "auto", "--energy-gpus-per-worker", "1", count=6)  # auto: one worker per block
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["created: 3/3 workers"])  # three blocks (this machine's CPUs would give 2)
    seen = _seen(pytester)
    assert {worker for worker, _ in seen.values()} <= {"gw0", "gw1", "gw2"}
    blocks = {"gw0": UUIDS[3], "gw1": UUIDS[1], "gw2": UUIDS[2]}
    for name, record in _records(pytester).items():
        worker, visible = seen[name]
        assert visible == blocks[worker]
        [gpu] = record["fingerprint"]["gpus"]
        assert gpu["uuid"] == visible and gpu["nvml_index"] == UUIDS.index(visible)


def test_blocks_of_two_by_index_with_auto(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ENERGY_GPUS_PER_WORKER", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,2,1,0")
    result = _run(pytester, "-n", "auto", count=4)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["created: 2/2 workers"])
    assert {w: v for w, v in _seen(pytester).values()}.items() <= {"gw0": "3,2", "gw1": "1,0"}.items()
    for name, record in _records(pytester).items():
        assert sorted(g["nvml_index"] for g in record["fingerprint"]["gpus"]) in ([2, 3], [0, 1])
        assert [c["device"] for c in record["components"]] == ["gpu:0", "gpu:1"]


def test_more_workers_than_blocks_is_a_usage_error_naming_the_counts(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "-n", "5", "--energy-gpus-per-worker", "1")
    assert result.ret == 4
    errors = [line for line in result.errlines if "pytest-energy" in line]
    assert errors == ["ERROR: pytest-energy: 5 xdist workers but 4 block(s) of 1 GPU(s) "
                      "(--energy-gpus-per-worker): run -n 4 or fewer, or -n auto"]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.slow
def test_a_crashed_worker_is_replaced_on_the_same_gpus(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gpus='''
import os


def test_a_first(energy, load):
    energy.run(load, rounds=3, min_window=0.15, warmup=0)


def test_b_crash(load):
    os._exit(3)


def test_c_after(energy, load):
    energy.run(load, rounds=3, min_window=0.15, warmup=0)
''')
    result = pytester.runpytest_subprocess(*ARGS, "-n", "1", "--energy-gpus-per-worker", "2")
    result.assert_outcomes(passed=2, failed=1)  # as a plain run with a crashed worker
    assert result.ret == 1
    seen = _seen(pytester)
    assert seen["test_a_first"] == ("gw0", "0,1") and seen["test_c_after"] == ("gw1", "0,1")
    records = _records(pytester)
    assert sorted(records) == ["test_a_first", "test_c_after"]
    assert [g["nvml_index"] for g in records["test_c_after"]["fingerprint"]["gpus"]] == [0, 1]
    result.stdout.fnmatch_lines(["*xdist worker gw0 crashed*while running test_gpus.py::test_b_crash*"])


def _verdict_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "test_gpus.py::test_gpu[" in line and "energy (gpu:0)" in line]


@pytest.mark.slow
def test_a_gpu_shared_by_two_workers_never_gates_and_says_why(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GPUS", "1")
    monkeypatch.setenv("FAKE_WATTS", "150")
    _run(pytester, "--energy-update-baselines", count=4).assert_outcomes(passed=4)
    monkeypatch.setenv("FAKE_WATTS", "300")  # 2.5 times the net energy: a regression on every test
    serial = _run(pytester, count=4)
    serial.assert_outcomes(passed=4)
    assert serial.ret == 1  # serial runs unchanged: the gate fails
    parallel = _run(pytester, "-n", "2", count=4)
    parallel.assert_outcomes(passed=4)
    assert parallel.ret == 0, parallel.stdout.str()  # the board counted both workers: never gating
    lines = _verdict_lines(parallel)  # judged and said, each with why it does not gate
    assert len(lines) == 4 and all(line.endswith("[not gating]") and "gpu:0 shared with 2 workers: not gating "
                                   "(--energy-gpus-per-worker gives each worker GPUs of its own)" in line
                                   for line in lines), lines
    # What each line's verdict reads depends on how the two workers' work fell into each other's windows
    # (a regression on a quiet machine, inconclusive on a busy one): the serial run above shows it gates.
    for record in _records(pytester).values():
        [component] = record["components"]
        assert component["shared_with"] == 2
        assert "shared with 2 workers: their work is in its windows too" in component["note"]


@pytest.mark.slow
def test_energy_of_a_shared_gpu_never_becomes_a_baseline(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A baseline taken on a board two workers shared would hold both their work: every later regression up
    to that much would pass. So an update run under -n 2 records none of it, and a serial run still gates."""
    monkeypatch.setenv("FAKE_GPUS", "1")
    monkeypatch.setenv("FAKE_WATTS", "300")
    shared = _run(pytester, "-n", "2", "--energy-update-baselines", count=4)
    shared.assert_outcomes(passed=4)
    shared.stdout.fnmatch_lines(["*0 written, 0 unchanged kept, 4 not written (only energy of devices xdist "
                                 "workers shared)*",
                                 "*energy measured on devices xdist workers shared is never a baseline*"])
    assert not list((pytester.path / "baselines").rglob("*.json"))
    serial = _run(pytester, "--energy-update-baselines", count=4)  # the board to itself: recorded
    serial.assert_outcomes(passed=4)
    serial.stdout.fnmatch_lines(["*4 written, 0 unchanged kept*"])


@pytest.mark.slow
def test_own_gpus_under_xdist_gate_as_a_serial_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GPUS", "2")
    monkeypatch.setenv("FAKE_WATTS", "150")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the baseline of one GPU, as each worker will have
    _run(pytester, "--energy-update-baselines", count=4).assert_outcomes(passed=4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("FAKE_WATTS", "300")
    result = _run(pytester, "-n", "2", "--energy-gpus-per-worker", "1", count=4)
    result.assert_outcomes(passed=4)
    assert result.ret == 1  # each worker had its GPU to itself: the regressions gate
    lines = _verdict_lines(result)
    assert len(lines) == 4 and not any("shared" in line or "not gating" in line for line in lines), lines
    assert any("regression" in line for line in lines), lines


def test_a_budget_only_the_shared_board_exceeds_never_fails_its_test(pytester: pytest.Pytester,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GPUS", "1")
    monkeypatch.setenv("FAKE_WATTS", "300")  # about 6 J per call against a budget of 1 J
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gpus='''
import pytest


@pytest.mark.energy(budget="1 J")
def test_over(energy, load):
    energy.run(load, rounds=3, min_window=0.15, warmup=0)
''')
    serial = pytester.runpytest_subprocess(*ARGS)
    serial.assert_outcomes(failed=1)  # serial runs unchanged: the budget fails the test
    serial.stdout.fnmatch_lines(["*energy budget exceeded: *J per iteration (gross, counter) > budget 1 J per "
                                 "iteration*"])
    parallel = pytester.runpytest_subprocess(*ARGS, "-n", "2")
    parallel.assert_outcomes(passed=1)
    assert parallel.ret == 0
    parallel.stdout.fnmatch_lines([
        "*pytest-energy gate passed: *1 over budget (shared with other workers, not gating)*",
        "*test_gpus.py::test_over  energy budget 1 J per iteration: over budget (shared with other workers, not "
        "gating): * > budget 1 J per iteration; gpu:0 shared with 2 workers; --energy-gpus-per-worker gives each "
        "xdist worker GPUs of its own*"])
    [record] = json.loads((pytester.path / "out.json").read_text())["records"]
    [entry] = record["criteria"]["energy"]
    assert (entry["met"], entry["gating"], entry["state"]) == (False, False, "over budget (shared with other workers, "
                                                                              "not gating)")
    assert entry["detail"].endswith("; gpu:0 shared with 2 workers")


def test_visible_gpus_on_this_machines_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real NVML, where this machine has a GPU: every GPU by index with CUDA_VISIBLE_DEVICES unset."""
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError as error:
        pytest.skip(f"no NVIDIA GPU here: NVML did not start ({error})")
    assert visible_gpus() == [str(index) for index in range(count)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert visible_gpus() == ["0"]
