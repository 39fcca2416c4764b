"""The NVML source on a real NVIDIA GPU: runs where NVML starts, skipped with the reason elsewhere."""

from __future__ import annotations

import time

import pytest

from pytest_energy.measure.sources import nvml

pytestmark = pytest.mark.gpu

NO_GPU = "no NVIDIA GPU/NVML on this machine"


@pytest.fixture
def real_nvml():
    """The real pynvml module with NVML started, or a skip saying why not."""
    try:
        import pynvml
    except ImportError:
        pytest.skip(f"{NO_GPU} (nvidia-ml-py is not installed)")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        pytest.skip(f"{NO_GPU} ({error})")
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            pytest.skip(f"{NO_GPU} (NVML sees no GPU)")
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def _load(seconds: float) -> str:
    """Keep cuda:0 busy with bf16 matmuls for ``seconds`` where torch has CUDA; otherwise just wait."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        time.sleep(seconds)
        return "idle"
    a = torch.randn(4096, 4096, device="cuda:0", dtype=torch.bfloat16)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize(0)
    return "matmul"


def test_real_gpu_counter_measures_a_load(real_nvml):
    found = nvml.open_channels(None)
    try:
        channel = found.channels[0]
        identity = channel.identity()
        assert channel.device == "gpu:0"
        assert channel.method == "counter", f"{identity['name']} has no energy counter (pre-Volta?)"
        channel.start()
        start, began = channel.read(), time.perf_counter()
        load = _load(1.0)
        joules, seconds = channel.read() - start, time.perf_counter() - began
        watts = joules / seconds
        assert joules > 0
        assert 5.0 < watts < 1.5 * float(identity["power_limit_watts"]), f"{load}: {watts:.1f} W"
        assert channel.power() is not None and channel.power() > 0
    finally:
        for opened in found.channels:
            opened.close()


def test_real_gpu_sampled_integral_agrees_with_the_counter(real_nvml):
    """The sampler, forced onto a GPU that has the counter, against that counter over a 2 s load."""
    found = nvml.open_channels(["0"])
    counter = found.channels[0]
    real_nvml.nvmlInit()  # held by a _Library as open_channels does, released when the channel closes
    library = nvml._Library(real_nvml)
    sampled = nvml.NvmlSampledChannel(library, real_nvml.nvmlDeviceGetHandleByIndex(counter.nvml_index), "gpu:0", 0)
    library.release()
    try:
        sampled.start()
        counted_start, sampled_start = counter.read(), sampled.read()
        _load(2.0)
        counted, integrated = counter.read() - counted_start, sampled.read() - sampled_start
        # both edges are read directly (no tick interpolation), so allow a tick of energy either way
        tick_joules = 2 * counted / 2.0 * nvml.COUNTER_TICK_SECONDS
        assert integrated == pytest.approx(counted, abs=tick_joules + 0.05 * counted)
    finally:
        sampled.close()
        counter.close()


def test_real_gpu_conditions_under_a_load(real_nvml):
    """Temperature, SM clock, power limit and throttle reasons read from the driver, on the record too."""
    from pytest_energy.measure.meter import Meter

    found = nvml.open_channels(["0"])
    meter = Meter(found.channels)
    try:
        idle = meter.channels[0].conditions()
        assert 0 < idle["temperature_c"] < 120 and idle["power_limit_watts"] > 0 and idle["sm_clock_mhz"] >= 0
        assert isinstance(idle["throttle_reasons"], list)
        meter.start(idle_seconds=0.5)
        measured = meter.account(meter.take_rounds(_load, (0.2,), {}, rounds=3, min_window=0.5, warmup=1,
                                                   cooldown="110C"))
    finally:
        meter.close()
    [gpu] = measured.components
    assert set(gpu.conditions["start"]) == {"temperature_c", "sm_clock_mhz", "power_limit_watts", "throttle_reasons"}
    assert gpu.conditions["cooldown"]["reached"] is True  # no GPU runs at 110 degC
    assert gpu.conditions["start"]["power_limit_watts"] == pytest.approx(float(found.channels[0].max_watts()))
