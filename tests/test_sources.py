"""The source registry that detect() walks, and the sampler base a new sampled source reuses."""

from __future__ import annotations

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
