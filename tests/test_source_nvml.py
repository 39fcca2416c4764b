"""The NVML source against a fake ``pynvml`` (pytest_energy.testing): counters, sampling, selection, faults."""

from __future__ import annotations

import math
import os
import sys
import threading
import time

import pytest

from pytest_energy.measure.sources import SourceError, SourceUnavailable, detect, nvml, sampled
from pytest_energy.testing import FakeClock, FakeGpu, install_fake_nvml


def _uuid(index: int) -> str:
    return f"GPU-00000000-0000-0000-0000-{index:012d}"


@pytest.fixture
def opened():
    """Open channels and close them all after the test, whatever it asserted."""
    detections = []

    def _open(selectors=None):
        found = nvml.open_channels(selectors)
        detections.append(found)
        return found

    yield _open
    for found in detections:
        for channel in found.channels:
            channel.close()


# -- availability -------------------------------------------------------------------------------
def test_missing_library_is_one_clear_line(monkeypatch):
    fake = install_fake_nvml(monkeypatch, library_missing=True)
    with pytest.raises(SourceUnavailable) as raised:
        nvml.open_channels(None)
    message = str(raised.value)
    assert "no NVIDIA driver" in message and "\n" not in message
    assert fake.init_count == 0


def test_missing_nvidia_ml_py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(SourceUnavailable, match="pip install nvidia-ml-py"):
        nvml.open_channels(None)


def test_no_gpu_is_unavailable_and_releases_nvml(monkeypatch):
    fake = install_fake_nvml(monkeypatch, gpus=[])
    with pytest.raises(SourceUnavailable, match="no GPU"):
        nvml.open_channels(None)
    assert fake.init_count == 0


# -- counter channel ----------------------------------------------------------------------------
def test_counter_is_quantised_to_ticks_and_relative_to_first_read(monkeypatch, opened):
    clock = FakeClock()
    install_fake_nvml(monkeypatch, [FakeGpu(power=200.0, tick_phase=0.03, counter_offset_mj=5_000)], clock=clock)
    (channel,) = opened().channels
    assert (channel.device, channel.kind, channel.method, channel.tick_seconds) == ("gpu:0", "gpu", "counter", 0.1)
    assert channel.read() == 0.0  # t=0: no tick yet
    clock.advance(0.05)  # boundary at 0.03 passed: 200 W x 0.03 s
    assert channel.read() == pytest.approx(6.0, abs=1e-9)
    clock.advance(0.079)  # t=0.129: the next boundary (0.13) not yet
    assert channel.read() == pytest.approx(6.0, abs=1e-9)
    clock.advance(0.001)  # t=0.13
    assert channel.read() == pytest.approx(26.0, abs=1e-9)


def test_counter_follows_a_power_curve_at_tick_boundaries(monkeypatch, opened):
    clock = FakeClock()
    ramp = FakeGpu(power=lambda t: 100.0 + 1000.0 * t)  # E(t) = 100 t + 500 t^2
    install_fake_nvml(monkeypatch, [ramp], clock=clock)
    (channel,) = opened().channels
    channel.read()
    for boundary in (0.1, 0.2, 0.5):
        clock.now = boundary + 0.05
        expected = 100 * boundary + 500 * boundary**2
        assert channel.read() == pytest.approx(expected, abs=0.002)


def test_a_load_switched_on_mid_tick_is_counted_from_then(monkeypatch, opened):
    clock = FakeClock()
    fake = install_fake_nvml(monkeypatch, [FakeGpu(power=100.0)], clock=clock)
    (channel,) = opened().channels
    channel.read()
    clock.now = 0.15
    fake.set_power(0, 400.0)  # the load starts half-way through the second tick
    clock.now = 0.32
    fake.set_power(0, 100.0)
    clock.now = 0.41  # ticks at 0.1 (10 J), 0.2 (+5 +20), 0.3 (+40), 0.4 (+8 +8)
    assert channel.read() == pytest.approx(91.0)
    assert fake.gpus[0].energy(0.0, 0.4) == pytest.approx(91.0)
    with pytest.raises(ValueError, match="before the last change"):
        fake.gpus[0].set_power(0.2, 50.0)


def test_nvml_counter_wraparound_at_64_bits(monkeypatch, opened):
    clock = FakeClock()
    gpu = FakeGpu(power=100.0, counter_offset_mj=2**64 - 5_000)
    fake = install_fake_nvml(monkeypatch, [gpu], clock=clock)
    (channel,) = opened().channels
    assert channel.read() == 0.0
    clock.now = 0.25  # 20 J counted: the raw counter wrapped to 15000 mJ
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    assert fake.nvmlDeviceGetTotalEnergyConsumption(handle) == 15_000
    assert channel.read() == pytest.approx(20.0)


def test_counter_reset_invalidates_that_read_then_counting_goes_on(monkeypatch, opened):
    clock = FakeClock()
    gpu = FakeGpu(power=100.0, counter_offset_mj=50_000_000)
    install_fake_nvml(monkeypatch, [gpu], clock=clock)
    (channel,) = opened().channels
    channel.read()
    clock.now = 0.15
    assert channel.read() == pytest.approx(10.0)
    gpu.counter_offset_mj = 0  # a driver reload starts the count again
    with pytest.raises(SourceError, match="went back"):
        channel.read()
    clock.now = 0.35
    assert channel.read() == pytest.approx(30.0)  # +20 J after the reset, monotonic throughout


def test_two_threads_reading_one_counter_count_in_the_order_nvml_answered(monkeypatch, opened):
    """The poller and another thread read one GPU at once: the earlier read, counted after the later one,
    went back (an invalid window on a loaded host). The read and its counting are one step."""
    clock = FakeClock()
    install_fake_nvml(monkeypatch, [FakeGpu(power=100.0)], clock=clock)
    (channel,) = opened().channels
    channel.read()
    module = sys.modules["pynvml"]
    real = module.nvmlDeviceGetTotalEnergyConsumption
    inside, go_on = threading.Event(), threading.Event()

    def slow_first(handle):  # the first thread's answer, then its thread loses the CPU before counting it
        value = real(handle)
        if not inside.is_set():
            inside.set()
            go_on.wait(5)
        return value

    monkeypatch.setattr(module, "nvmlDeviceGetTotalEnergyConsumption", slow_first)
    clock.now = 0.15
    results: dict[str, object] = {}

    def read(name: str) -> None:
        try:
            results[name] = channel.read()
        except SourceError as error:
            results[name] = error

    first = threading.Thread(target=read, args=("first",))
    first.start()
    inside.wait(5)
    clock.now = 0.25  # a tick later, the second thread reads
    second = threading.Thread(target=read, args=("second",))
    second.start()
    second.join(0.2)  # without the read inside the lock it answers and counts now, before the first
    go_on.set()
    first.join(5)
    second.join(5)
    assert results == {"first": pytest.approx(10.0), "second": pytest.approx(20.0)}


def test_error_inside_a_window_raises_source_error_never_zero(monkeypatch, opened):
    clock = FakeClock()
    install_fake_nvml(monkeypatch, [FakeGpu(power=100.0, failures=[(0.15, 0.25)])], clock=clock)
    (channel,) = opened().channels
    channel.read()
    clock.now = 0.12
    assert channel.read() == pytest.approx(10.0)
    clock.now = 0.2
    with pytest.raises(SourceError) as raised:
        channel.read()
    assert "gpu:0" in str(raised.value) and "\n" not in str(raised.value)
    assert channel.power() is None  # the edge correction is skipped, not made up
    clock.now = 0.31
    assert channel.read() == pytest.approx(30.0)


def test_power_prefers_the_instant_field_and_falls_back_to_power_usage(monkeypatch, opened):
    clock = FakeClock()
    fake = install_fake_nvml(
        monkeypatch, [FakeGpu(power=250.0), FakeGpu(power=120.5, power_instant=False)], clock=clock
    )
    instant, averaged = opened().channels
    assert instant.power() == 250.0 and averaged.power() == 120.5
    assert instant.identity()["power_reading"] == "NVML_FI_DEV_POWER_INSTANT"
    assert averaged.identity()["power_reading"] == "nvmlDeviceGetPowerUsage"
    usage_calls = fake.calls["nvmlDeviceGetPowerUsage"]
    instant.power()
    assert fake.calls["nvmlDeviceGetPowerUsage"] == usage_calls  # no second definition of power mixed in


def test_counter_uncertainty_is_its_resolution_at_both_edges(monkeypatch, opened):
    """Tick timing at the edges is the meter's part of the uncertainty, not counted twice here."""
    install_fake_nvml(monkeypatch)
    (channel,) = opened().channels
    assert channel.uncertainty(700.0, 1.0) == pytest.approx(0.002)
    assert channel.uncertainty(0.0, 0.0) == pytest.approx(0.002)


# -- sampled channel ----------------------------------------------------------------------------
def test_gpu_without_counter_integrates_a_known_power_curve(monkeypatch, opened):
    curve = FakeGpu(has_counter=False, power=lambda t: 150.0 + 100.0 * math.sin(2 * math.pi * t / 0.5))
    fake = install_fake_nvml(monkeypatch, [curve])
    (channel,) = opened().channels
    assert (channel.method, channel.tick_seconds) == ("sampled", 0.0)
    channel.start()
    assert channel.interval_seconds == pytest.approx(sampled.SAMPLE_INTERVAL_SECONDS)  # fake reads cost µs
    start_wall = time.perf_counter()
    start = channel.read()
    start_t = fake.now()
    time.sleep(0.5)
    end = channel.read()
    end_t = fake.now()
    end_wall = time.perf_counter()
    expected = curve.energy(start_t, end_t)
    assert end - start == pytest.approx(expected, rel=0.02)

    samples = channel.timeline(start_wall, end_wall)
    assert len(samples) >= 10  # the thread sampled between the two reads
    assert all(start_wall <= at <= end_wall for at, _ in samples)
    for at, watts in samples:
        assert watts == pytest.approx(curve.watts(at - fake.t0), abs=2.0)
    assert channel.uncertainty(100.0, 1.0) == pytest.approx(2 * channel.interval_seconds * 100.0)


def test_each_read_samples_and_integrates_by_trapezoids(monkeypatch, opened):
    ramp = FakeGpu(has_counter=False, power=lambda t: 100.0 + 1000.0 * t)
    fake = install_fake_nvml(monkeypatch, [ramp])
    (channel,) = opened().channels  # sampler not started: only the reads sample
    first = channel.read()
    time.sleep(0.2)
    second = channel.read()
    (t1, w1), (t2, w2) = channel.timeline(0.0, math.inf)
    assert w1 == pytest.approx(ramp.watts(t1 - fake.t0), abs=0.05)
    # the trapezoid rule is exact on a ramp; a rectangle would be off by 1000 W/s x (0.2 s)^2 / 2 = 20 J
    assert second - first == pytest.approx(ramp.energy(t1 - fake.t0, t2 - fake.t0), abs=0.05)


def test_sampler_thread_stops_on_close_and_timeline_is_capped(monkeypatch, opened):
    monkeypatch.setattr(sampled, "TIMELINE_CAP", 5)
    fake = install_fake_nvml(monkeypatch, [FakeGpu(has_counter=False, power=80.0)])
    (channel,) = opened().channels
    channel.start()
    time.sleep(0.15)
    assert len(channel.timeline(0.0, math.inf)) == 5
    assert any(t.name == "pytest-energy sampler gpu:0" for t in threading.enumerate())
    joules = channel.read()
    assert joules > 0
    channel.close()
    assert not any(t.name == "pytest-energy sampler gpu:0" for t in threading.enumerate())
    assert fake.init_count == 0


def test_sampler_error_invalidates_the_next_read_only(monkeypatch, opened):
    fake = install_fake_nvml(monkeypatch, [FakeGpu(has_counter=False, power=100.0)])
    fake.gpus[0].failures = [(fake.now() + 0.05, fake.now() + 0.1)]
    (channel,) = opened().channels
    channel.start()
    before = channel.read()
    time.sleep(0.2)  # the sampler hit the failing span
    with pytest.raises(SourceError, match="gpu:0: NVML power reading failed"):
        channel.read()
    after = channel.read()
    assert after > before  # integration went on; the window holding the gap was the one refused


# -- selection, CUDA_VISIBLE_DEVICES, MIG -------------------------------------------------------
def test_cuda_visible_devices_by_index_renumbers_as_cuda_does(monkeypatch, opened):
    install_fake_nvml(monkeypatch, [FakeGpu(power=100.0), FakeGpu(power=300.0)], cuda_visible_devices="1")
    (channel,) = opened().channels
    assert channel.device == "gpu:0"
    assert channel.identity()["uuid"] == _uuid(1) and channel.identity()["nvml_index"] == 1
    assert channel.power() == 300.0


def test_cuda_visible_devices_by_uuid_keeps_its_order(monkeypatch, opened):
    gpus = [FakeGpu(power=100.0), FakeGpu(power=300.0)]
    install_fake_nvml(monkeypatch, gpus, cuda_visible_devices=f"{_uuid(1)}, GPU-00000000-0000-0000-0000-000000000000")
    first, second = opened().channels
    assert (first.device, first.power()) == ("gpu:0", 300.0)
    assert (second.device, second.power()) == ("gpu:1", 100.0)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (None, [0, 1, 2]),
        ("2,0", [2, 0]),
        ("1,7,0", [1]),  # CUDA drops an invalid entry and everything after it
        ("0,0,1", [0]),  # and a repeated one
        ("GPU-00000000-0000-0000-0000-000000000002", [2]),
        ("GPU-00000000", []),  # a prefix matching several GPUs names none
        ("", []),
        ("-1", []),
    ],
)
def test_cuda_visible_parsing(env, expected):
    assert nvml.cuda_visible(env, [_uuid(i) for i in range(3)]) == expected


@pytest.mark.parametrize("env", ["", "-1"])
def test_no_visible_gpu_is_unavailable(monkeypatch, env):
    fake = install_fake_nvml(monkeypatch, cuda_visible_devices=env)
    with pytest.raises(SourceUnavailable, match="CUDA_VISIBLE_DEVICES"):
        nvml.open_channels(None)
    assert fake.init_count == 0


def test_mig_instance_in_cuda_visible_devices_is_refused(monkeypatch, opened):
    fake = install_fake_nvml(monkeypatch, cuda_visible_devices="MIG-4f6e5c1a-0000-0000-0000-000000000000")
    found = opened()
    assert found.channels == []
    (note,) = found.notes
    assert "MIG" in note and "cannot be separated" in note
    assert fake.init_count == 0


def test_gpu_in_mig_mode_is_refused_by_name_and_others_are_measured(monkeypatch, opened):
    gpus = [FakeGpu(name="NVIDIA A100-SXM4-80GB", mig=True), FakeGpu(name="NVIDIA A100-SXM4-80GB", mig=False)]
    install_fake_nvml(monkeypatch, gpus)
    found = opened()
    assert [c.device for c in found.channels] == ["gpu:1"]
    (note,) = found.notes
    assert note.startswith(f"gpu:0 (NVIDIA A100-SXM4-80GB, {_uuid(0)}) not measured: MIG is enabled")


def test_selectors_by_index_and_uuid_and_a_missing_one(monkeypatch, opened):
    uuids = ["GPU-a3c1e2f0-1111-2222-3333-444455556666", "GPU-b7d4", "GPU-c9e8"]
    install_fake_nvml(monkeypatch, [FakeGpu(uuid=uuid) for uuid in uuids])
    found = opened(["2", "GPU-a3c1", "2", "9"])  # a unique UUID prefix is enough
    assert [c.device for c in found.channels] == ["gpu:2", "gpu:0"]
    (note,) = found.notes
    assert note.startswith("GPU '9' not measured: 3 GPU(s) visible")


def test_mixed_gpu_models_warn_about_cuda_device_order(monkeypatch, opened):
    install_fake_nvml(monkeypatch, [FakeGpu(name="NVIDIA H100 80GB HBM3"), FakeGpu(name="NVIDIA L4")])
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in note for note in opened().notes)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert opened().notes == []


# -- processes, identity, lifecycle -------------------------------------------------------------
def test_other_processes_exclude_this_one_and_errors_give_none(monkeypatch, opened):
    clock = FakeClock()
    gpu = FakeGpu(processes=[os.getpid(), 4242, 17], failures=[(1.0, 2.0)])
    install_fake_nvml(monkeypatch, [gpu], clock=clock)
    (channel,) = opened().channels
    assert channel.other_processes() == [17, 4242]
    clock.now = 1.5
    assert channel.other_processes() == []


def test_identity_reports_what_nvml_knows(monkeypatch, opened):
    install_fake_nvml(
        monkeypatch, [FakeGpu(power_limit_watts=350.0)], driver_version="550.54.15", cuda_driver_version=12040
    )
    (channel,) = opened().channels
    identity = channel.identity()
    assert identity["name"] == "NVIDIA H100 80GB HBM3"
    assert identity["uuid"] == _uuid(0)
    assert identity["driver_version"] == "550.54.15"
    assert identity["cuda_driver_version"] == "12.4"
    assert identity["power_limit_watts"] == 350.0
    assert identity["memory_total_bytes"] == 80 * 2**30
    assert identity["method"] == "counter"


def test_nvml_is_shut_down_when_the_last_channel_closes(monkeypatch):
    fake = install_fake_nvml(monkeypatch, [FakeGpu(), FakeGpu(has_counter=False)])
    first, second = nvml.open_channels(None).channels
    assert fake.init_count == 1
    first.close()
    first.close()  # closing twice releases once
    assert fake.init_count == 1
    second.close()
    assert fake.init_count == 0


def test_detect_uses_nvml_channels_beside_the_modelled_cpu(monkeypatch, tmp_path):
    install_fake_nvml(monkeypatch, [FakeGpu(power=90.0)])
    found = detect("auto", rapl_root=str(tmp_path / "no-powercap"))
    try:
        assert [(c.device, c.method) for c in found.channels] == [
            ("gpu:0", "counter"),
            ("cpu", "modelled"),
            ("ram", "modelled"),
        ]
    finally:
        for channel in found.channels:
            channel.close()


def test_devices_option_selects_a_gpu_by_uuid_whatever_its_case(monkeypatch, tmp_path):
    install_fake_nvml(monkeypatch, [FakeGpu(uuid="GPU-a3c1"), FakeGpu(uuid="GPU-b7d4e5f6", power=42.0)])
    found = detect("gpu:GPU-B7D4", rapl_root=str(tmp_path))  # parse_devices lower-cases the option
    try:
        assert [(c.device, c.power()) for c in found.channels] == [("gpu:1", 42.0)]
    finally:
        for channel in found.channels:
            channel.close()
