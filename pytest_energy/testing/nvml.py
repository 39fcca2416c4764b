"""A fake ``pynvml`` (nvidia-ml-py) module for machines without an NVIDIA GPU.

It implements the subset of the NVML API that ``pytest_energy.measure.sources.nvml`` uses, with the behaviour
measured on an H100 (docs/sources.md): the total-energy counter is a millijoule count that changes only
at tick boundaries (every 100 ms), so between ticks it holds the integral of power up to the last
boundary. Each :class:`FakeGpu` is configured by a power curve (watts as a function of seconds since the
fake was installed) and optional faults: no counter (pre-Volta), MIG on, other processes, a counter
near its 64-bit wrap, time windows in which every reading raises ``NVMLError_Unknown``, a counter that
freezes (``frozen_from``: it keeps the value it had then) and counter jumps (``jumps``: millijoules
added from a time on, published at the next tick as the counter publishes everything). Its conditions
(temperature, SM clock, power limit, throttle reason bits) are fields too, the temperature and the
reasons constants or functions of time.

In one test (``monkeypatch`` undoes it afterwards)::

    from pytest_energy.testing import FakeGpu, install_fake_nvml

    nvml = install_fake_nvml(monkeypatch, [FakeGpu(power=300.0), FakeGpu(has_counter=False)])

A load switched on and off by the code under test: ``nvml.set_power(0, 400.0)`` ... ``nvml.set_power(0, 80.0)``
(a power curve must be a pure function of time: ticks are integrated when first read).
For a whole pytest session (a ``conftest.py``, before the plugin opens its channels) or the bench:
``sys.modules["pynvml"] = FakeNvmlModule([...])``. Time comes from
``time.perf_counter`` unless a :class:`FakeClock` is given, which makes tick tests exact.
"""

from __future__ import annotations

import bisect
import math
import sys
import threading
import time
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

NVML_SUCCESS = 0
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0
#: Clock event (throttle) reason bits, as in nvml.h: a FakeGpu's ``throttle_reasons`` is a mask of these.
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SW_THERMAL_SLOWDOWN = 0x20
HW_THERMAL_SLOWDOWN = 0x40
COUNTER_MODULUS_MJ = 2**64

_ERRORS = {  # code: (class name suffix, message), as in pynvml
    1: ("Uninitialized", "Uninitialized"),
    2: ("InvalidArgument", "Invalid Argument"),
    3: ("NotSupported", "Not Supported"),
    4: ("NoPermission", "Insufficient Permissions"),
    6: ("NotFound", "Not Found"),
    12: ("LibraryNotFound", "NVML Shared Library Not Found"),
    13: ("FunctionNotFound", "Function Not Found"),
    15: ("GpuIsLost", "GPU is lost"),
    999: ("Unknown", "Unknown Error"),
}


class NVMLError(Exception):
    """pynvml's base error; ``NVMLError(code)`` gives the subclass of that code, as pynvml does."""

    value = 999

    def __new__(cls, value: int | None = None) -> NVMLError:
        if cls is NVMLError and value in _CLASSES:
            cls = _CLASSES[value]
        error = Exception.__new__(cls)
        error.value = cls.value if value is None else value
        return error

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value)

    def __str__(self) -> str:
        return _ERRORS.get(self.value, ("", f"NVML Error with code {self.value}"))[1]


_CLASSES: dict[int, type[NVMLError]] = {
    code: type(f"NVMLError_{suffix}", (NVMLError,), {"value": code}) for code, (suffix, _) in _ERRORS.items()
}


@dataclass
class FakeGpu:
    """One fake GPU; times are seconds since the fake module was created."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""  # "" -> GPU-00000000-0000-0000-0000-00000000000<index>
    power: float | Callable[[float], float] = 100.0  # watts, constant or a pure function of time
    has_counter: bool = True  # False: nvmlDeviceGetTotalEnergyConsumption raises NotSupported
    tick_seconds: float = 0.1
    tick_phase: float = 0.0  # the first tick boundary, in seconds; later ones follow every tick_seconds
    counter_offset_mj: int = 0  # counter value at time 0; close to 2**64 to test the wrap
    power_instant: bool = True  # False: the NVML_FI_DEV_POWER_INSTANT field returns NotSupported
    mig: bool | None = None  # None: no MIG support (NotSupported); True: MIG enabled
    processes: list[int] = field(default_factory=list)  # pids computing on the GPU
    failures: list[tuple[float, float]] = field(default_factory=list)  # [start, end) of failing readings
    frozen_from: float = math.inf  # from this time on the counter keeps its value (0.0: frozen from the start)
    jumps: list[tuple[float, int]] = field(default_factory=list)  # (time, mJ the counter jumps by from the tick after)
    power_limit_watts: float = 700.0  # enforced; a test may change it (``nvidia-smi -pl``)
    temperature_c: float | Callable[[float], float] = 40.0  # degC, constant or a function of time
    sm_clock_mhz: int = 1980  # the SM clock now
    throttle_reasons: int | Callable[[float], int] = 0  # clock event reason bits (SW_POWER_CAP, ...)
    sm_clock_max_mhz: int = 1980
    applications_sm_clock_mhz: int = 1755
    memory_total_bytes: int = 80 * 2**30

    def __post_init__(self) -> None:
        self._at_boundary: list[float] = []  # joules from time 0 to each tick boundary reached so far
        self._integrating = threading.Lock()  # a poller, the conditions reader and the test read at once
        self._since: list[float] = []  # times from which a power set by set_power applies, ascending
        self._powers: list[float | Callable[[float], float]] = []

    def set_power(self, since: float, power: float | Callable[[float], float]) -> None:
        """Draw ``power`` from time ``since`` on; earlier times keep theirs (the counter's past is fixed).

        For a load that a test switches on and off: ``fake.set_power(0, 400.0)`` sets it at the fake's now.
        """
        if self._since and since < self._since[-1]:
            raise ValueError(f"power set at {since} s, before the last change at {self._since[-1]} s")
        self._since.append(since)
        self._powers.append(power)

    def _power_at(self, t: float) -> float | Callable[[float], float]:
        position = bisect.bisect_right(self._since, t)
        return self._powers[position - 1] if position else self.power

    def watts(self, t: float) -> float:
        """Power at time ``t``."""
        power = self._power_at(t)
        return float(power(t)) if callable(power) else float(power)

    def energy(self, start: float, end: float) -> float:
        """Joules drawn between two times: exact for constants, midpoint rule (1 ms steps at most) otherwise."""
        if end <= start:
            return 0.0
        cuts = [start] + [t for t in self._since if start < t < end] + [end]
        total = 0.0
        for begin, finish in zip(cuts, cuts[1:], strict=False):
            power = self._power_at(begin)
            if not callable(power):
                total += float(power) * (finish - begin)
                continue
            steps = max(1, math.ceil((finish - begin) / 0.001))
            width = (finish - begin) / steps
            total += sum(float(power(begin + (i + 0.5) * width)) for i in range(steps)) * width
        return total

    def boundary(self, k: int) -> float:
        """Time of the k-th tick boundary (k = 0, 1, ...)."""
        return self.tick_phase + k * self.tick_seconds

    def counter_mj(self, t: float) -> int:
        """The counter at ``t``: the integral of power up to the last tick boundary, in whole mJ, plus
        the jumps by that boundary; a frozen counter is read at ``frozen_from``."""
        t = min(t, self.frozen_from)
        last = math.floor((t - self.tick_phase) / self.tick_seconds + 1e-9)  # 1e-9: a read on a boundary sees it
        jumped = sum(millijoules for at, millijoules in self.jumps if at <= self.boundary(last))  # published at a tick
        with self._integrating:  # two threads extending the list at once would integrate a tick twice
            while len(self._at_boundary) <= last:  # each tick integrated once
                k = len(self._at_boundary)
                before = self._at_boundary[-1] if k else 0.0
                self._at_boundary.append(before + self.energy(self.boundary(k - 1) if k else 0.0, self.boundary(k)))
            joules = self._at_boundary[last] if last >= 0 else 0.0
        return (self.counter_offset_mj + math.floor(joules * 1000 + 1e-9) + jumped) % COUNTER_MODULUS_MJ

    def temperature(self, t: float) -> float:
        """Temperature at time ``t``, in degC."""
        return float(self.temperature_c(t)) if callable(self.temperature_c) else float(self.temperature_c)

    def reasons(self, t: float) -> int:
        """Clock event reason bits at time ``t``."""
        return int(self.throttle_reasons(t)) if callable(self.throttle_reasons) else int(self.throttle_reasons)

    def failing(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.failures)


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeClock:
    """A clock that only moves when told: ``clock.advance(0.05)``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeNvmlModule(types.ModuleType):
    """The fake ``pynvml`` module. ``calls`` counts calls per function; ``init_count`` open inits."""

    NVMLError = NVMLError
    NVML_SUCCESS = NVML_SUCCESS
    NVML_FI_DEV_POWER_AVERAGE = NVML_FI_DEV_POWER_AVERAGE
    NVML_FI_DEV_POWER_INSTANT = NVML_FI_DEV_POWER_INSTANT
    NVML_VALUE_TYPE_UNSIGNED_INT = NVML_VALUE_TYPE_UNSIGNED_INT
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        library_missing: bool = False,
        clock: Callable[[], float] = time.perf_counter,
        driver_version: str = "580.159.04",
        cuda_driver_version: int = 13000,
    ) -> None:
        super().__init__("pynvml", "A fake nvidia-ml-py (pytest_energy.testing).")
        for error_class in _CLASSES.values():
            setattr(self, error_class.__name__, error_class)
        for index, gpu in enumerate(gpus):
            gpu.uuid = gpu.uuid or f"GPU-00000000-0000-0000-0000-{index:012d}"
        self.gpus = gpus
        self.library_missing = library_missing
        self.clock = clock
        self.t0 = clock()
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.init_count = 0
        self.calls: Counter[str] = Counter()

    def now(self) -> float:
        """Seconds since the module was created, the time base of the GPUs' power curves."""
        return self.clock() - self.t0

    def set_power(self, index: int, power: float | Callable[[float], float]) -> None:
        """GPU ``index`` draws ``power`` from now on (a load starting or stopping)."""
        self.gpus[index].set_power(self.now(), power)

    # -- plumbing -------------------------------------------------------------------------------
    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if self.init_count <= 0:
            raise _CLASSES[1]()

    def _gpu(self, name: str, handle: _Handle, *, reading: bool = False) -> FakeGpu:
        self._enter(name)
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise _CLASSES[2]()
        gpu = self.gpus[handle.index]
        if reading and gpu.failing(self.now()):
            raise _CLASSES[999]()
        return gpu

    # -- the API --------------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.library_missing:
            raise _CLASSES[12]()
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._enter("nvmlSystemGetNVMLVersion")
        return f"13.{self.driver_version}"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise _CLASSES[2]()
        return _Handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Handle:
        self._enter("nvmlDeviceGetHandleByUUID")
        for index, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return _Handle(index)
        raise _CLASSES[6]()

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:
        self._gpu("nvmlDeviceGetIndex", handle)
        return handle.index

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        gpu = self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle, reading=True)
        if not gpu.has_counter:
            raise _CLASSES[3]()
        return gpu.counter_mj(self.now())

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        gpu = self._gpu("nvmlDeviceGetPowerUsage", handle, reading=True)
        return round(gpu.watts(self.now()) * 1000)

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list[int]) -> list[Any]:
        gpu = self._gpu("nvmlDeviceGetFieldValues", handle, reading=True)
        values = []
        for field_id in field_ids:
            supported = field_id == NVML_FI_DEV_POWER_INSTANT and gpu.power_instant
            milliwatts = round(gpu.watts(self.now()) * 1000) if supported else 0
            values.append(
                types.SimpleNamespace(
                    fieldId=field_id,
                    scopeId=0,
                    timestamp=int(self.now() * 1e6),
                    latencyUsec=0,
                    valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                    nvmlReturn=NVML_SUCCESS if supported else 3,
                    value=types.SimpleNamespace(uiVal=milliwatts),
                )
            )
        return values

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetMigMode", handle)
        if gpu.mig is None:
            raise _CLASSES[3]()
        mode = NVML_DEVICE_MIG_ENABLE if gpu.mig else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[Any]:
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle, reading=True)
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=2**30) for pid in gpu.processes]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        return round(self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_watts * 1000)

    def nvmlDeviceGetMaxClockInfo(self, handle: _Handle, clock: int) -> int:
        gpu = self._gpu("nvmlDeviceGetMaxClockInfo", handle)
        return gpu.sm_clock_max_mhz if clock == NVML_CLOCK_SM else 0

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperature", handle, reading=True)
        if sensor != NVML_TEMPERATURE_GPU:
            raise _CLASSES[2]()
        return round(gpu.temperature(self.now()))

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle, reading=True)
        return gpu.sm_clock_mhz if clock == NVML_CLOCK_SM else 0

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: _Handle) -> int:
        return self._gpu("nvmlDeviceGetCurrentClocksEventReasons", handle, reading=True).reasons(self.now())

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: _Handle) -> int:
        """The older name of nvmlDeviceGetCurrentClocksEventReasons (nvidia-ml-py before 12.535)."""
        return self._gpu("nvmlDeviceGetCurrentClocksThrottleReasons", handle, reading=True).reasons(self.now())

    def nvmlDeviceGetApplicationsClock(self, handle: _Handle, clock: int) -> int:
        gpu = self._gpu("nvmlDeviceGetApplicationsClock", handle)
        return gpu.applications_sm_clock_mhz if clock == NVML_CLOCK_SM else 0

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle) -> Any:
        total = self._gpu("nvmlDeviceGetMemoryInfo", handle).memory_total_bytes
        return types.SimpleNamespace(total=total, free=total, used=0)


def install_fake_nvml(
    monkeypatch: Any,
    gpus: list[FakeGpu] | None = None,
    *,
    cuda_visible_devices: str | None = None,
    **options: Any,
) -> FakeNvmlModule:
    """Put a :class:`FakeNvmlModule` in ``sys.modules["pynvml"]`` for one test; returns it.

    ``gpus`` defaults to one H100 at 100 W. ``CUDA_VISIBLE_DEVICES`` is set to ``cuda_visible_devices``,
    or removed when None, so the machine's own setting cannot leak into the test. ``options`` go to
    :class:`FakeNvmlModule` (``library_missing``, ``clock``, ``driver_version``, ``cuda_driver_version``).
    """
    module = FakeNvmlModule([FakeGpu()] if gpus is None else gpus, **options)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    if cuda_visible_devices is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cuda_visible_devices)
    return module
