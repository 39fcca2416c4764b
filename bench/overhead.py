"""Overhead: what measuring costs the tests being measured.

* A measured test against the same test in plain pytest: two 1 s tests (one marked, measured as a
  whole; one using ``energy.run(fn, rounds=1, warmup=0, iterations=1)``), three copies of each, run
  in a subprocess
  without ``--energy`` and with ``--energy --energy-rounds 1 --energy-warmup 0
  --energy-idle-seconds 0.05``. A conftest times each test's whole protocol (setup, call,
  teardown). A first, empty marked test takes the once-per-session start (idle window, tick
  calibration, reference workload), so the 1 s tests show only their own cost; what the session's
  end stages (JSON, baselines, history, HTML report) cost is the rest of the wall-time difference.
* ``--energy-top``: a suite of 1,000 short tests (20 ms of fixed work each) run plain and with
  ``--energy --energy-top 10``, where every test's call is a window of its own; the per-test times
  (setup + call + teardown) summed, so the session's start and end stages are reported apart.
* The CPU taken by the meter's poller thread per window edge (ticking counters only).
* Loading the plugin with ``--energy`` off: ``pytest --collect-only`` with and without
  ``-p no:energy`` (the fastest of several runs each), and ``python -X importtime`` of the plugin
  module (the self time of the package's own modules).
* What ``--energy`` costs an ordinary suite (:func:`ordinary_suite`): many short tests that measure
  nothing, as a project's unit tests, collected and run plain (plugin loaded, ``--energy`` off), with
  ``--energy`` and with ``--energy --energy-top 10``, the package of this tree against the package of
  another commit in the same alternating runs (``python3 -m bench ordinary --against REF``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from pytest_energy.measure.meter import BOUNDARY, Meter

from .rigs import MATMUL_SIZE, Rig

ROOT = Path(__file__).resolve().parents[1]
#: Each 1 s test runs this many times per session (parametrised), for a steadier median.
COPIES = 3

CONFTEST = '''
import json, os, sys, time
import pytest

if os.environ["BENCH_LOAD"] == "sim":  # the plugin finds the simulated GPU when it imports pynvml
    from bench import simnvml
    sys.modules["pynvml"] = simnvml.SimulatedNvml(seed=3)

TIMES = []


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    began = time.perf_counter()
    yield
    TIMES.append([item.originalname, time.perf_counter() - began])


def pytest_unconfigure(config):
    with open(os.environ["BENCH_TIMES"], "w") as handle:
        json.dump(TIMES, handle)
'''

TESTS = f'''
import hashlib, os, sys
import pytest

LOAD, COUNT, COPIES = os.environ["BENCH_LOAD"], int(os.environ["BENCH_COUNT"]), int(os.environ["BENCH_COPIES"])
BLOCK = bytes(range(256)) * 64
if LOAD == "nvml":
    import torch
    A = torch.rand({MATMUL_SIZE}, {MATMUL_SIZE}, device="cuda", dtype=torch.bfloat16)
    OUT = torch.empty_like(A)


def work():
    """About 1 s of fixed work (COUNT is calibrated by the benchmark)."""
    if LOAD == "sim":
        sys.modules["pynvml"].pulse(0, COUNT / 1000)
    elif LOAD == "nvml":
        for _ in range(COUNT):
            torch.matmul(A, A, out=OUT)
        torch.cuda.synchronize()
    else:
        for _ in range(COUNT):
            hashlib.sha256(BLOCK).digest()


@pytest.mark.energy
def test_0_session_start():
    pass


@pytest.mark.energy
@pytest.mark.parametrize("copy", range(COPIES))
def test_1_marked(copy):
    work()


@pytest.mark.parametrize("copy", range(COPIES))
def test_2_fixture(energy, copy):
    energy.run(work, rounds=1, warmup=0, iterations=1)
'''

ENERGY_FLAGS = ["--energy", "--energy-rounds", "1", "--energy-warmup", "0", "--energy-idle-seconds", "0.05"]

#: The --energy-top suite: this many short tests of fixed work (BENCH_COUNT is the work's size).
TOP_TESTS = 1000
TOP_TEST_SECONDS = 0.02
TOP_FLAGS = ["--energy", "--energy-top", "10", "--energy-idle-seconds", "0.05"]
TOP_SUITE = TESTS.split("@pytest.mark.energy")[0] + '''
@pytest.mark.parametrize("copy", range(COPIES))
def test_short(copy):
    work()
'''


#: The ordinary suite: this many short tests that measure nothing, and the ways it is run.
ORDINARY_TESTS = 2000
ORDINARY_SUITE = '''
import os

import pytest


@pytest.mark.parametrize("number", range(int(os.environ["BENCH_COUNT"])))
def test_short(number):
    assert number >= 0
'''
#: Times each test's protocol (setup + call + teardown) in wall and in CPU seconds of the process (its
#: threads included): on a shared machine the CPU time holds still where the wall time does not.
ORDINARY_CONFTEST = '''
import json, os, time
import pytest

TIMES = []


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    TIMES.append([time.perf_counter() - wall, time.process_time() - cpu])


def pytest_unconfigure(config):
    with open(os.environ["BENCH_TIMES"], "w") as handle:
        json.dump(TIMES, handle)
'''
ORDINARY_RUNS = {"plain": [], "--energy": ["--energy"], "--energy --energy-top 10": ["--energy", "--energy-top", "10"]}


def _plugin_flags() -> list[str]:
    """``-p pytest_energy.plugin`` unless the package is installed (its pytest11 entry point loads it)."""
    installed = any(e.name == "energy" for e in importlib.metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "pytest_energy.plugin"]


def _environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTEST_ADDOPTS", None)
    env.update(extra)
    return env


def one_second_count(rig: Rig) -> int:
    """The COUNT that makes the test's ``work()`` last about 1 s on this rig."""
    if rig.key == "sim":
        return 1000  # milliseconds of simulated load
    if rig.key == "nvml":
        work = rig.work()
        work()
        rig.sync()
        began = time.perf_counter()
        for _ in range(10):
            work()
        rig.sync()
        per_matmul = (time.perf_counter() - began) / (10 * int(rig.facts["matmuls_per_iteration"]))
        return max(1, round(1.0 / per_matmul))
    passes = int(rig.facts["hash_passes_per_iteration"])
    work = rig.work()
    began = time.perf_counter()
    for _ in range(10):
        work()
    return max(1, round(passes / ((time.perf_counter() - began) / 10)))


def _pytest_once(folder: Path, load: str, count: int, copies: int, measured: bool,
                 energy_flags: list[str] = ENERGY_FLAGS) -> tuple[float, list[tuple[str, float]]]:
    times = folder / ("measured.json" if measured else "plain.json")
    outputs = folder / "energy-out"
    flags = energy_flags + [
        "--energy-json", str(outputs / "records.json"), "--energy-report", str(outputs / "report.html"),
        "--energy-history", str(outputs / "history.sqlite"), "--energy-baselines", str(outputs / "baselines"),
    ] if measured else []
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(folder),
               *_plugin_flags(), *flags, str(folder / "test_load.py")]
    began = time.perf_counter()
    env = _environment(BENCH_LOAD=load, BENCH_COUNT=str(count), BENCH_COPIES=str(copies), BENCH_TIMES=str(times))
    done = subprocess.run(command, cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"pytest exited {done.returncode}: {' | '.join(tail)}")
    return wall, json.loads(times.read_text())


Runs = list[tuple[float, list[tuple[str, float]]]]


def _alternating(rig: Rig, suite: str, count: int, copies: int, repetitions: int,
                 energy_flags: list[str] = ENERGY_FLAGS) -> tuple[Runs, Runs, dict[str, Any]]:
    """``repetitions`` plain and measured pytest runs of ``suite`` (with the bench's conftest), alternating;
    with the last measured run's JSON document."""
    plain: Runs = []
    measured: Runs = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as name:
        folder = Path(name)
        (folder / "conftest.py").write_text(textwrap.dedent(CONFTEST))
        (folder / "test_load.py").write_text(textwrap.dedent(suite))
        for _ in range(repetitions):
            plain.append(_pytest_once(folder, rig.key, count, copies, measured=False))
            measured.append(_pytest_once(folder, rig.key, count, copies, measured=True, energy_flags=energy_flags))
        document = json.loads((folder / "energy-out" / "records.json").read_text())
    return plain, measured, document


def measured_test_overhead(rig: Rig, repetitions: int, copies: int = COPIES) -> dict[str, Any]:
    """Plain against measured pytest runs of the 1 s tests (``copies`` of each per run), alternating,
    ``repetitions`` runs of each."""
    count = one_second_count(rig)
    plain, measured, _ = _alternating(rig, TESTS, count, copies, repetitions)

    def median(runs: list[tuple[float, list[tuple[str, float]]]], test: str | None) -> float:
        """Median wall time of the runs (test None), or of every copy of ``test`` in every run."""
        if test is None:
            return statistics.median(wall for wall, _ in runs)
        return statistics.median(seconds for _, times in runs for name, seconds in times if name == test)

    tests = {}
    for test in ("test_1_marked", "test_2_fixture"):
        base, with_energy = median(plain, test), median(measured, test)
        tests[test] = {"plain_seconds": base, "measured_seconds": with_energy,
                       "overhead_seconds": with_energy - base, "overhead_fraction": (with_energy - base) / base}
    start = median(measured, "test_0_session_start") - median(plain, "test_0_session_start")
    wall = median(measured, None) - median(plain, None)
    per_test = sum(t["overhead_seconds"] for t in tests.values()) * copies
    return {
        "rig": rig.key, "repetitions": repetitions, "copies": copies, "work_count": count,
        "compared": ("the same two 1 s tests, plain (plugin loaded, --energy off) against "
                     f"{' '.join(ENERGY_FLAGS)}; per test: setup + call + teardown"),
        "tests": tests,
        "session_start_seconds": start,
        "session_end_seconds": wall - start - per_test,
        "wall_plain_seconds": median(plain, None), "wall_measured_seconds": median(measured, None),
    }


def short_count(rig: Rig, seconds: float) -> int:
    """The COUNT that makes ``work()`` last about ``seconds`` on this rig."""
    return max(1, round(one_second_count(rig) * seconds))


def top_overhead(rig: Rig, repetitions: int, tests: int = TOP_TESTS,
                 test_seconds: float = TOP_TEST_SECONDS) -> dict[str, Any]:
    """Plain against ``--energy --energy-top 10`` runs of ``tests`` short tests, alternating,
    ``repetitions`` runs of each: the sum of the tests' own times, and the whole runs' wall time."""
    count = short_count(rig, test_seconds)
    plain, measured, document = _alternating(rig, TOP_SUITE, count, tests, repetitions, TOP_FLAGS)
    listed = document.get("top", [])

    def tests_total(runs: list[tuple[float, list[tuple[str, float]]]]) -> float:
        return statistics.median(sum(seconds for _, seconds in times) for _, times in runs)

    base, with_energy = tests_total(plain), tests_total(measured)
    wall_plain = statistics.median(wall for wall, _ in plain)
    wall_measured = statistics.median(wall for wall, _ in measured)
    return {
        "rig": rig.key, "repetitions": repetitions, "tests": tests, "test_seconds": test_seconds,
        "work_count": count, "flags": " ".join(TOP_FLAGS),
        "tests_plain_seconds": base, "tests_measured_seconds": with_energy,
        "per_test_overhead_seconds": (with_energy - base) / tests,
        "overhead_fraction": (with_energy - base) / base,
        # Start (idle window, calibration, reference workload) and end (records, JSON, reports).
        "session_stages_seconds": (wall_measured - wall_plain) - (with_energy - base),
        "wall_plain_seconds": wall_plain, "wall_measured_seconds": wall_measured,
        "listed": len(listed), "listed_methods": sorted({m for r in listed for m in r.get("methods", [])}),
    }


def edge_cost(rig: Rig, edges: int, spacing: float = 0.25) -> dict[str, Any]:
    """CPU time the meter spends per window edge outside the measured thread (its poller threads),
    and on the measured thread itself, while the measured thread sleeps between edges."""
    meter = Meter(rig.open_channels())
    meter.start(0.2)
    ticking = bool(meter.periods)
    reads_before = rig.simulated_reads() if rig.simulated_reads else None
    process_before, thread_before = time.process_time(), time.thread_time()
    inline = 0.0
    taken = []
    for _ in range(edges):
        time.sleep(spacing)
        began = time.thread_time()
        taken.append(meter.edge(BOUNDARY))
        inline += time.thread_time() - began
    for edge in taken:
        edge.resolve()
    background = (time.process_time() - process_before) - (time.thread_time() - thread_before)
    reads = (rig.simulated_reads() - reads_before) if rig.simulated_reads and reads_before is not None else None
    meter.close()
    result: dict[str, Any] = {
        "rig": rig.key, "edges": edges, "ticking": ticking,
        "measured_thread_seconds_per_edge": inline / edges,
        "background_cpu_seconds_per_edge": background / edges if ticking else 0.0,
    }
    if reads is not None:
        result["counter_reads_per_edge"] = reads / edges
        # Simulated reads sleep; on an H100 each read is ~3.9 ms of busy CPU.
        result["projected_h100_cpu_seconds_per_edge"] = reads / edges * rig.read_seconds
    return result


def _collect_seconds(folder: Path, disabled: bool) -> float:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
               "--rootdir", str(folder), *(["-p", "no:energy"] if disabled else _plugin_flags()), str(folder)]
    began = time.perf_counter()
    subprocess.run(command, cwd=folder, env=_environment(), capture_output=True, check=True, timeout=120)
    return time.perf_counter() - began


def load_time(repetitions: int) -> dict[str, Any]:
    """Startup cost of the plugin with --energy off, and which heavy modules loading it imports."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as name:
        folder = Path(name)
        (folder / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
        with_plugin, without = [], []
        for _ in range(repetitions):
            with_plugin.append(_collect_seconds(folder, disabled=False))
            without.append(_collect_seconds(folder, disabled=True))
    probe = ("import json, sys, pytest; import pytest_energy.plugin; "
             "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'codecarbon', 'pynvml', 'rich', "
             "'jinja2', 'numpy') if m in sys.modules)))")
    timed = subprocess.run([sys.executable, "-X", "importtime", "-c", probe], env=_environment(),
                           capture_output=True, text=True, check=True, timeout=120)
    heavy = json.loads(timed.stdout)
    own = 0
    for line in timed.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2].startswith("pytest_energy") and parts[0].isdigit():
            own += int(parts[0])
    # The fastest of the runs: a busy machine only ever adds time to a startup.
    return {
        "repetitions": repetitions,
        "collect_only_with_plugin_seconds": min(with_plugin),
        "collect_only_without_plugin_seconds": min(without),
        "plugin_load_seconds": min(with_plugin) - min(without),
        "pytest_energy_import_self_seconds": own / 1e6,
        "heavy_modules_imported": heavy,
    }


def package_tree(ref: str, folder: Path) -> Path:
    """The package as commit ``ref`` has it, exported into ``folder`` (put first on PYTHONPATH, it is the
    plugin pytest loads): the "before" of a before/after run."""
    archive = subprocess.run(["git", "archive", ref, "pytest_energy"], cwd=ROOT, capture_output=True, check=True,
                             timeout=60)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True, timeout=60)
    return folder


def _ordinary_once(folder: Path, tests: int, package: Path, flags: list[str], collect_only: bool) -> dict[str, float]:
    """One pytest run of the ordinary suite with the package in ``package``: the process's wall and CPU
    seconds, and the tests' own (setup + call + teardown) summed, 0 when only collecting."""
    times = folder / "times.json"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(folder),
               *_plugin_flags(), *(["--collect-only"] if collect_only else []), *flags, str(folder / "test_short.py")]
    env = _environment(BENCH_COUNT=str(tests), BENCH_TIMES=str(times))
    env["PYTHONPATH"] = os.pathsep.join([str(package), env["PYTHONPATH"]])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"pytest exited {done.returncode}: {' | '.join(tail)}")
    measured = json.loads(times.read_text())
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "tests_wall": sum(w for w, _ in measured), "tests_cpu": sum(c for _, c in measured)}


def ordinary_suite(repetitions: int, tests: int = ORDINARY_TESTS, against: str | None = None) -> dict[str, Any]:
    """What ``--energy`` costs a suite of ``tests`` short tests that measure nothing: each way of
    :data:`ORDINARY_RUNS` collected (``--collect-only``) and run, ``repetitions`` times, alternating;
    with ``against`` (a commit), the same with that commit's package in the same rounds.

    Each time is the least of its repetitions (a busy machine only ever adds time), in wall seconds and
    in CPU seconds of the pytest process (its threads included; on a shared machine the CPU time holds
    still where the wall time does not). ``--energy``'s fixed cost is its collection's and its run's
    time over plain's; ``--energy-top``'s cost per test is the tests' own summed time (setup + call +
    teardown) over plain's, divided by the tests, and its session cost the rest of its run's time over
    plain's (the meter's start, the records, the listing).
    """
    with tempfile.TemporaryDirectory(prefix="bench-ordinary-") as name:
        folder = Path(name)
        (folder / "conftest.py").write_text(textwrap.dedent(ORDINARY_CONFTEST))
        (folder / "test_short.py").write_text(textwrap.dedent(ORDINARY_SUITE))
        packages = {"this tree": ROOT}
        if against:
            (folder / "against").mkdir()
            packages[against] = package_tree(against, folder / "against")
        runs: dict[tuple[str, str, bool], list[dict[str, float]]] = {}
        for _ in range(repetitions):
            for package, where in packages.items():
                for run, flags in ORDINARY_RUNS.items():
                    for collect_only in (True, False):
                        if collect_only and "--energy-top" in flags:
                            continue  # collects as --energy alone does
                        runs.setdefault((package, run, collect_only), []).append(
                            _ordinary_once(folder, tests, where, flags, collect_only))
    return {"tests": tests, "repetitions": repetitions, "against": against, "runs": list(ORDINARY_RUNS),
            "packages": {package: _ordinary_figures(runs, package, tests) for package in packages}}


def _ordinary_figures(runs: dict[tuple[str, str, bool], list[dict[str, float]]], package: str,
                      tests: int) -> dict[str, Any]:
    """One package's figures, the fastest of the repetitions of each time kept."""
    plain, energy, top = ORDINARY_RUNS

    def least(run: str, what: str, collect_only: bool = False) -> float:
        return min(times[what] for times in runs[(package, run, collect_only)])

    def over_plain(run: str, what: str, collect_only: bool = False) -> float:
        return least(run, what, collect_only) - least(plain, what, collect_only)

    return {
        "seconds": {f"{'collect' if collect_only else 'run'} {run}": {
            what: least(run, what, collect_only) for what in ("wall", "cpu", "tests_wall", "tests_cpu")}
            for (name, run, collect_only) in runs if name == package},
        "energy_collect_wall_seconds": over_plain(energy, "wall", True),
        "energy_collect_cpu_seconds": over_plain(energy, "cpu", True),
        "energy_run_wall_seconds": over_plain(energy, "wall"),
        "energy_run_cpu_seconds": over_plain(energy, "cpu"),
        "energy_per_test_cpu_seconds": over_plain(energy, "tests_cpu") / tests,
        "top_per_test_cpu_seconds": over_plain(top, "tests_cpu") / tests,
        "top_per_test_wall_seconds": over_plain(top, "tests_wall") / tests,
        "top_session_wall_seconds": over_plain(top, "wall") - over_plain(top, "tests_wall"),
        "top_session_cpu_seconds": over_plain(top, "cpu") - over_plain(top, "tests_cpu"),
        "top_run_cpu_share": over_plain(top, "cpu") / least(plain, "cpu"),
    }
