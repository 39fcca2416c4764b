"""``--energy-top N``: every test's call a window of its own, the N with the most energy listed.

The listing never changes a test's outcome or the exit status (compared with the same suite run
without the plugin, serially and under xdist), is kept in the JSON's ``top`` list, never gates, and on
a fake NVML GPU ranks the test that loaded the GPU first with the joules it drew.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from pytest_energy.core.config import SettingError, resolve
from pytest_energy.core.record import Carbon, Record, Round
from pytest_energy.measure.top_tests import TopTests, ranked

PLAIN_SUITE = """
import time
import pytest

def test_sleeps():
    time.sleep(0.05)

def test_works():
    sum(i * i for i in range(300_000))

def test_fails():
    assert 1 == 2

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known")
def test_xfails():
    assert False

@pytest.mark.xfail(reason="fixed already")
def test_xpasses():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("set-up fails")

def test_errors(broken):
    pass

@pytest.fixture
def breaks_after():
    yield
    raise RuntimeError("teardown fails")

def test_errors_in_teardown(breaks_after):
    pass
"""
QUIET = ["-p", "no:cacheprovider", "--energy-report", "none", "--energy-history", "none",
         "--energy-idle-seconds", "0.05"]
TOP_LINE = re.compile(r"^\s*(\S+) J gross\s+(\S+) J net (\S+)\s+(\d+\.\d+)s\s+(\S+)")


@pytest.fixture(params=["serial", "xdist"])
def mode(request) -> list[str]:
    return ["-p", "no:xdist"] if request.param == "serial" else ["-n", "2"]


def _listed(result: pytest.RunResult) -> list[re.Match[str]]:
    return [m for m in map(TOP_LINE.match, result.outlines) if m]


def test_outcomes_and_exit_status_are_those_of_the_run_without_the_plugin(pytester, mode):
    pytester.makepyfile(PLAIN_SUITE)
    plain = pytester.runpytest("-p", "no:cacheprovider", *mode)
    measured = pytester.runpytest("--energy", "--energy-top", "5", "--energy-json", "out.json", *QUIET, *mode)
    assert measured.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    assert measured.parseoutcomes() == plain.parseoutcomes() == {
        "passed": 3, "failed": 1, "skipped": 1, "xfailed": 1, "xpassed": 1, "errors": 2}
    listed = _listed(measured)
    assert len(listed) == 5
    gross = [float(m.group(1)) for m in listed]
    assert gross == sorted(gross, reverse=True) and all(g > 0 for g in gross)
    assert {m.group(3) for m in listed} == {"modelled"}  # no GPU here: the CPU and RAM models
    measured.stdout.fnmatch_lines(["*the 5 tests with the most energy (--energy-top 5; listed, not judged)*"])
    assert "no test measured energy" not in measured.stdout.str()
    document = json.loads((pytester.path / "out.json").read_text())
    assert document["records"] == [] and document["gate"]["outcome"] == "nothing measured"
    # Nothing judged, so no reference workload; the idle window gives the listing's net figures.
    assert document["session"]["reference_joules"] == {} and set(document["session"]["idle_watts"]) == {"cpu", "ram"}
    top = document["top"]
    assert [r["nodeid"] for r in top] == [m.group(5) for m in listed]
    assert {r["form"] for r in top} == {"test"} and all(len(r["rounds"]) == 1 for r in top)
    assert all(r["warmup_iterations"] == 0 and r["iterations"] == 1 for r in top)
    outcomes = {r["nodeid"].split("::")[1]: r["outcome"] for r in top}
    assert outcomes.get("test_fails", "failed") == "failed"
    assert outcomes.get("test_errors_in_teardown", "error") == "error"
    assert "test_errors" not in outcomes and "test_skipped" not in outcomes  # no call, no window
    # Above idle, the test that computes draws more than the one that sleeps (about nothing).
    net = {r["nodeid"].split("::")[1]: r["total_net_joules"] for r in top}
    assert net["test_works"] > max(0.0, net["test_sleeps"])


def test_a_marked_test_is_measured_and_judged_as_before_and_plain_tests_never_gate(pytester):
    pytester.makepyfile("""
import pytest

@pytest.mark.energy(budget="1 mJ", per="test")
def test_over_budget():
    sum(i * i for i in range(200_000))

@pytest.mark.energy
def test_marked():
    sum(i * i for i in range(200_000))

def test_plain():
    sum(i * i for i in range(200_000))
""")
    result = pytester.runpytest("--energy", "--energy-top", "5", "--energy-json", "out.json", "--energy-gate-modelled",
                                "--energy-update-baselines", *QUIET, "-p", "no:xdist")
    result.assert_outcomes(passed=2, failed=1)  # the budget still fails the marked test, and only it
    result.stdout.fnmatch_lines(["*energy budget exceeded*> budget 1 mJ per test*"])
    document = json.loads((pytester.path / "out.json").read_text())
    assert [(r["nodeid"].split("::")[1], r["form"]) for r in document["records"]] == [
        ("test_marked", "block"), ("test_over_budget", "block")]
    assert set(document["session"]["reference_joules"]) == {"cpu", "ram"}  # judged records: the reference taken
    assert {r["nodeid"].split("::")[1] for r in document["top"]} == {"test_over_budget", "test_marked", "test_plain"}
    stored = "\n".join(p.read_text() for p in (pytester.path / "baselines").rglob("*.json"))
    assert "test_marked" in stored and "test_plain" not in stored  # a listed test never becomes a baseline


def test_a_gpu_test_on_a_fake_nvml_counter_is_ranked_first_with_its_joules(pytester, monkeypatch):
    """A fake H100 (100 ms counter ticks) idling at 80 W; one test loads it to 380 W for 0.4 s, the
    others idle, one shorter than a tick: the loaded test leads with ~300 W x 0.4 s net."""
    import importlib.util

    from pytest_energy.testing import FakeGpu, install_fake_nvml

    install_fake_nvml(monkeypatch, [FakeGpu(power=80.0)])
    real_find_spec = importlib.util.find_spec  # torch cannot reach a fake GPU (see test_plugin.py)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else real_find_spec(name, *rest))
    pytester.makepyfile("""
import time
import pynvml

def test_loads_the_gpu():
    pynvml.set_power(0, 380.0)
    time.sleep(0.4)
    pynvml.set_power(0, 80.0)

def test_idles():
    time.sleep(0.2)

def test_short():
    time.sleep(0.01)
""")
    result = pytester.runpytest("--energy", "--energy-top", "2", "--energy-devices", "gpu",
                                "--energy-json", "out.json", *QUIET, "-p", "no:xdist")
    result.assert_outcomes(passed=3)
    listed = _listed(result)
    assert [m.group(5).split("::")[1] for m in listed] == ["test_loads_the_gpu", "test_idles"]
    assert {m.group(3) for m in listed} == {"counter"}
    first, second = json.loads((pytester.path / "out.json").read_text())["top"]
    seconds = first["duration_seconds"]
    assert seconds == pytest.approx(0.4, abs=0.05)
    # Power taken as constant across the tick at each edge puts up to a quarter of the 300 W step
    # times the tick on the wrong side of that edge (plus the tick instants' own few ms).
    per_edge = 0.3 * 300.0 * 0.1
    assert first["total_net_joules"] == pytest.approx(300.0 * seconds, abs=2 * per_edge)
    assert first["total_gross_joules"] == pytest.approx(80.0 * seconds + first["total_net_joules"], rel=0.05)
    assert abs(second["total_net_joules"]) < per_edge  # idle, next to the loaded test's last tick


def test_the_option_resolves_like_every_other_and_is_range_checked():
    assert resolve(True, {}, lambda name: None, {}).top == 0
    assert resolve(True, {}, lambda name: "7" if name == "energy_top" else None, {}).top == 7
    assert resolve(True, {"energy_top": "3"}, lambda name: None, {"PYTEST_ENERGY_TOP": "9"}).top == 3
    assert resolve(True, {}, lambda name: None, {"PYTEST_ENERGY_TOP": "9"}).top == 9
    for bad in ("-1", "2.5", "ten", "100001"):
        with pytest.raises(SettingError, match="expected an integer >= 0"):
            resolve(True, {"energy_top": bad}, lambda name: None, {})


def test_a_bad_value_is_a_usage_error_in_one_line(pytester):
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest("--energy", "--energy-top", "-3", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--energy-top has '-3', expected an integer >= 0 and <= 10000*"])


def _record(name: str, joules: float, valid: bool = True) -> Record:
    return Record.from_rounds([Round(1, 0.1, joules, joules, valid)], [], carbon=Carbon(400.0, "explicit", 1.0),
                              name=name, nodeid=name, form="test", warmup_iterations=0, fingerprint={},
                              timestamp="2026-12-02T00:00:00Z")


def test_ranking_puts_most_gross_energy_first_and_unmeasured_tests_last():
    records = [_record("a", 1.0), _record("b", math.nan, valid=False), _record("c", 3.0), _record("d", 2.0)]
    assert [r.name for r in ranked(records, 3)] == ["c", "d", "a"]
    assert [r.name for r in ranked(records, 10)] == ["c", "d", "a", "b"]


def test_workers_lists_merge_into_one_of_n():
    controller, worker = TopTests(2), TopTests(2)
    for name, joules in (("w1", 5.0), ("w2", 1.0), ("w3", 4.0)):
        worker.add(lambda name=name, joules=joules: _record(name, joules), lambda joules=joules: joules)
    controller.add(lambda: _record("c1", 4.5), lambda: 4.5)
    controller.merge(worker.payload())
    assert [r.name for r in worker.records()] == ["w1", "w3"]
    assert [r.name for r in controller.records()] == ["w1", "c1"]


def test_only_the_records_that_can_be_listed_are_built():
    """Thousands of short tests, N listed: the windows are ordered by the joules read at their edges
    and only about N records built; a window whose record proves invalid makes room for the next."""
    top, built = TopTests(3), []

    def build(name: str, joules: float, valid: bool = True):
        def record() -> Record:
            built.append(name)
            return _record(name, joules if valid else math.nan, valid)
        return record

    for index in range(1000):
        top.add(build(f"t{index}", index / 1000), lambda index=index: index / 1000)
    top.add(build("jump", 99.0, valid=False), lambda: 99.0)  # read the most, found implausible when built
    top.add(build("unread", math.nan, valid=False), lambda: math.nan)
    assert [r.name for r in top.records()] == ["t999", "t998", "t997"]
    assert built == ["jump", "t999", "t998", "t997"]
    few = TopTests(3)
    few.add(build("a", 1.0), lambda: 1.0)
    few.add(build("unread", math.nan, valid=False), lambda: math.nan)
    assert [r.name for r in few.records()] == ["a", "unread"]  # fewer measured than N: the rest listed last


def test_a_session_that_only_lists_takes_a_short_idle_window_and_no_reference(tmp_path, monkeypatch):
    """--energy-top's records are listed, never judged: no reference workload, and an idle window of
    LISTING_IDLE_SECONDS unless --energy-idle-seconds is set. A test that measures later gets the
    session's full idle window and its reference, as a session that measured from the start."""
    from pytest_energy.measure import reference
    from pytest_energy.measure.meter import Meter
    from pytest_energy.session import LISTING_IDLE_SECONDS, EnergySession

    windows, references = [], []
    real_measure_idle = Meter.measure_idle

    def measure_idle(meter, seconds):
        windows.append(seconds)
        return real_measure_idle(meter, 0.01)  # the length asked for is what counts here, not the wait

    monkeypatch.setattr(Meter, "measure_idle", measure_idle)
    monkeypatch.setattr(reference, "measure", lambda meter, window: references.append(meter) or {"cpu": 1.0})
    modelled = {"energy_devices": "cpu,ram", "energy_powercap": str(tmp_path / "no-powercap")}
    listing = EnergySession(resolve(True, {**modelled, "energy_top": "3"}, lambda name: None, {}), tmp_path)
    listing.prepare(measuring=False)
    assert windows == [LISTING_IDLE_SECONDS] and references == [] and set(listing.idle_watts) == {"cpu", "ram"}
    listing.meter()  # a test that measures after all: the full window, then the reference
    assert windows == [LISTING_IDLE_SECONDS, 1.0] and len(references) == 1
    listing.meter()
    assert windows == [LISTING_IDLE_SECONDS, 1.0] and len(references) == 1  # once per session
    listing.close()
    windows.clear()
    chosen = EnergySession(resolve(True, {**modelled, "energy_top": "3", "energy_idle_seconds": "0.5"},
                                   lambda name: None, {}), tmp_path)
    chosen.prepare(measuring=False)
    chosen.meter()
    assert windows == [0.5]  # the window asked for, taken once
    chosen.close()
