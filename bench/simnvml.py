"""A simulated NVML GPU, so window noise can be compared on a machine without one.

It is the project's fake ``pynvml`` (pytest_energy.testing: a millijoule counter published every
100 ms) with what makes the counter hard to use: each ``nvmlDeviceGetTotalEnergyConsumption`` call
takes ~3.9 ms, as on an H100, and samples the counter at an unknown instant inside the call. The
read is a sleep, not busy CPU, so the benchmark does not load this shared machine; CPU cost on a
real GPU is projected from the count of reads. A load is a power pulse per iteration: the GPU draws
:data:`LOAD_WATTS` for the iteration's fixed length and :data:`IDLE_WATTS` otherwise, so gaps the code under
test leaves (an NVML read, a tracker starting) are idle, as on a real GPU after a synchronisation.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from pytest_energy.testing import FakeGpu, FakeNvmlModule

#: H100 figures from ../shared/notes/measurement-facts.md.
IDLE_WATTS = 77.0
LOAD_WATTS = 700.0
TICK_SECONDS = 0.1
READ_SECONDS = 0.0039

_INSTALL = threading.Lock()  # sys.modules["pynvml"] and CUDA_VISIBLE_DEVICES are process-wide


class SimulatedNvml(FakeNvmlModule):
    """The fake module with a slow, thread-safe energy read; every GPU idles at :data:`IDLE_WATTS`."""

    def __init__(self, gpus: int = 1, *, read_seconds: float = READ_SECONDS, seed: int = 0) -> None:
        chance = random.Random(seed)
        # Ticks are not aligned with anything the code under test knows.
        super().__init__([
            FakeGpu(power=IDLE_WATTS, tick_seconds=TICK_SECONDS, tick_phase=chance.uniform(0, TICK_SECONDS))
            for _ in range(gpus)
        ])
        self.read_seconds = read_seconds
        self._chance = chance
        self._lock = threading.Lock()  # the fake integrates ticks lazily; one reader at a time

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        before = self._chance.uniform(0.0, self.read_seconds)
        time.sleep(before)
        with self._lock:
            value = super().nvmlDeviceGetTotalEnergyConsumption(handle)
        time.sleep(self.read_seconds - before)
        return value

    # What CodeCarbon's NvidiaGPUDevice asks for besides what the fake already answers.
    NVML_TEMPERATURE_GPU = 0

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        self._gpu("nvmlDeviceGetTemperature", handle)
        return 40

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        busy = gpu.watts(self.now()) > IDLE_WATTS
        return type("Utilization", (), {"gpu": 100 if busy else 0, "memory": 0})()

    def nvmlDeviceGetComputeMode(self, handle: Any) -> int:
        self._gpu("nvmlDeviceGetComputeMode", handle)
        return 0

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]:
        self._gpu("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return []

    def set_power(self, index: int, power: Any) -> None:
        with self._lock:  # a change and a read are ordered, so a tick is never integrated twice differently
            super().set_power(index, power)

    def pulse(self, index: int, seconds: float) -> None:
        """One iteration of work: the GPU draws load power for exactly ``seconds``, then idles.

        Both changes are set at once, so an iteration's energy does not depend on how late this busy
        machine wakes the sleeping thread (that only lengthens the idle gap after it): the noise the
        bench measures is the meter's, not the scheduler's.
        """
        gpu = self.gpus[index]
        with self._lock:
            start = self.now()
            gpu.set_power(start, LOAD_WATTS)
            gpu.set_power(start + seconds, IDLE_WATTS)
        time.sleep(max(0.0, start + seconds - self.now()))

    def true_joules(self, index: int, start: float, end: float) -> float:
        """The energy GPU ``index`` really drew between two ``time.perf_counter`` instants."""
        with self._lock:
            return self.gpus[index].energy(start - self.t0, end - self.t0)


@contextmanager
def installed(module: SimulatedNvml) -> Iterator[None]:
    """``import pynvml`` gives ``module`` inside the block, with every GPU visible to CUDA."""
    with _INSTALL:
        saved_module = sys.modules.get("pynvml")
        saved_env = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        sys.modules["pynvml"] = module
        try:
            yield
        finally:
            if saved_module is None:
                sys.modules.pop("pynvml", None)
            else:
                sys.modules["pynvml"] = saved_module
            if saved_env is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved_env


@contextmanager
def codecarbon_sees(module: SimulatedNvml) -> Iterator[None]:
    """CodeCarbon's NVIDIA code reads ``module`` instead of the real library inside the block.

    Raises RuntimeError naming what is missing when this CodeCarbon has another layout.
    """
    from codecarbon.core import gpu, gpu_nvidia, hardware_cache

    for owner, name in ((gpu_nvidia, "pynvml"), (gpu, "PYNVML_AVAILABLE"), (gpu, "is_nvidia_system")):
        if not hasattr(owner, name):
            raise RuntimeError(f"this CodeCarbon has no {owner.__name__}.{name} to point at the simulated GPU")
    saved = (gpu_nvidia.pynvml, gpu.PYNVML_AVAILABLE, gpu.is_nvidia_system)
    module.nvmlInit()
    gpu_nvidia.pynvml, gpu.PYNVML_AVAILABLE, gpu.is_nvidia_system = module, True, lambda: True
    hardware_cache.clear_cache()  # plans made before would say "no GPU"
    try:
        yield
    finally:
        gpu_nvidia.pynvml, gpu.PYNVML_AVAILABLE, gpu.is_nvidia_system = saved
        hardware_cache.clear_cache()
