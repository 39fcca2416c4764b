"""The source registry that detect() walks, and the sampler base a new sampled source reuses."""

from __future__ import annotations

import json
import os
import time

import pytest

import pytest_energy.measure.sources as sources
from pytest_energy.core.registry import Registry
from pytest_energy.measure.sources import (Detection, Request, Source, SourceError, SourceUnavailable, detect,
                                           register_source)
from pytest_energy.measure.sources.sampled import SampledChannel
from pytest_energy.testing import FakeGpu, install_fake_nvml


class _Watts(SampledChannel):
    """A sampled source in a few lines, as an amdsmi or powermetrics source would be."""

    kind = "gpu"
    reader = "the test's meter"

    def __init__(self, device: str, watts: float, limit: float = 500.0) -> None:
        self.device = device
        self.watts = watts
        self.limit = limit
        super().__init__()

    def read_watts(self) -> float:
        if self.watts is None:
            raise SourceError(f"{self.device}: no reading")
        return self.watts

    def max_watts(self) -> float:
        return self.limit


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The source registry as the package made it, restored after the test (a registration is for good)."""
    copied: Registry = Registry("source", "register_source", code=type)
    for source in sources.registered_sources():
        copied.register(source)
    monkeypatch.setattr(sources, "SOURCES", copied)
    return copied


def _register(name: str, opener, kinds=("gpu",), first: bool = False) -> list[Request]:
    """Register a source ``name`` (the most trusted, or the least); returns the requests it got."""
    asked: list[Request] = []

    class Opened(Source):
        rank = 1 if first else 1000

        def open(self, request: Request) -> Detection:
            asked.append(request)
            return opener(request)

    Opened.name, Opened.kinds, Opened.methods = name, tuple(kinds), ("sampled",)
    register_source(Opened())
    return asked


def test_a_registered_source_measures_a_kind_the_earlier_ones_could_not(monkeypatch, tmp_path):
    install_fake_nvml(monkeypatch, library_missing=True)
    asked = _register("amd", lambda request: Detection([_Watts("gpu:0", 90.0)]))
    found = detect("gpu", rapl_root=str(tmp_path))
    assert [(c.device, c.method) for c in found.channels] == [("gpu:0", "sampled")]
    assert found.notes == []  # measured by the later source: no "not measured" note
    assert asked == [Request({"gpu": None}, str(tmp_path))]


def test_a_kind_the_first_source_measures_is_not_asked_of_later_ones(monkeypatch, tmp_path):
    install_fake_nvml(monkeypatch, [FakeGpu(power=120.0)])
    asked = _register("amd", lambda request: Detection([_Watts("gpu:9", 1.0)]))
    found = detect("gpu:0,cpu", rapl_root=str(tmp_path))
    assert [(c.device, c.method) for c in found.channels] == [("gpu:0", "counter"), ("cpu", "modelled")]
    assert asked == []
    for channel in found.channels:
        channel.close()


def test_channels_of_kinds_not_wanted_are_closed_and_unmeasured_kinds_named(monkeypatch, tmp_path):
    opened: list[_Watts] = []

    def unwanted(request: Request) -> Detection:
        opened.append(_Watts("gpu:0", 50.0))
        opened[-1].start()
        return Detection([opened[-1]], ["a note of the source"])

    install_fake_nvml(monkeypatch, library_missing=True)
    _register("first", unwanted, kinds=("ram",), first=True)
    found = detect("gpu,ram", rapl_root=str(tmp_path))
    assert [c.device for c in found.channels] == ["ram"]  # the modelled RAM; the GPU channel was closed
    assert opened[0]._thread is None
    assert found.notes == ["a note of the source",
                           "GPU energy not measured: no NVIDIA driver on this machine (the NVML library was not found)"]


def test_every_unavailable_source_of_a_kind_is_in_its_note(monkeypatch, tmp_path):
    install_fake_nvml(monkeypatch, library_missing=True)

    def absent(request: Request) -> Detection:
        raise SourceUnavailable("amdsmi is not installed")

    _register("amd", absent)
    found = detect("gpu", rapl_root=str(tmp_path))
    assert found.channels == []
    assert found.notes == ["GPU energy not measured: no NVIDIA driver on this machine (the NVML library was not "
                           "found); amdsmi is not installed"]


def test_the_sampler_base_integrates_and_refuses_a_window_with_a_failed_reading():
    channel = _Watts("gpu:0", 200.0)
    channel.start()
    try:
        first = channel.read()
        time.sleep(0.2)
        second = channel.read()
        assert second - first == pytest.approx(200.0 * 0.2, rel=0.15)
        assert channel.interval_seconds >= 0.01 and len(channel.timeline(0.0, float("inf"))) >= 5
        channel.watts = 800.0  # above 1.5x its 500 W limit: a fault, not power
        with pytest.raises(SourceError, match=r"gpu:0: the test's meter read 800 W, above 1.5x its 500 W power limit"):
            channel.read()
        channel.watts = 200.0
        assert channel.read() >= second  # counting goes on after the refused window
    finally:
        channel.close()
    assert channel._thread is None


# -- a source of the user's: one module, registered from a conftest or by an entry point -----------------
WALL_METER = '''
"""A wall meter on the CPU: 5 W at rest and 60 W per busy CPU, read as a counter (one module, nothing else)."""
import json
import os
import time

from pytest_energy.measure.sources import Channel, Detection, Request, Section, Source


class WallChannel(Channel):
    device, kind, method = "cpu:wall", "cpu", "counter"

    def read(self):
        return 5.0 * time.perf_counter() + 60.0 * time.process_time()

    def identity(self):
        return {"meter": "wall meter"}


class WallMeter(Source):
    name, kinds, methods, devices, rank, group = "wallmeter", ("cpu",), ("counter",), "cpu:wall", 5, "wall"
    requirement = "wallmeter"

    def open(self, request):
        return Detection([WallChannel()])

    def how(self, channel):
        return "a wall meter: 5 W at rest, 60 W per busy CPU"

    def section(self, channels, request, notes, spec):
        reason = None if any(c.source == self.name for c in channels) else "the wall meter is not asked for"
        return Section("wallmeter", "wall meter", reason, {"reason": reason}, [f"wall meter: {reason or 'reading'}"],
                       requirement=self.requirement, unmet=reason and f"--require wallmeter: {reason}")


SOURCE = WallMeter()
'''


def test_a_source_registered_from_a_conftest_is_measured_and_named_in_the_device_kind(pytester):
    pytester.makepyfile(wallmeter=WALL_METER)
    pytester.makeconftest("from pytest_energy.measure.sources import register_source\n"
                          "from wallmeter import SOURCE\n\nregister_source(SOURCE)\n")
    pytester.makepyfile(test_busy="""
def test_busy(energy):
    energy(lambda: sum(i * i for i in range(30000)))
""")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", "--energy", "--energy-devices", "cpu", "--energy-json", "out.json",
        "--energy-update-baselines", "--energy-min-window", "0.05", "--energy-rounds", "3",
        "--energy-idle-seconds", "0.05", "--energy-report", "none")
    result.assert_outcomes(passed=1)
    [record] = json.loads((pytester.path / "out.json").read_text())["records"]
    [component] = record["components"]
    assert (component["device"], component["kind"], component["method"]) == ("cpu:wall", "cpu", "counter")
    # 60 W per busy CPU above the 5 W at rest: the net joules are the CPU time spent at 60 W.
    assert 0 < component["net_joules"] <= 60.0 * sum(r["seconds"] for r in record["rounds"]) * 1.05
    assert component["gross_joules"] > component["net_joules"]
    [stored] = json.loads(next((pytester.path / "baselines").rglob("*.json")).read_text())["records"].values()
    [kind] = stored["energy"]
    assert kind.startswith("wall: ") and "x1" in kind  # its own group: never judged against RAPL or the model


def test_a_source_from_an_entry_point_is_listed_and_required_by_the_doctor(pytester, monkeypatch):
    """The `pytest-energy` commands load no conftest: an installed package names its source in the entry
    point group, and the doctor lists its device, its section and its requirement."""
    pytester.makepyfile(wallmeter=WALL_METER)
    info = pytester.mkdir("wallmeter-1.0.dist-info")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wallmeter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest_energy.sources]\nwallmeter = wallmeter:SOURCE\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(pytester.path), os.environ.get("PYTHONPATH")])))
    result = pytester.run("pytest-energy", "doctor", "--json", "--devices", "cpu", "--idle-seconds", "0.05",
                          "--powercap", str(pytester.path / "none"))
    assert result.ret == 0, result.stderr.str()
    document = json.loads(result.stdout.str())
    [device] = document["devices"]
    assert (device["device"], device["method"]) == ("cpu:wall", "counter")
    assert device["how"] == "a wall meter: 5 W at rest, 60 W per busy CPU"
    assert document["wallmeter"] == {"reason": None} and document["rapl"]["state"] == "absent"
    assert [kind.split(":")[0] for kind in document["baselines"]["device_kinds"]] == ["wall"]
    result = pytester.run("pytest-energy", "doctor", "--devices", "cpu", "--idle-seconds", "0.05",
                          "--powercap", str(pytester.path / "none"), "--require", "wallmeter", "--require", "counter")
    assert result.ret == 0, result.stderr.str()
    assert "cpu:wall: a wall meter: 5 W at rest, 60 W per busy CPU" in result.stdout.lines
    assert "wall meter: reading" in result.stdout.lines
    assert "requirements met: wallmeter, counter" in result.stdout.lines


def test_an_entry_point_that_cannot_load_is_one_note_and_the_others_measure(tmp_path, monkeypatch):
    info = tmp_path / "broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest_energy.sources]\nbroken = no_such_module:SOURCE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sources, "_loaded_notes", None)
    found = detect("cpu", rapl_root=str(tmp_path / "none"))
    assert [(c.device, c.method) for c in found.channels] == [("cpu", "modelled")]
    assert found.notes == ["energy source 'broken' (no_such_module:SOURCE) not loaded: ModuleNotFoundError: "
                           "No module named 'no_such_module'"]


def test_a_source_without_kinds_or_with_an_unknown_method_is_refused_in_one_line():
    class Odd(Source):
        name, kinds, methods = "odd", ("cpu",), ("guessed",)

    with pytest.raises(ValueError, match=r"^register_source\(Odd\): unknown kind or method 'guessed'; kinds are "
                                         r"gpu, cpu, ram, methods counter, sampled, modelled$"):
        register_source(Odd())
    Odd.methods, Odd.kinds = ("counter",), ()
    with pytest.raises(ValueError, match=r"^register_source\(Odd\): a source needs a name, kinds and methods$"):
        register_source(Odd())


def test_a_second_source_of_a_taken_name_is_refused_unless_replacing():
    class Other(Source):
        name, kinds, methods = "rapl", ("cpu",), ("counter",)

    with pytest.raises(ValueError, match=r"^source 'rapl' is already registered; give register_source\(\.\.\., "
                                         r"replace=True\) to replace it$"):
        register_source(Other())
    register_source(Other(), replace=True)
    assert type(sources.SOURCES["rapl"]) is Other
