"""GPU conditions on every record (temperature, SM clock, power limit, throttle reasons), throttled
windows, the cooldown before a measurement, and the verdict's word when conditions differ from the
baseline's; all against the fake NVML (pytest_energy.testing)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pytest_energy.testing.records import FINGERPRINT, make_judgement, make_record, make_run_info

from pytest_energy.store import baselines as store
from pytest_energy.measure import conditions, meter
from pytest_energy.core.config import SettingError, resolve
from pytest_energy.judge.gate import judge
from pytest_energy.measure.meter import Meter
from pytest_energy.report import build_report, html
from pytest_energy.measure.sources import nvml
from pytest_energy.testing import FakeClock, FakeGpu, install_fake_nvml
from pytest_energy.testing.nvml import HW_THERMAL_SLOWDOWN, SW_POWER_CAP


def _meter(monkeypatch: pytest.MonkeyPatch, gpu: FakeGpu) -> tuple[Meter, object]:
    fake = install_fake_nvml(monkeypatch, [gpu])
    measuring = Meter(nvml.open_channels(None).channels, synchronize=lambda: None)
    measuring.start(idle_seconds=0.2)
    return measuring, fake


def _sleep(seconds: float = 0.02) -> None:
    time.sleep(seconds)


def test_the_channel_reads_temperature_clock_limit_and_reasons(monkeypatch):
    install_fake_nvml(monkeypatch, [FakeGpu(temperature_c=61.4, sm_clock_mhz=1410, power_limit_watts=500.0,
                                            throttle_reasons=SW_POWER_CAP | 0x1)])
    (channel,) = nvml.open_channels(None).channels
    try:
        assert channel.conditions() == {"temperature_c": 61, "sm_clock_mhz": 1410, "power_limit_watts": 500.0,
                                        "throttle_reasons": ["gpu_idle", "sw_power_cap"]}
    finally:
        channel.close()


def test_an_older_pynvml_gives_the_reasons_by_their_throttle_name(monkeypatch):
    fake = install_fake_nvml(monkeypatch, [FakeGpu(throttle_reasons=HW_THERMAL_SLOWDOWN)])
    monkeypatch.delattr(type(fake), "nvmlDeviceGetCurrentClocksEventReasons")
    (channel,) = nvml.open_channels(None).channels
    try:
        assert channel.conditions()["throttle_reasons"] == ["hw_thermal_slowdown"]
        assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 1
    finally:
        channel.close()


def test_conditions_at_the_window_edges_are_on_the_component_without_a_note(monkeypatch):
    warming = FakeGpu(power=150.0, temperature_c=lambda t: 40.0 + 10.0 * t, sm_clock_mhz=1755)
    measuring, _ = _meter(monkeypatch, warming)
    measured_thread = threading.get_ident()
    readers: list[int] = []
    channel = measuring.channels[0]
    original = type(channel).conditions
    monkeypatch.setattr(type(channel), "conditions", lambda self: readers.append(threading.get_ident())
                        or original(self))
    try:
        measured = measuring.account(measuring.take_rounds(_sleep, (), {}, rounds=3, min_window=0.2, warmup=0))
    finally:
        measuring.close()
    [gpu] = measured.components
    start, end = gpu.conditions["start"], gpu.conditions["end"]
    assert start["temperature_c"] < end["temperature_c"]  # the fake warms 10 degC a second
    assert end["temperature_c"] - start["temperature_c"] == pytest.approx(10 * 0.6, abs=2.5)
    assert start["sm_clock_mhz"] == 1755 and start["power_limit_watts"] == 700.0 and start["throttle_reasons"] == []
    assert (gpu.conditions["throttled_windows"], gpu.conditions["throttling"]) == (0, [])
    assert gpu.note == "" and "cooldown" not in gpu.conditions
    assert len(readers) == 4 and measured_thread not in readers  # one read per edge, none on this thread


def test_a_window_with_power_or_thermal_throttling_gets_a_note(monkeypatch):
    hot_later = FakeGpu(power=150.0, throttle_reasons=lambda t: SW_POWER_CAP | HW_THERMAL_SLOWDOWN if t > 0.9 else 0x1)
    measuring, fake = _meter(monkeypatch, hot_later)
    try:
        while fake.now() < 0.45:
            time.sleep(0.01)
        measured = measuring.account(measuring.take_rounds(_sleep, (), {}, rounds=3, min_window=0.2, warmup=0))
    finally:
        measuring.close()
    [gpu] = measured.components
    assert gpu.valid  # throttling changes what energy means, not whether it was read
    assert gpu.conditions["throttling"] == ["hw_thermal_slowdown", "sw_power_cap"]
    assert 1 <= gpu.conditions["throttled_windows"] <= 3
    assert (f"thermal or power throttling (hw_thermal_slowdown, sw_power_cap) at the edges of "
            f"{gpu.conditions['throttled_windows']} of 3 window(s)") in gpu.note
    assert "gpu_idle" not in gpu.note  # idling is not throttling


def test_a_cooldown_waits_until_the_gpu_is_cool_enough(monkeypatch):
    cooling = FakeGpu(power=80.0, temperature_c=lambda t: max(40.0, 60.0 - 20.0 * t))  # 45 degC at 0.75 s
    measuring, fake = _meter(monkeypatch, cooling)
    try:
        taken = measuring.take_rounds(_sleep, (), {}, rounds=1, min_window=0.1, warmup=0, cooldown="45C")
        assert fake.now() >= 0.75
        measured = measuring.account(taken)
    finally:
        measuring.close()
    assert taken.cooldown is not None and taken.cooldown.reached
    [gpu] = measured.components
    assert gpu.conditions["cooldown"]["reached"] is True and gpu.conditions["cooldown"]["target"] == "45C"
    assert gpu.conditions["start"]["temperature_c"] <= 45
    assert "cooldown" not in gpu.note


def test_a_cooldown_not_reached_in_time_is_a_note_and_the_test_goes_on(monkeypatch):
    monkeypatch.setattr(meter, "COOLDOWN_TIMEOUT_SECONDS", 0.3)
    measuring, _ = _meter(monkeypatch, FakeGpu(power=80.0, temperature_c=80.0))
    try:
        began = time.perf_counter()
        taken = measuring.take_rounds(_sleep, (), {}, rounds=1, min_window=0.1, warmup=0, cooldown="45C")
        assert time.perf_counter() - began < 2.0
        measured = measuring.account(taken)
    finally:
        measuring.close()
    [gpu] = measured.components
    assert gpu.valid and measured.rounds[0].valid
    assert gpu.conditions["cooldown"]["reached"] is False
    assert "cooldown to 45C not reached in 0.3" in gpu.note and "(gpu:0 at 80 degC)" in gpu.note


def test_an_idle_cooldown_waits_for_idle_power_that_long(monkeypatch):
    measuring, fake = _meter(monkeypatch, FakeGpu(power=80.0))
    try:
        fake.set_power(0, 400.0)  # another job is still working on the GPU
        threading.Timer(0.3, lambda: fake.set_power(0, 80.0)).start()
        cooled = measuring.cool_down("0.4s")
        assert cooled is not None and cooled.reached and cooled.waited_seconds >= 0.7
        monkeypatch.setattr(meter, "COOLDOWN_TIMEOUT_SECONDS", 0.2)
        fake.set_power(0, 400.0)
        busy = measuring.cool_down("0.2s")
        assert busy is not None and not busy.reached and busy.detail == "gpu:0 at 400 W"
    finally:
        measuring.close()


def test_after_the_first_miss_no_cooldown_waits_and_the_miss_is_said_once(monkeypatch):
    """A GPU that stays at 80 degC under --energy-cooldown 45C: the first measurement waits the whole
    120 s (on a fake clock), the next 19 read the GPU once and go on; one line says so."""
    temperature = [80.0]
    install_fake_nvml(monkeypatch, [FakeGpu(power=80.0, temperature_c=lambda t: temperature[0])])
    clock = FakeClock()
    poll = 2 * meter.COOLDOWN_POLL_SECONDS  # the wait ends at the first reading past its deadline
    measuring = Meter(nvml.open_channels(None).channels, synchronize=lambda: None, clock=clock, sleep=clock.advance)
    measuring.start(idle_seconds=0.2)
    try:
        first = measuring.cool_down("45C")
        assert meter.COOLDOWN_TIMEOUT_SECONDS == 120.0 and clock() == pytest.approx(120.0, abs=poll)
        waited = clock()
        later = [measuring.cool_down("45C") for _ in range(19)]
        assert clock() == waited  # not 20 x 120 s: the suite goes on at once
        assert first is not None and not first.reached and first.detail == "gpu:0 at 80 degC"
        assert all(c is not None and not c.reached and c.waited_seconds == 0.0 for c in later)
        assert later[0].detail == "gpu:0 at 80 degC; not waited for, as the target was missed earlier this session"
        assert measuring.notes == ["cooldown to 45C not reached within 120 s (gpu:0 at 80 degC): later measurements "
                                   "this session do not wait for it (their records say where the GPUs were)"]
        # A GPU that has cooled by a later measurement is read as cool, still without waiting.
        temperature[0] = 44.0
        cooled = measuring.cool_down("45C")
        assert cooled is not None and cooled.reached and cooled.waited_seconds == 0.0
        # Another target has not missed yet: it waits its own timeout once.
        colder = measuring.cool_down("30C")
        assert colder is not None and not colder.reached and clock() == pytest.approx(240.0, abs=2 * poll)
        assert len(measuring.notes) == 2 and measuring.notes[1].startswith("cooldown to 30C not reached within 120 s")
    finally:
        measuring.close()


def test_no_cooldown_where_nothing_reports_conditions(tmp_path):
    from pytest_energy.measure.sources import detect

    found = detect("cpu", rapl_root=str(tmp_path))
    measuring = Meter(found.channels, synchronize=lambda: None)
    measuring.start(idle_seconds=0.05)
    try:
        assert measuring.cool_down("45C") is None
        measured = measuring.account(measuring.take_rounds(_sleep, (), {}, rounds=1, min_window=0.05, warmup=0))
    finally:
        measuring.close()
    assert measured.components[0].conditions == {}


@pytest.mark.parametrize("raw, value", [("45C", "45C"), ("45.5c", "45.5C"), (" 5s ", "5s"), ("0.5S", "0.5s")])
def test_cooldown_values_are_normalised(raw, value):
    settings = resolve(True, {"energy_cooldown": raw}, lambda name: None, environ={})
    assert settings.cooldown == value


@pytest.mark.parametrize("raw", ["45F", "0C", "130C", "5", "hot", "601s"])
def test_a_bad_cooldown_is_one_line_naming_its_source(raw):
    with pytest.raises(SettingError) as error:
        resolve(True, {}, lambda name: None, environ={"PYTEST_ENERGY_COOLDOWN": raw})
    assert str(error.value) == (f"pytest-energy: PYTEST_ENERGY_COOLDOWN has {raw!r}, expected a temperature such "
                                "as 45C (at most 120) or seconds such as 5s (at most 600)")


def test_difference_says_temperature_and_power_limit_changes():
    baseline = {"gpu:0": {"temperature_c": 41, "power_limit_watts": 700.0}}
    assert conditions.difference({"gpu:0": {"temperature_c": 50, "power_limit_watts": 500.0}}, baseline) == \
        "+9 degC, power limit 700 W -> 500 W"
    assert conditions.difference({"gpu:0": {"temperature_c": 44, "power_limit_watts": 700.0}}, baseline) == ""
    assert conditions.difference({"gpu:0": {"temperature_c": 30}}, baseline) == "-11 degC"
    assert conditions.difference({"gpu:0": {"temperature_c": 30}}, {}) == ""  # an old baseline: nothing to say
    assert conditions.difference({"gpu:0": {"power_limit_watts": 500.0}}, baseline, power_limit=False) == ""


def _gpu_record(name: str, temperature: int, limit: float):
    record = make_record(name)
    record.components[0].conditions = {
        "start": {"temperature_c": temperature, "sm_clock_mhz": 1980, "power_limit_watts": limit,
                  "throttle_reasons": []},
        "end": {"temperature_c": temperature + 8, "sm_clock_mhz": 1755, "power_limit_watts": limit,
                "throttle_reasons": ["sw_power_cap"]},
        "throttled_windows": 2, "throttling": ["sw_power_cap"]}
    record.fingerprint = FINGERPRINT
    return record


def test_the_verdict_line_says_how_conditions_differ_from_the_baselines(tmp_path: Path):
    folder = store.set_folder(tmp_path / "baselines", "default")
    store.update(folder, [store.from_record(_gpu_record("t.py::a", 41, 700.0))])
    stored = json.loads(next(folder.rglob("*.json")).read_text())
    [energy] = stored["records"]["t.py::a"]["energy"].values()
    assert energy["conditions"] == {"gpu:0": {"temperature_c": 41, "sm_clock_mhz": 1980,
                                              "power_limit_watts": 700.0, "throttle_reasons": []}}
    settings = resolve(True, {}, lambda name: None, environ={})
    settings.values.update(history=str(tmp_path / "history.sqlite"))
    judgement = judge([_gpu_record("t.py::a", 50, 500.0)], settings, FINGERPRINT, tmp_path)
    [verdict] = [v for v in judgement.verdicts if v.metric == "energy"]
    assert verdict.status == "unchanged"
    assert verdict.message.endswith("; conditions differ from the baseline's: +9 degC, power limit 700 W -> 500 W")
    same = judge([_gpu_record("t.py::a", 43, 700.0)], settings, FINGERPRINT, tmp_path)
    assert all("conditions differ" not in v.message for v in same.verdicts)


def test_the_html_details_carry_the_conditions():
    record = _gpu_record("t.py::a", 41, 700.0)
    record.components[0].conditions["cooldown"] = {"target": "45C", "waited_seconds": 3.2, "reached": True}
    page = html.render(build_report([record], make_judgement([]), make_run_info()))
    assert ("<dt>gpu:0 conditions</dt><dd>41 -&gt; 49 degC, SM 1980 -&gt; 1755 MHz, power limit 700 W, throttled "
            "(sw_power_cap) in 2 window(s), cooled down to 45C in 3.2 s</dd>") in page


CONFTEST = """
import sys

import pytest_energy.measure.meter
from pytest_energy.testing import FakeGpu, FakeNvmlModule

pytest_energy.measure.meter.COOLDOWN_TIMEOUT_SECONDS = 0.3
# At 40 degC and held at its power cap the whole time.
sys.modules["pynvml"] = FakeNvmlModule([FakeGpu(power=80.0, temperature_c=40.0, throttle_reasons=0x4)])
"""

TESTS = """
import time
import pytest

def test_cool_enough(energy):
    energy.run(time.sleep, args=(0.02,), rounds=2, min_window=0.2, warmup=0)

@pytest.mark.energy(cooldown="30C")
def test_asks_for_colder(energy):
    energy.run(time.sleep, args=(0.02,), rounds=2, min_window=0.2, warmup=0)
"""


def test_the_plugin_keeps_conditions_and_cooldowns_with_the_marker_first(pytester, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gpu=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "--energy", "--energy-devices",
                                           "gpu", "--energy-idle-seconds", "0.2", "--energy-cooldown", "45C",
                                           "--energy-report", "none", "--energy-json", "out.json")
    result.assert_outcomes(passed=2)
    records = {r["name"].split("::")[-1]: r for r in json.loads((pytester.path / "out.json").read_text())["records"]}
    cool, colder = records["test_cool_enough"]["components"][0], records["test_asks_for_colder"]["components"][0]
    assert cool["conditions"]["cooldown"] == {"target": "45C", "waited_seconds": pytest.approx(0.0, abs=0.2),
                                              "reached": True}
    assert cool["conditions"]["start"] == {"temperature_c": 40, "sm_clock_mhz": 1980, "power_limit_watts": 700.0,
                                           "throttle_reasons": ["sw_power_cap"]}
    assert "thermal or power throttling (sw_power_cap) at the edges of 2 of 2 window(s)" in cool["note"]
    assert colder["conditions"]["cooldown"]["target"] == "30C" and not colder["conditions"]["cooldown"]["reached"]
    assert "cooldown to 30C not reached in 0.3" in colder["note"] and "(gpu:0 at 40 degC)" in colder["note"]


HOT_CONFTEST = """
import sys

import pytest_energy.measure.meter
from pytest_energy.testing import FakeGpu, FakeNvmlModule

pytest_energy.measure.meter.COOLDOWN_TIMEOUT_SECONDS = 0.3
# At 80 degC and held at its power cap the whole time: --energy-cooldown 45C is never reached.
sys.modules["pynvml"] = FakeNvmlModule([FakeGpu(power=80.0, temperature_c=80.0, throttle_reasons=0x4)])
"""

HOT_TESTS = """
import time
import pytest

@pytest.mark.parametrize("index", range(6))
def test_hot(energy, index):
    energy.run(time.sleep, args=(0.02,), rounds=2, min_window=0.1, warmup=0)
"""


@pytest.mark.parametrize("workers", [["-p", "no:xdist"], ["-p", "xdist", "-n", "2"]], ids=["serial", "xdist"])
def test_a_gpu_that_stays_hot_costs_one_wait_and_says_so_and_its_throttling_once(pytester, monkeypatch, workers):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # the lines are not cut
    pytester.makeconftest(HOT_CONFTEST)
    pytester.makepyfile(test_hot=HOT_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy", "--energy-devices", "gpu",
                                           "--energy-idle-seconds", "0.2", "--energy-cooldown", "45C",
                                           "--energy-report", "none", "--energy-json", "out.json", *workers)
    result.assert_outcomes(passed=6)
    document = json.loads((pytester.path / "out.json").read_text())
    cooldowns = [r["components"][0]["conditions"]["cooldown"] for r in document["records"]]
    waited = sorted((c["waited_seconds"] for c in cooldowns), reverse=True)
    processes = 1 if "no:xdist" in workers else 2  # each process waits once: its first measurement
    assert not any(c["reached"] for c in cooldowns)
    assert all(w >= 0.3 for w in waited[:processes])  # the timeout, once
    assert all(w < 0.3 for w in waited[processes:])  # one reading each, no wait
    missed = ("pytest-energy: cooldown to 45C not reached within 0.3 s (gpu:0 at 80 degC): later measurements this "
              "session do not wait for it (their records say where the GPUs were)")
    throttled = [line for line in result.outlines if "thermal or power throttling" in line]
    assert [line for line in result.outlines if "cooldown" in line] == [missed]  # said once, in the terminal
    shown = ", ".join(f"test_hot.py::test_hot[{index}]" for index in range(5))  # of 6: the JSON has all
    assert throttled == [f"pytest-energy: thermal or power throttling (sw_power_cap) in 12 window(s) of 6 "
                         f"measurement(s): {shown} and 1 more; their energy was taken below the GPU's clocks (each "
                         "record's conditions say where)"]
    assert missed.removeprefix("pytest-energy: ") in document["session"]["notes"]
    assert throttled[0].removeprefix("pytest-energy: ") in document["session"]["notes"]
