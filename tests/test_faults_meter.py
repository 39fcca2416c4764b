"""Faults at the measurement boundary: frozen and jumping counters, impossible power readings, and bad
arguments to the fixture (issue 12, items 2 and 13).

A window the device could not have drawn (a counter that did not move, or moved by more than its power
limit allows) is invalid with a note, never 0 J or a wild figure that passes or fails a budget. The
fakes are the project's hardware boundaries: pytest_energy.testing's fake pynvml and powercap tree.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_energy.core.record import Round
from pytest_energy.measure.meter import BOUNDARY, END, START, Measured, Meter, Taken
from pytest_energy.measure.sources import SourceError, nvml, rapl
from pytest_energy.measure.sources.base import Channel
from pytest_energy.testing import FakeGpu, install_fake_nvml, make_powercap


def _gpu_meter(monkeypatch: pytest.MonkeyPatch, gpu: FakeGpu, idle_seconds: float = 0.3):
    """A started meter on one fake NVML GPU; returns (meter, fake module)."""
    fake = install_fake_nvml(monkeypatch, [gpu])
    (channel,) = nvml.open_channels(None).channels
    meter = Meter([channel], synchronize=lambda: None)
    meter.start(idle_seconds)
    return meter, fake


def _window(meter: Meter, seconds: float, rounds: int = 1, then: Callable[[], Any] = lambda: None) -> Taken:
    """``rounds`` back-to-back windows of ``seconds`` each; ``then`` runs right after the last edge (the
    meter takes the device to idle from there until its next tick, as a test's work has ended)."""
    edges = [meter.edge(START)]
    for index in range(rounds):
        time.sleep(seconds)
        edges.append(meter.edge(END if index == rounds - 1 else BOUNDARY))
    then()
    return Taken(edges, [1] * rounds)


def _close_to(measured: Measured, round_: Round, watts: float) -> bool:
    """The round's joules are ``watts`` over its seconds within 5 %, or within the uncertainty the meter
    states (a loaded host reads the counter late, and the meter then says it knows its edges less well)."""
    expected = watts * round_.seconds
    return abs(round_.gross_joules - expected) <= max(0.05 * expected, measured.components[0].uncertainty_joules)


# -- NVML counter -------------------------------------------------------------------------------
def test_a_counter_frozen_from_the_start_gives_no_valid_window_and_no_idle(monkeypatch):
    meter, _ = _gpu_meter(monkeypatch, FakeGpu(power=80.0, frozen_from=0.0))
    try:
        measured = meter.account(_window(meter, 0.05, rounds=2))
    finally:
        meter.close()
    assert meter.idle_watts == {"gpu:0": 0.0}
    [note] = meter.notes
    assert note.startswith("gpu:0: idle power not measured (the energy counter did not change for ")
    assert "a frozen counter); net energy is gross energy this session" in note
    assert [r.valid for r in measured.rounds] == [False, False]
    assert all(math.isnan(r.gross_joules) for r in measured.rounds)
    [gpu] = measured.components
    assert not gpu.valid and gpu.ticks == 0 and gpu.gross_joules == 0.0
    assert gpu.note.startswith("window(s) invalid: the energy counter did not change for ")


def test_a_counter_that_freezes_after_idle_invalidates_the_windows_after(monkeypatch):
    gpu = FakeGpu(power=100.0)
    meter, fake = _gpu_meter(monkeypatch, gpu)
    try:
        assert meter.idle_watts["gpu:0"] == pytest.approx(100.0, rel=0.05)
        alive = meter.account(_window(meter, 0.35))
        gpu.frozen_from = fake.now()
        frozen = meter.account(_window(meter, 0.35))
    finally:
        meter.close()
    assert alive.rounds[0].valid
    assert _close_to(alive, alive.rounds[0], 100.0), (alive.rounds[0], alive.components[0].uncertainty_joules)
    assert not frozen.rounds[0].valid
    assert "frozen counter" in frozen.components[0].note


def test_a_counter_jump_of_a_gigajoule_is_an_invalid_window_not_megajoules(monkeypatch):
    gpu = FakeGpu(power=100.0)
    meter, fake = _gpu_meter(monkeypatch, gpu)
    try:
        edges = [meter.edge(START)]
        for index in range(3):
            if index == 1:
                # The jump comes at the tick after the one that resolved the first window's end edge (waited
                # on, not assumed from a sleep: a loaded machine may run the poller late), so at least two
                # ticks before the second window ends: no edge rests on it, the second window holds it.
                edges[1].resolve()
                gpu.jumps.append((fake.now(), 10**12))  # +1 GJ in millijoules
            time.sleep(0.3)
            edges.append(meter.edge(END if index == 2 else BOUNDARY))
        measured = meter.account(Taken(edges, [1, 1, 1]))
    finally:
        meter.close()
    assert [r.valid for r in measured.rounds] == [True, False, True]
    for round_ in (measured.rounds[0], measured.rounds[2]):
        assert _close_to(measured, round_, 100.0), (round_, measured.components[0].uncertainty_joules)
    [component] = measured.components
    assert "above 1.5x its 700 W power limit: a counter jump" in component.note
    assert component.gross_joules < 200.0  # the jump counts nowhere


def test_an_edge_between_the_ticks_around_a_jump_is_invalid_not_megajoules(monkeypatch):
    """An edge interpolated between the ticks around a jump rested on gigawatts, its uncertainty as
    wild, so a window's plausibility check had the slack to pass megajoules as valid. The edge is
    invalid, and both windows it bounds."""
    gpu = FakeGpu(power=100.0)
    meter, fake = _gpu_meter(monkeypatch, gpu)
    try:
        first = meter.edge(START)
        time.sleep(0.3)
        first.resolve()
        gpu.jumps.append((fake.now(), 10**12))  # published at the next tick, after the middle edge
        middle = meter.edge(BOUNDARY)
        time.sleep(0.3)
        measured = meter.account(Taken([first, middle, meter.edge(END)], [1, 1]))
    finally:
        meter.close()
    assert middle.resolve()["gpu:0"].error.startswith("the counter rose 1e+09 J in one tick, above 1.5x its 700 W "
                                                      "power limit: a counter jump")
    assert [r.valid for r in measured.rounds] == [False, False]
    [component] = measured.components
    assert component.note.startswith("window(s) invalid: the counter rose 1e+09 J in one tick")
    assert component.gross_joules == 0.0


def test_a_load_at_the_power_limit_is_plausible(monkeypatch):
    gpu = FakeGpu(power=80.0)
    meter, fake = _gpu_meter(monkeypatch, gpu)
    try:
        fake.set_power(0, 700.0)
        measured = meter.account(_window(meter, 0.3, rounds=2, then=lambda: fake.set_power(0, 80.0)))
    finally:
        meter.close()
    assert all(r.valid for r in measured.rounds)
    assert measured.components[0].note == ""


def test_energy_far_below_idle_is_a_stalled_window(monkeypatch):
    """Power sampled (exact at the edges, unlike a counter's interpolated ticks): 100 W idle, then 2 W."""
    fake = install_fake_nvml(monkeypatch, [FakeGpu(has_counter=False, power=100.0)])
    (channel,) = nvml.open_channels(None).channels
    meter = Meter([channel], synchronize=lambda: None)
    try:
        meter.start(0.2)
        fake.set_power(0, 2.0)  # a fiftieth of idle: no GPU idles there, a stalling reading does
        measured = meter.account(_window(meter, 0.2))
    finally:
        meter.close()
    assert meter.idle_watts["gpu:0"] == pytest.approx(100.0, rel=0.05)
    assert not measured.rounds[0].valid
    assert re.fullmatch(r"window\(s\) invalid: [\d.]+ J in [\d.]+ s \(2\.?\d* W\), below 10 % of its "
                        r"[\d.]+ W idle power: a stalled counter", measured.components[0].note)


def test_ticks_are_the_updates_seen_not_the_window_over_the_period(monkeypatch):
    meter, _ = _gpu_meter(monkeypatch, FakeGpu(power=150.0, tick_phase=0.037))
    try:
        measured = meter.account(_window(meter, 0.32, rounds=3))
    finally:
        meter.close()
    [gpu] = measured.components
    # Each window spans the ticks between the first ticks after its edges: 3 or 4 of the 100 ms ticks in
    # 0.32 s (a loaded host delays the reads, never where the ticks are), not 0.32 / 0.1 = 3.2 each.
    assert 3 * 3 <= gpu.ticks <= 3 * 4
    assert all(r.valid for r in measured.rounds)


class FakeClock:
    """The meter's clock and sleep in a test: time moves only when a read or a sleep moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class DescheduledCounter(Channel):
    """A 100 ms counter on a :class:`FakeClock` whose poller thread loses the CPU around every tick: a
    read begun less than ``late`` seconds before a tick samples the counter, then returns only ``late``
    later (as on a loaded host, where the poller wakes just before the tick it predicted). Every change
    is then seen between two reads ``late`` apart, never between two close ones."""

    kind = "gpu"
    method = "counter"
    device = "gpu:0"
    tick_seconds = 0.1

    def __init__(self, clock: FakeClock, watts: float, late: float = 0.015, phase: float = 0.037) -> None:
        self.clock, self.late, self.phase = clock, late, phase
        self.history = [(0.0, watts)]  # (instant, watts from then on)

    def set_power(self, since: float, watts: float) -> None:
        self.history.append((since, watts))

    def energy_until(self, t: float) -> float:
        ends = [since for since, _ in self.history[1:]] + [math.inf]
        return sum(watts * (min(end, t) - since) for (since, watts), end in zip(self.history, ends) if since < t)

    def read(self) -> float:
        sampled = self.clock.now + 0.0001
        tick = math.floor((sampled - self.phase) / self.tick_seconds) * self.tick_seconds + self.phase
        self.clock.now += 0.0002
        if tick + self.tick_seconds - sampled < self.late:
            self.clock.now += self.late
        return self.energy_until(tick)


def test_an_edge_whose_reads_lose_the_cpu_is_placed_between_the_ticks_next_to_it(monkeypatch):
    """Every change seen across a delayed read: the poller took the next tick instead, three times, then
    extrapolated the edge back from a tick 0.4 s on, at the power across it, after the round's end edge
    had made the device idle: 55 J off, stated as 0.4 J. The ticks come every period, so the reads around
    the edge place it between the two next to it, and the uncertainty stated covers the error."""
    from pytest_energy.measure import meter as meter_module

    clock = FakeClock()
    monkeypatch.setattr(meter_module, "time", clock)
    channel = DescheduledCounter(clock, 300.0)
    meter = Meter([channel], synchronize=lambda: None)
    meter.start(None)
    meter.idle_watts[channel.device] = 80.0
    poller = meter._pollers[channel.device]
    first = clock.now + 0.05
    edges = [(first, BOUNDARY), (first + 0.5, BOUNDARY), (first + 0.8, END)]
    channel.set_power(first + 0.8, 80.0)  # the work ends at the end edge, before the poller saw a close change
    values = []
    for at, side in edges:
        clock.now = max(clock.now, at)  # the poller may still be on the edge before (it fell behind)
        values.append(poller._resolve(at, side))
    meter.close()
    for (at, _), value in zip(edges, values):
        truth = channel.energy_until(at)
        assert value.uncertainty <= 300.0 * 0.02  # the reads are 15 ms apart: no worse than that
        assert value.joules == pytest.approx(truth, abs=value.uncertainty), at - first
    for (start, _), (end, _), before, after in zip(edges, edges[1:], values, values[1:]):
        assert after.joules - before.joules == pytest.approx(300.0 * (end - start), rel=0.03)


# -- NVML power sampling --------------------------------------------------------------------------
def test_a_power_reading_above_the_limit_invalidates_its_window_only(monkeypatch):
    spike = [False]
    gpu = FakeGpu(has_counter=False, power=lambda t: 50_000.0 if spike[0] else 120.0)
    fake = install_fake_nvml(monkeypatch, [gpu])
    (channel,) = nvml.open_channels(None).channels
    try:
        channel.read()
        spike[0] = True
        with pytest.raises(SourceError, match=r"gpu:0: NVML read 5e\+04 W, above 1.5x its 700 W power limit"):
            channel.read()
        spike[0] = False
        # Counting goes on: 120 W over the time between the two reads, which the clock readings bracket
        # (a loaded machine may stretch the sleep, never shrink it).
        outer_start = time.perf_counter()
        before = channel.read()
        inner_start = time.perf_counter()
        time.sleep(0.05)
        inner_end = time.perf_counter()
        after = channel.read()
        outer_end = time.perf_counter()
        assert 120.0 * (inner_end - inner_start) * 0.99 <= after - before <= 120.0 * (outer_end - outer_start) * 1.01
    finally:
        channel.close()
    assert fake.calls["nvmlDeviceGetEnforcedPowerLimit"] == 1


def test_sampled_power_reading_zero_watts_is_a_frozen_window(monkeypatch):
    gpu = FakeGpu(has_counter=False, power=100.0)
    fake = install_fake_nvml(monkeypatch, [gpu])
    (channel,) = nvml.open_channels(None).channels
    meter = Meter([channel], synchronize=lambda: None)
    try:
        meter.start(0.1)
        fake.set_power(0, 0.0)
        measured = meter.account(_window(meter, 0.15))
    finally:
        meter.close()
    assert not measured.rounds[0].valid
    assert "the counter did not change in " in measured.components[0].note


# -- RAPL -----------------------------------------------------------------------------------------
def _rapl_meter(tmp_path: Path, idle_seconds: float = 0.15):
    tree = make_powercap(tmp_path, dram=False)
    (channel,) = rapl.open_channels(str(tree.root)).channels
    return tree, channel, Meter([channel], synchronize=lambda: None)


def test_a_frozen_rapl_counter_is_an_invalid_window_not_zero_joules(tmp_path):
    tree, channel, meter = _rapl_meter(tmp_path)
    try:
        meter.start(0.15)  # nobody rewrites energy_uj: frozen
        measured = meter.account(_window(meter, 0.12))
    finally:
        meter.close()
    assert meter.idle_watts == {"cpu:package-0": 0.0}
    assert "cpu:package-0: idle power not measured (the counter did not change in " in meter.notes[0]
    assert not measured.rounds[0].valid
    assert "a frozen counter" in measured.components[0].note


def test_a_rapl_reset_read_as_a_wrap_is_an_invalid_window(tmp_path):
    tree, channel, meter = _rapl_meter(tmp_path)
    try:
        meter.start(0.01)
        tree.set_energy("intel-rapl:0", 5_000_000)
        edges = [meter.edge(START)]
        tree.set_energy("intel-rapl:0", 6_000_000)  # 1 J: plausible
        edges.append(meter.edge(BOUNDARY))
        tree.set_energy("intel-rapl:0", 1_000)  # back without a wrap: read as a wrap, +262 kJ
        edges.append(meter.edge(END))
        measured = meter.account(Taken(edges, [1, 1]))
    finally:
        meter.close()
    first, second = measured.rounds
    assert first.valid and first.gross_joules == pytest.approx(1.0)
    assert not second.valid
    assert "above 1.5x its 1e+03 W power limit: a counter jump" in measured.components[0].note


# -- the whole plugin: a budget on a frozen counter -------------------------------------------------
CONFTEST = """
import importlib.util
import math
import sys

from pytest_energy.testing import FakeGpu, FakeNvmlModule

# One fake GPU per process (controller and each xdist worker) at 80 W; its counter frozen or not.
sys.modules["pynvml"] = FakeNvmlModule([FakeGpu(power=80.0, frozen_from={frozen})])
# torch cannot reach a fake GPU; hidden, the reference workload does not import it (3 s a process).
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *rest: None if name == "torch" else _find_spec(name, *rest)
"""

BUDGET_TESTS = """
import time
import pytest

@pytest.mark.energy(budget="5 J", per="test")
def test_budget(energy):
    energy.run(time.sleep, args=(0.05,), rounds=2, min_window=0.25, warmup=0)
"""

ARGS = ["-p", "no:cacheprovider", "--energy", "--energy-devices", "gpu", "--energy-idle-seconds", "0.3",
        "--energy-report", "none", "--energy-json", "out.json"]


@pytest.fixture(params=["serial", "xdist"])
def workers(request) -> list[str]:
    return ["-p", "no:xdist"] if request.param == "serial" else ["-n", "2"]


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tests: str, *args: str,
         frozen: bool = False) -> tuple[pytest.RunResult, dict]:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("COLUMNS", "240")  # failure lines in the short summary are not cut
    pytester.makeconftest(CONFTEST.replace("{frozen}", "0.0" if frozen else "math.inf"))
    pytester.makepyfile(test_faults=tests)
    result = pytester.runpytest_subprocess(*args)
    path = pytester.path / "out.json"
    return result, json.loads(path.read_text()) if path.exists() else {}


def test_a_frozen_counter_never_passes_a_budget_with_a_valid_zero(pytester, monkeypatch, workers):
    result, document = _run(pytester, monkeypatch, BUDGET_TESTS, *ARGS, *workers, frozen=True)
    result.assert_outcomes(passed=1)  # a frozen counter is a fault of the machine, not of the test
    assert result.ret == 1  # ...and a budget nobody could check fails the gate (issue 22, item 4)
    assert "Traceback" not in result.stdout.str()
    [record] = document["records"]
    assert record["rounds"] and not any(r["valid"] for r in record["rounds"])
    assert record["total_gross_joules"] == 0 and record["per_iteration_net_joules"] is None
    # The budget was not judged on a figure that does not exist, and is kept, saying so.
    [budget] = record["criteria"]["energy"]
    assert budget["met"] is None and budget["state"].startswith("not checked: every window was invalid (gpu:0: ")
    assert document["gate"]["outcome"] == "incomplete"
    [gpu] = record["components"]
    assert not gpu["valid"] and gpu["ticks"] == 0
    assert "a frozen counter" in gpu["note"]
    assert ("every window was invalid: no energy figure for this measurement, budgets not checked"
            in record["notes"])
    assert any(n.startswith("gpu:0: idle power not measured (the energy counter did not change")
               for n in document["session"]["notes"])
    result.stdout.fnmatch_lines(["pytest-energy: gpu:0: idle power not measured (the energy counter did not change*"])


def test_the_same_budget_on_a_live_counter_is_judged_and_fails(pytester, monkeypatch, workers):
    result, document = _run(pytester, monkeypatch, BUDGET_TESTS, *ARGS, *workers)
    [record] = document["records"]
    assert all(r["valid"] for r in record["rounds"])
    assert record["criteria"]["energy"][0]["met"] is False  # 80 W x 0.5 s is 40 J, over the 5 J budget
    if "no:xdist" in workers:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*energy budget exceeded: * for the test (gross, counter) > budget 5 J*"])
    else:  # both workers see the one GPU: its board counts them both (issue 25), so the budget fails nothing
        result.assert_outcomes(passed=1)
        assert record["criteria"]["energy"][0]["state"] == "over budget (shared with other workers, not gating)"


def test_a_counter_jump_fails_no_budget_and_counts_nowhere(pytester, monkeypatch, workers):
    tests = """
import time
import pynvml
import pytest

calls = []

def work():
    calls.append(1)
    if len(calls) == 8:  # in the second round: the counter jumps by 1 GJ (in mJ)
        pynvml.gpus[0].jumps.append((pynvml.now(), 10**12))
    time.sleep(0.05)

@pytest.mark.energy(budget="1 kJ", per="test")
def test_budget(energy):
    energy.run(work, rounds=4, min_window=0.25, warmup=0)
"""
    result, document = _run(pytester, monkeypatch, tests, *ARGS, *workers)
    result.assert_outcomes(passed=1)
    [record] = document["records"]
    validity = [r["valid"] for r in record["rounds"]]
    assert validity.count(False) in (1, 2) and validity.count(True) >= 2  # the jump's window(s) only
    assert record["total_gross_joules"] < 1000.0
    assert record["criteria"]["energy"][0]["met"] is True
    [gpu] = record["components"]
    assert "a counter jump" in gpu["note"]


# -- the fixture's arguments ------------------------------------------------------------------------
ARGUMENT_TESTS = """
import pytest

def work():
    return sum(range(100))

def test_negative_rounds(energy):
    energy.run(work, rounds=-1)

def test_fractional_iterations(energy):
    energy.run(work, iterations=2.5)

def test_zero_min_window(energy):
    energy.run(work, min_window=0)

def test_iterations_set_to_a_word(energy):
    with energy.measure() as m:
        work()
        m.iterations = "many"

def test_iterations_set_negative(energy):
    with energy.measure() as m:
        work()
        m.iterations = -5

def test_measure_iterations_zero(energy):
    with energy.measure(iterations=0):
        work()

def test_fill_window_without_iterations(energy):
    energy.run(work, fill_window=True)

def test_good_arguments(energy):
    assert energy.run(work, rounds=2, iterations=3, warmup=0) == 4950
    with energy.measure() as m:
        work()
        m.iterations = 4
"""

ARGUMENT_ERRORS = {
    "test_negative_rounds": "pytest-energy: energy.run(rounds=...) has -1, expected an integer >= 1 and <= 1000",
    "test_fractional_iterations": "pytest-energy: energy.run(iterations=...) has 2.5, expected an integer >= 1",
    "test_zero_min_window": "pytest-energy: energy.run(min_window=...) has 0, expected seconds > 0 and <= 600",
    "test_iterations_set_to_a_word":
        "pytest-energy: the energy.measure() block's iterations has 'many', expected an integer >= 1",
    "test_iterations_set_negative":
        "pytest-energy: the energy.measure() block's iterations has -5, expected an integer >= 1",
    "test_measure_iterations_zero": "pytest-energy: energy.measure(iterations=...) has 0, expected an integer >= 1",
    "test_fill_window_without_iterations":
        "pytest-energy: energy.run(fill_window=True) needs iterations=N (without them every round fills the "
        "window already)",
}


@pytest.mark.parametrize("energy_on", [True, False], ids=["energy", "no-energy"])
def test_bad_fixture_arguments_fail_their_test_with_one_line(pytester, monkeypatch, workers, energy_on):
    args = ["-p", "no:cacheprovider", "-rf"]
    if energy_on:
        args += ["--energy", "--energy-devices", "cpu", "--energy-idle-seconds", "0.05", "--energy-min-window",
                 "0.02", "--energy-report", "none", "--energy-json", "out.json"]
    result, document = _run(pytester, monkeypatch, ARGUMENT_TESTS, *args, *workers)
    result.assert_outcomes(failed=len(ARGUMENT_ERRORS), passed=1)
    output = result.stdout.str()
    assert "Traceback" not in output and "pytest_energy" not in output  # no frame of the plugin
    for name, message in ARGUMENT_ERRORS.items():
        result.stdout.fnmatch_lines([f"FAILED test_faults.py::{name} - Failed: {message}"])
        assert output.count(message) == 2  # its failure section and its summary line, nothing more
    if energy_on:
        names = {r["nodeid"].split("::")[1] for r in document["records"]}
        # The blocks whose iterations were set badly keep their energy under the last good count.
        assert names == {"test_good_arguments", "test_iterations_set_to_a_word", "test_iterations_set_negative"}
        blocks = {r["nodeid"].split("::")[1]: r for r in document["records"] if r["form"] == "block"}
        assert blocks["test_iterations_set_negative"]["rounds"][0]["iterations"] == 1
        assert blocks["test_good_arguments"]["rounds"][0]["iterations"] == 4
