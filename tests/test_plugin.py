"""The plugin as users meet it: options, the fixture's forms, the marker and budgets, JSON records.

Each run happens serially and under pytest-xdist (`-n 2`), as the plugin must behave the same way.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

FAST = ["--energy-min-window", "0.02", "--energy-rounds", "3", "--energy-warmup", "1",
        "--energy-idle-seconds", "0.05", "--energy-report", "none", "-p", "no:cacheprovider"]

WORK = """
import pytest

def work(n=30000):
    total = 0
    for i in range(n):
        total += i * i
    return total
"""


@pytest.fixture(params=["serial", "xdist"])
def mode(request) -> list[str]:
    return ["-p", "no:xdist"] if request.param == "serial" else ["-n", "2"]


def run(pytester: pytest.Pytester, mode: list[str], *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest("--energy", "--energy-json", "out.json", *FAST, *mode, *args)
    path = pytester.path / "out.json"
    return result, json.loads(path.read_text()) if path.exists() else {}


def test_call_form_gives_modelled_per_iteration_joules(pytester, mode):
    pytester.makepyfile(WORK + """
def test_sum(energy):
    assert energy(work, 20000) == sum(i * i for i in range(20000))
""")
    result, document = run(pytester, mode, "--energy-devices", "cpu,ram")
    result.assert_outcomes(passed=1)
    assert document["schema_version"] == 4
    [record] = document["records"]
    assert record["name"] == "test_call_form_gives_modelled_per_iteration_joules.py::test_sum"
    assert record["methods"] == ["modelled"]
    assert record["per_iteration_gross_joules"] > 0
    assert record["per_iteration_net_joules"] > 0
    assert record["form"] == "call" and record["warmup_iterations"] == 1
    assert len(record["rounds"]) == 3
    assert all(r["seconds"] >= 0.02 and r["iterations"] >= 1 for r in record["rounds"])
    assert record["iterations"] == sum(r["iterations"] for r in record["rounds"])
    assert {c["device"] for c in record["components"]} == {"cpu", "ram"}
    for component in record["components"]:
        assert component["method"] == "modelled" and component["uncertainty_joules"] > 0
    assert record["co2_grams"] == pytest.approx(
        record["total_gross_joules"] / 3.6e6 * 475.0, rel=1e-9)
    assert record["outcome"] == "passed"
    assert document["session"]["fingerprint"]["id"] == record["fingerprint"]["id"]
    # The session's reference workload per device, carried to the record for normalised verdicts.
    reference = document["session"]["reference_joules"]
    assert set(reference) == {"cpu", "ram"} and all(v > 0 for v in reference.values())
    assert record["reference_joules"] == reference
    assert record["normalised"]["per_iteration_gross"] == pytest.approx(
        record["per_iteration_gross_joules"] / sum(reference.values()))


def test_budget_failure_names_value_uncertainty_budget_and_method(pytester, mode):
    pytester.makepyfile(WORK + """
@pytest.mark.energy(budget="1 mJ")
def test_over(energy):
    energy(work)

@pytest.mark.energy(budget="1 kWh", per="1000")
def test_under(energy):
    energy(work)
""")
    # Modelled energy fails a budget only where asked (tests/test_faults_modelled.py: not by default).
    result, document = run(pytester, mode, "--energy-devices", "cpu", "--energy-gate-modelled",
                           "--energy-cpu-tdp", "45")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*energy budget exceeded: * ± * per iteration (gross, modelled) > budget 1 mJ per iteration; modelled CPU "
        "TDP 45 W, set by --energy-cpu-tdp*"])
    output = result.stdout.str()
    assert "Traceback" not in output and "plugin.py" not in output and "During handling" not in output
    value, unit = re.search(r"exceeded: ([\d.]+) (mJ|J) ±", output).groups()
    assert float(value) * (1e-3 if unit == "mJ" else 1.0) > 1e-3  # more than the 1 mJ budget
    by_name = {r["name"].split("::")[-1]: r for r in document["records"]}
    assert {name: r["outcome"] for name, r in by_name.items()} == {"test_over": "failed", "test_under": "passed"}
    # The exceeded budget is recorded too, so the JSON says what the failure was measured against.
    assert by_name["test_over"]["criteria"]["energy"] == [
        {"limit_joules": 0.001, "per": "iteration", "basis": "gross", "met": False}]
    assert by_name["test_under"]["criteria"]["energy"] == [
        {"limit_joules": 3.6e6, "per": "1000", "basis": "gross", "met": True}]


def test_block_form_and_whole_test_marker(pytester, mode):
    pytester.makepyfile(WORK + """
def test_block(energy):
    with energy.measure("train", unit="step") as run:
        for _ in range(4):
            work()
        run.iterations = 4
    assert run.record.iterations == 4 and run.record.label == "train"

@pytest.mark.energy(budget="1 J", per="test", basis="gross")
def test_whole_call_over_budget():
    work(2_000_000)
""")
    result, document = run(pytester, mode, "--energy-devices", "cpu", "--energy-gate-modelled")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*energy budget exceeded: * for the test (gross, modelled) > budget 1 J per test*"])
    by_name = {r["name"].split("::", 1)[1]: r for r in document["records"]}
    assert set(by_name) == {"test_block::train", "test_whole_call_over_budget"}
    block = by_name["test_block::train"]
    assert block["form"] == "block" and block["unit"] == "step" and len(block["rounds"]) == 1
    whole = by_name["test_whole_call_over_budget"]
    assert whole["unit"] == "test" and whole["total_gross_joules"] > 1.0


STEPS_CONFTEST = """
import os
from pathlib import Path

import pytest

from pytest_energy.testing import make_powercap

# Each process (controller, xdist worker) gets its own fake package counter, which moves only by the
# joules a step spends: what each window holds is known exactly.
_tree = make_powercap(Path(__file__).parent / f"rapl-{os.getpid()}", dram=False)
os.environ["PYTEST_ENERGY_POWERCAP"] = str(_tree.root)


class Package:
    microjoules = 0

    def spend(self, joules):
        Package.microjoules += round(joules * 1e6)
        _tree.set_energy("intel-rapl:0", Package.microjoules)


@pytest.fixture
def package():
    return Package()
"""

STEPS = """
import time


def train(block, package, steps, warmup_joules=0.4):
    for step in range(steps):
        package.spend(warmup_joules if step < 2 else 0.1)  # the first steps are dearer (allocation, first calls)
        time.sleep(0.002)
        block.step()


def test_rounds(energy, package):
    with energy.measure("train", unit="step", iterations=22, rounds=4, warmup=2, min_window=0.001) as block:
        train(block, package, 22)
    assert block.steps == 22


def test_too_short(energy, package):
    with energy.measure("short", unit="step", iterations=4, rounds=4, warmup=2, min_window=0.001) as block:
        train(block, package, 4)


def test_more_than_planned(energy, package):
    with energy.measure("over", unit="step", iterations=8, rounds=2, warmup=2, min_window=0.001) as block:
        train(block, package, 12)


def test_unmarked(energy, package):
    with energy.measure("whole", unit="step", iterations=5) as block:
        package.spend(0.5)
        time.sleep(0.01)


def test_bad_rounds(energy):
    with energy.measure(rounds=0):
        pass
"""


def test_a_block_marking_its_steps_is_measured_in_rounds_after_a_measured_warm_up(pytester, mode):
    pytester.makeconftest(STEPS_CONFTEST)
    pytester.makepyfile(test_steps=STEPS)
    result, document = run(pytester, mode, "--energy-devices", "cpu")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*pytest-energy: energy.measure(rounds=...) has 0, expected an integer >= 1*"])
    by_label = {r["label"]: r for r in document["records"]}
    rounds = by_label["train"]
    # 2 warm-up steps, then the 20 left in 4 rounds of 5: per-step energy from the rounds alone.
    assert rounds["form"] == "block" and rounds["warmup_iterations"] == 2
    assert [r["iterations"] for r in rounds["rounds"]] == [5, 5, 5, 5] and rounds["iterations"] == 20
    assert [r["gross_joules"] for r in rounds["rounds"]] == pytest.approx([0.5] * 4)
    assert rounds["per_iteration_gross_joules"] == pytest.approx(0.1)
    assert rounds["per_iteration_net_joules"] == pytest.approx(0.1, rel=0.05)  # idle: the fake spends nothing
    assert rounds["per_iteration_uncertainty_joules"] < 0.01  # four equal rounds, not one window's guess
    # The warm-up is measured apart: in the totals (the whole block), in no per-step figure.
    assert rounds["warmup_round"]["iterations"] == 2 and rounds["warmup_round"]["valid"] is True
    assert rounds["warmup_round"]["gross_joules"] == pytest.approx(0.8)
    assert rounds["total_gross_joules"] == pytest.approx(0.8 + 2.0)
    assert rounds["duration_seconds"] == pytest.approx(
        rounds["warmup_round"]["seconds"] + sum(r["seconds"] for r in rounds["rounds"]))
    # Under xdist the package's counter also counts the other worker's work (issue 25): each record says so.
    shared = [] if "no:xdist" in mode else ["cpu:package-0: shared with 2 workers: their work is in its windows too"]
    assert rounds["notes"] == shared
    # Too short for its rounds: as many as there are steps after the warm-up, and a note says so.
    short = by_label["short"]
    assert [r["iterations"] for r in short["rounds"]] == [1, 1] and short["warmup_iterations"] == 2
    assert short["notes"] == shared + [
        "2 of the 4 rounds asked: the 2 steps after the warm-up could not fill more (a round holds 1 steps and "
        "lasts 0.001 s at the least); more steps, or a shorter --energy-min-window, give more rounds"]
    # More steps than planned: the rounds follow the plan, the last one takes the rest.
    over = by_label["over"]
    assert [r["iterations"] for r in over["rounds"]] == [3, 7] and over["total_gross_joules"] == pytest.approx(1.8)
    assert over["notes"] == shared + ["12 steps marked where 8 were planned (energy.measure(iterations=...)): "
                                      "the rounds were split for the planned ones"]
    # A block that marks no step stays one window of its iterations, with no warm-up window.
    whole = by_label["whole"]
    assert [r["iterations"] for r in whole["rounds"]] == [5] and whole["warmup_round"] is None
    assert whole["total_gross_joules"] == pytest.approx(0.5)


def test_without_energy_block_steps_only_count(pytester):
    pytester.makepyfile("""
def test_steps(energy):
    with energy.measure(unit="step", iterations=3, rounds=2) as block:
        for _ in range(3):
            block.step()
    assert block.steps == 3 and block.record is None
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_without_energy_the_fixture_runs_once_unmeasured(pytester):
    pytester.makepyfile("""
calls = []

def test_once(energy):
    assert energy(calls.append, 1) is None
    with energy.measure() as run:
        pass
    assert calls == [1] and energy.last is None and run.record is None and not energy.enabled
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "pytest-energy" not in result.stdout.str()


def test_marker_settings_override_the_command_line(pytester):
    pytester.makepyfile(WORK + """
@pytest.mark.energy(rounds=2, warmup=0)
def test_marked(energy):
    energy(work)
""")
    result, document = run(pytester, ["-p", "no:xdist"], "--energy-devices", "cpu")
    result.assert_outcomes(passed=1)
    [record] = document["records"]
    assert len(record["rounds"]) == 2 and record["warmup_iterations"] == 0


def test_a_bad_marker_fails_only_that_test_with_one_line(pytester):
    pytester.makepyfile(WORK + """
@pytest.mark.energy(budget="12 parsecs")
def test_bad(energy):
    energy(work)

@pytest.mark.energy(rounds=2, window=3)
def test_unknown(energy):
    energy(work)

@pytest.mark.energy(gate="false")
def test_gate_text(energy):
    energy(work)

def test_fine(energy):
    energy(work)
""")
    result, _ = run(pytester, ["-p", "no:xdist"], "--energy-devices", "cpu")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines([
        "*energy marker budget='12 parsecs': unknown unit 'parsecs'; use J, kJ, mJ, Wh, mWh or kWh*",
        "*energy marker: unknown keyword 'window'*",
        "*energy marker gate='false': expected True or False*",
    ])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("how, where", [
    (["--energy-rounds", "zero"], "--energy-rounds has 'zero', expected an integer >= 1"),
    (["--energy-pue", "0.5"], "--energy-pue has '0.5', expected a number >= 1.0"),
    (["--energy-country", "Atlantis"], "--energy-country has 'Atlantis', expected a 3-letter ISO"),
    (["--energy-country", "XYZ"], "country 'XYZ' is not in codecarbon global_energy_mix.json"),
])
def test_bad_settings_are_one_usage_line_naming_the_source(pytester, how, where):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--energy", *how)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-energy: *{where}*"])
    assert "Traceback" not in result.stderr.str()


def test_hooks_extend_the_fingerprint_and_the_json(pytester, mode):
    pytester.makeconftest("""
def pytest_energy_update_fingerprint(config, fingerprint):
    fingerprint["runner_pool"] = "pool-a"
    fingerprint["id"] += "-pool-a"

def pytest_energy_update_json(config, document):
    document["session"]["ci"] = {"job": "42", "records": len(document["records"])}
""")
    pytester.makepyfile(WORK + """
def test_sum(energy):
    energy(work)
""")
    result, document = run(pytester, mode, "--energy-devices", "cpu", "--energy-update-baselines")
    result.assert_outcomes(passed=1)
    [record] = document["records"]
    assert record["fingerprint"]["runner_pool"] == "pool-a" and record["fingerprint"]["id"].endswith("-pool-a")
    assert document["session"]["fingerprint"]["id"] == record["fingerprint"]["id"]
    assert document["session"]["ci"] == {"job": "42", "records": 1}
    # Was: the changed id named the baselines folder. Now baselines/<set>/ is shared by every runner and
    # the id names the runner that recorded each part (device kinds, not ids, keep energy apart).
    assert [p.name for p in (pytester.path / "baselines").iterdir()] == ["default"]
    [stored] = json.loads(next((pytester.path / "baselines").rglob("*.json")).read_text())["records"].values()
    assert stored["hardware"] == record["fingerprint"]["id"]
    assert [kind["hardware"] for kind in stored["energy"].values()] == [record["fingerprint"]["id"]]


def test_no_device_to_measure_gives_no_figure_and_no_false_pass(pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML cannot be imported: no GPU can be read
    pytester.makepyfile(WORK + """
@pytest.mark.energy(budget="1 mJ")
def test_sum(energy):
    energy(work)
""")
    result, document = run(pytester, ["-p", "no:xdist"], "--energy-devices", "gpu", "--energy-normalise")
    result.assert_outcomes(passed=1)
    assert "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(["pytest-energy: GPU energy not measured: *"])
    [record] = document["records"]
    assert record["components"] == [] and record["per_iteration_net_joules"] is None
    assert all(not r["valid"] for r in record["rounds"]) and record["normalised"] == {}
    assert record["notes"] == [
        "no device could be measured (see the session's notes): no energy figure, budgets not checked"]


def test_true_false_options_are_flag_pairs(pytester):
    pytester.makepyfile(WORK + """
def test_sum(energy):
    energy(work)
""")
    result, document = run(pytester, ["-p", "no:xdist"], "--energy-devices", "cpu",
                           "--energy-no-fail-on-regression", "--energy-normalise", "--energy-gate-modelled")
    result.assert_outcomes(passed=1)
    settings = document["session"]["settings"]
    assert (settings["fail_on_regression"], settings["normalise"], settings["gate_modelled"]) == (False, True, True)
    # A flag never swallows what follows it, as addopts put flags before the test paths.
    pytester.makeini("[pytest]\naddopts = --energy --energy-gate-modelled --energy-devices cpu\n")
    result = pytester.runpytest(*FAST, "test_true_false_options_are_flag_pairs.py")
    result.assert_outcomes(passed=1)


def test_environment_and_ini_are_sources_too(pytester, monkeypatch):
    pytester.makepyfile("def test_nothing(): pass")
    pytester.makeini("[pytest]\nenergy = true\nenergy_warmup = -1\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["ERROR: pytest-energy: ini energy_warmup has '-1', expected an integer >= 0 and <= 10000"])
    monkeypatch.setenv("PYTEST_ENERGY_WARMUP", "nope")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["ERROR: pytest-energy: PYTEST_ENERGY_WARMUP has 'nope', expected an integer >= 0 and <= 10000"])


def test_country_intensity_and_pue_set_the_carbon(pytester):
    pytester.makepyfile(WORK + """
def test_sum(energy):
    energy(work)
""")
    result, document = run(pytester, ["-p", "no:xdist"], "--energy-devices", "cpu",
                           "--energy-country", "fra", "--energy-pue", "1.5")
    result.assert_outcomes(passed=1)
    [record] = document["records"]
    carbon = record["carbon"]
    assert carbon["country_iso_code"] == "FRA" and carbon["pue"] == 1.5
    assert carbon["intensity_g_per_kwh"] == pytest.approx(56.039)
    assert "France" in carbon["source"]
    assert record["co2_grams"] == pytest.approx(record["total_gross_joules"] / 3.6e6 * 1.5 * 56.039)


def test_loading_the_plugin_imports_nothing_heavy(pytester):
    pytester.makeconftest("""
import sys
def pytest_sessionfinish(session):
    heavy = [m for m in ("torch", "transformers", "codecarbon", "rich", "jinja2", "sqlalchemy") if m in sys.modules]
    print("HEAVY:", heavy)
    print("OURS:", sorted(m for m in sys.modules if m.startswith("pytest_energy")))
""")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "-p", "no:html")  # it loads jinja2
    result.stdout.fnmatch_lines(["*HEAVY: []"])
    # With --energy off the plugin costs its options, hook specs and light core: no session or meter.
    # (the folders' packages, each a docstring; version: the package's version string, standard library only.)
    assert ("OURS: ['pytest_energy', 'pytest_energy.core', 'pytest_energy.core.budget', 'pytest_energy.core.config', "
            "'pytest_energy.core.facts', 'pytest_energy.core.figures', 'pytest_energy.core.record', "
            "'pytest_energy.core.units', 'pytest_energy.core.version', 'pytest_energy.hookspec', "
            "'pytest_energy.plugin']" in result.stdout.lines)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, pytest_energy.plugin; "
         "print([m for m in ('torch', 'transformers', 'codecarbon', 'sqlalchemy') if m in sys.modules])"],
        capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"


def test_energy_on_a_suite_that_measures_nothing_starts_no_meter_report_or_git(pytester):
    """An ordinary suite run with --energy (no test uses the fixture or the marker) pays next to nothing:
    no meter, source, report or rich is imported and no git process runs; one `git status` where the
    JSON (whose run info names the commit) is written."""
    pytester.makeconftest("""
import subprocess, sys
GIT = []
_run = subprocess.run
def run(args, *rest, **options):
    if args and args[0] == "git":
        GIT.append(args[1:])
    return _run(args, *rest, **options)
subprocess.run = run
NOT_NEEDED = tuple(f"pytest_energy.{name}" for name in ("measure.meter", "measure.fingerprint", "measure.reference",
                                                        "report", "judge.gate", "store.baselines", "store.history",
                                                        "measure.sources.nvml", "measure.sources.rapl",
                                                        "measure.sources.modelled"))
def pytest_unconfigure(config):
    print("LOADED:", sorted(m for m in sys.modules if m.startswith(NOT_NEEDED)), "rich" in sys.modules)
    print("GIT:", GIT)
""")
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "--energy")
    result.assert_outcomes(passed=1)
    assert "LOADED: [] False" in result.outlines and "GIT: []" in result.outlines
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "--energy", "--energy-json", "out.json")
    [loaded] = [line for line in result.outlines if line.startswith("LOADED:")]
    assert loaded.startswith("LOADED: ['pytest_energy.measure.fingerprint'") and loaded.endswith("] False")  # git_state's
    assert "GIT: [['--no-optional-locks', 'status', '--porcelain=v2', '--branch', '--untracked-files=no']]" in (
        result.outlines)


@pytest.mark.parametrize("cache", [True, False])
def test_the_nothing_measured_hint_is_said_once_and_only_where_tests_ran(pytester, cache):
    """Said where tests ran and none measured: not under --collect-only, not where no test was selected,
    and once per project where pytest's cache remembers it (each run without the cache)."""
    from pytest_energy.session import NOTHING_MEASURED

    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    options = ["--energy", *([] if cache else ["-p", "no:cacheprovider"])]
    collected = pytester.runpytest(*options, "--collect-only")
    deselected = pytester.runpytest(*options, "-k", "nothing_matches")
    first, second = pytester.runpytest(*options), pytester.runpytest(*options)
    assert NOTHING_MEASURED not in collected.stdout.str() and NOTHING_MEASURED not in deselected.stdout.str()
    assert first.stdout.str().count(NOTHING_MEASURED) == 1
    assert second.stdout.str().count(NOTHING_MEASURED) == (0 if cache else 1)
    if cache:
        cleared = pytester.runpytest(*options, "--cache-clear")
        assert cleared.stdout.str().count(NOTHING_MEASURED) == 1


def test_a_measured_run_opens_no_network_connection(pytester):
    pytester.makeconftest("""
import socket
attempts = []
_connect = socket.socket.connect
def guarded(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        attempts.append(address)
        raise OSError("network disabled by the test")
    return _connect(self, address)
socket.socket.connect = guarded
def pytest_unconfigure(config):
    print("NETWORK ATTEMPTS:", attempts)
""")
    pytester.makepyfile(WORK + """
def test_sum(energy):
    energy(work)
""")
    result = pytester.runpytest_subprocess("-s", "--energy", "--energy-country", "USA", *FAST)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["NETWORK ATTEMPTS: []"])


def test_gpu_counter_joules_through_the_whole_plugin(pytester, monkeypatch):
    """A fake NVML GPU (100 ms counter) idling at 80 W and working at 300 W while the measured function
    runs: the record's net joules are the 220 W above idle times the time it worked, within a few % or
    the uncertainty the record states, which stays small (a loaded host delays the poller's reads: the
    meter must then place its edges between the ticks next to them, or say how far off it may be)."""
    import importlib.util

    from pytest_energy.testing import FakeGpu, install_fake_nvml

    fake = install_fake_nvml(monkeypatch, [FakeGpu(power=80.0)])
    # torch cannot reach a fake GPU; hidden, it is not imported inside this in-process run either
    # (pytester drops the modules a run imported, and torch's C extension cannot load twice).
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else real_find_spec(name, *rest))
    pytester.makepyfile("""
import time
import pynvml

def load(seconds=0.05):
    pynvml.set_power(0, 300.0)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        time.sleep(0.005)
    pynvml.set_power(0, 80.0)  # the work is done: the GPU idles (between calls too, for as long as they wait)

def test_gpu(energy):
    energy.run(load, rounds=3, min_window=0.3, warmup=0)
""")
    result, document = run(pytester, ["-p", "no:xdist"], "--energy-devices", "gpu", "--energy-idle-seconds", "1")
    result.assert_outcomes(passed=1)
    [record] = document["records"]
    [gpu] = record["components"]
    assert gpu["method"] == "counter" and gpu["device"] == "gpu:0"
    # Idle power is one window's joules over its second: each of its two edges placed to ~10 ms of 80 W on a
    # loaded host (the record states no uncertainty for it; the net checks below include it).
    assert gpu["idle_watts"] == pytest.approx(80.0, rel=0.04)
    assert gpu["ticks"] >= 8
    # What the fake drew above idle, all of it inside the rounds (no warm-up): 220 W while it worked.
    now = fake.now()
    worked = fake.gpus[0].energy(0.0, now) - 80.0 * now
    windows = sum(r["seconds"] for r in record["rounds"])
    assert 0.9 * 220.0 * windows <= worked <= 220.0 * windows * 1.0001
    stated = gpu["uncertainty_joules"]
    assert stated <= 0.1 * worked  # an uncertainty that covers any error would make the checks below empty
    assert sum(r["net_joules"] for r in record["rounds"]) == pytest.approx(worked, abs=max(0.03 * worked, stated))
    waited = 220.0 * windows - worked  # the rounds' time between calls, when it idled
    for round_ in record["rounds"]:
        expected = 220.0 * round_["seconds"]
        assert expected - waited - max(0.03 * expected, stated) <= round_["net_joules"] <= expected + max(
            0.03 * expected, stated)
    assert record["fingerprint"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert record["fingerprint"]["id"].startswith("nvidia-h100-80gb-hbm3-x1-")
    # No reference workload can run on a GPU torch cannot reach: no reference, rather than CPU work's.
    assert document["session"]["reference_joules"] == {} and record["reference_joules"] == {}
