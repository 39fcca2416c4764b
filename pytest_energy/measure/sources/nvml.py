"""GPU energy through NVML (nvidia-ml-py): the total-energy counter, or power readings integrated.

Volta and newer GPUs expose ``nvmlDeviceGetTotalEnergyConsumption``, a millijoule counter that
updates about every 100 ms; those GPUs get a :class:`NvmlCounterChannel` (method ``counter``, the meter
interpolates the ticks at the window edges). Older GPUs get a :class:`NvmlSampledChannel` (method
``sampled``): the sampler of :mod:`pytest_energy.measure.sources.sampled` reads the power every ~10 ms and
integrates it.

Devices are named as CUDA numbers them in this process: ``gpu:N`` is what torch calls ``cuda:N``,
after ``CUDA_VISIBLE_DEVICES`` (indices and UUIDs). NVML measures the whole board, so a GPU in MIG
mode is refused (one slice's energy cannot be separated from the others) and
:meth:`_GpuChannel.other_processes` lets the meter warn when another process computes on it.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Any, Callable

from .base import Channel, Detection, Request, Section, Source, SourceError, SourceUnavailable
from .sampled import SampledChannel

#: The counter's update period measured on an H100 (docs/sources.md); the meter interpolates ticks.
COUNTER_TICK_SECONDS = 0.1
#: The counter counts whole millijoules.
COUNTER_RESOLUTION_JOULES = 0.001
#: ``nvmlDeviceGetTotalEnergyConsumption`` is an unsigned 64-bit count of millijoules.
COUNTER_MODULUS_MJ = 2**64

_NVML_SUCCESS = 0
#: NVML's clock event (throttle) reason bits, named as records name them (nvml.h, nvmlClocksEventReason*).
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def _text(value: str | bytes) -> str:
    """NVML strings are ``bytes`` in older nvidia-ml-py releases and ``str`` in newer ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _import_pynvml() -> ModuleType:
    try:
        import pynvml  # imported here: loading the plugin must not touch the NVIDIA library
    except ImportError as error:
        raise SourceUnavailable(f"nvidia-ml-py is not installed ({error}): pip install nvidia-ml-py") from None
    return pynvml


class _Library:
    """One ``nvmlInit`` shared by the channels of one detection; ``nvmlShutdown`` when the last closes.

    The opener holds one reference while it builds channels, so an open that yields no channel
    shuts NVML down again.
    """

    def __init__(self, nvml: ModuleType) -> None:
        self.nvml = nvml
        self._users = 1
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass  # the driver went away; nothing is left to release


def cuda_visible(env: str | None, uuids: list[str]) -> list[int]:
    """NVML indices of the GPUs CUDA shows this process, in CUDA's order.

    ``env`` is ``CUDA_VISIBLE_DEVICES`` (None when unset: every GPU), ``uuids`` the NVML UUID of each
    GPU by NVML index. Entries are indices or ``GPU-`` UUIDs (a unique prefix is enough); as in CUDA,
    an entry that names no GPU, or one already listed, hides itself and every entry after it.
    Raises ``ValueError`` for a ``MIG-`` entry.
    """
    if env is None:
        return list(range(len(uuids)))
    visible: list[int] = []
    for entry in (part.strip() for part in env.split(",")):
        if entry.upper().startswith("MIG-"):
            raise ValueError(
                f"CUDA_VISIBLE_DEVICES names the MIG instance {entry}: NVML measures the whole GPU, "
                "so the energy of one MIG slice cannot be separated; measure on a GPU without MIG"
            )
        index = _match_entry(entry, uuids)
        if index is None or index in visible:
            break
        visible.append(index)
    return visible


def _started() -> _Library:
    """NVML started, held once (release it); :class:`SourceUnavailable` (one line) where it cannot start."""
    nvml = _import_pynvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError_LibraryNotFound:
        raise SourceUnavailable("no NVIDIA driver on this machine (the NVML library was not found)") from None
    except nvml.NVMLError as error:
        raise SourceUnavailable(f"NVML did not start ({error}): check the driver with nvidia-smi") from None
    return _Library(nvml)


def _listing_failed(error: Exception) -> SourceUnavailable:
    return SourceUnavailable(f"NVML failed while listing GPUs ({error}): check the driver with nvidia-smi")


def _every_gpu(nvml: ModuleType) -> tuple[list[Any], list[str]]:
    """Every GPU NVML lists, by NVML index: its handle and its UUID."""
    handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(nvml.nvmlDeviceGetCount())]
    return handles, [_text(nvml.nvmlDeviceGetUUID(handle)) for handle in handles]


def _visible() -> tuple[list[int], list[str], list[str]]:
    """The NVML indices of the GPUs CUDA shows this process (in CUDA's order), and every GPU's UUID and
    name by NVML index; :class:`SourceUnavailable` (one line) where NVML cannot list them or an entry of
    ``CUDA_VISIBLE_DEVICES`` is a MIG instance."""
    library = _started()
    nvml = library.nvml
    try:
        handles, uuids = _every_gpu(nvml)
        names = [_text(nvml.nvmlDeviceGetName(handle)) for handle in handles]
    except nvml.NVMLError as error:
        raise _listing_failed(error) from None
    finally:
        library.release()
    try:
        visible = cuda_visible(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids)
    except ValueError as error:
        raise SourceUnavailable(str(error)) from None
    return visible, uuids, names


def visible_gpus() -> list[str]:
    """The GPUs CUDA shows this process, in CUDA's order, each as a ``CUDA_VISIBLE_DEVICES`` entry names
    it: its full UUID where that variable names UUIDs, else its index (every GPU NVML lists where it is
    unset). Raises :class:`SourceUnavailable` (one line) where NVML cannot list them or an entry is a MIG
    instance."""
    visible, uuids, _ = _visible()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return [str(index) for index in visible]
    entries = [entry.strip() for entry in env.split(",")][:len(visible)]  # those CUDA sees, as written
    return [uuids[index] if entry.upper().startswith("GPU-") else entry for index, entry in zip(visible, entries)]


def visible_gpu_products() -> list[tuple[str, str]]:
    """The UUID and product name of each GPU CUDA shows this process, in CUDA's order (``cuda:N`` is the
    N-th); :class:`SourceUnavailable` as :func:`visible_gpus`."""
    visible, uuids, names = _visible()
    return [(uuids[index], names[index]) for index in visible]


def _match_entry(entry: str, uuids: list[str]) -> int | None:
    if entry.isdigit():
        index = int(entry)
        return index if index < len(uuids) else None
    if entry.upper().startswith("GPU-"):
        hits = [i for i, uuid in enumerate(uuids) if uuid.lower().startswith(entry.lower())]
        return hits[0] if len(hits) == 1 else None
    return None


def open_channels(selectors: list[str] | None) -> Detection:
    """Open one channel per selected GPU: the energy counter where it exists, power sampling otherwise.

    ``selectors`` None means every GPU CUDA shows this process; items are visible indices ("0") or
    UUIDs ("GPU-8932f937", a unique prefix is enough). Raises :class:`SourceUnavailable` when there is
    no NVML library, driver or visible GPU. A GPU that cannot be measured (MIG, no readings, not found)
    is a note in the returned :class:`Detection`, so it is reported even when GPUs were not asked for.
    """
    library = _started()
    try:
        return _open(library, selectors)
    except library.nvml.NVMLError as error:
        raise _listing_failed(error) from None
    finally:
        library.release()


def _open(library: _Library, selectors: list[str] | None) -> Detection:
    nvml = library.nvml
    handles, uuids = _every_gpu(nvml)
    if not handles:
        raise SourceUnavailable("NVML sees no GPU")
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        visible = cuda_visible(env, uuids)
    except ValueError as error:
        return Detection(notes=[f"GPU energy not measured: {error}"])
    if not visible:
        raise SourceUnavailable(f"no GPU is visible to CUDA (CUDA_VISIBLE_DEVICES={env!r})")

    found = Detection()
    names = [_text(nvml.nvmlDeviceGetName(handles[index])) for index in visible]
    if len(set(names)) > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        found.notes.append(
            "GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA numbers them fastest "
            "first and NVML by PCI bus, so gpu:N may not be cuda:N; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
        )
    for position in _select(selectors, [uuids[index] for index in visible], found.notes):
        index = visible[position]
        channel = _open_gpu(library, handles[index], f"gpu:{position}", index, found.notes)
        if channel is not None:
            found.channels.append(channel)
    return found


def _select(selectors: list[str] | None, visible_uuids: list[str], notes: list[str]) -> list[int]:
    """Visible positions named by the selectors, in order, each once; a selector naming none is a note."""
    if selectors is None:
        return list(range(len(visible_uuids)))
    chosen: list[int] = []
    for selector in selectors:
        position = _match_entry(selector.strip(), visible_uuids)
        if position is None:
            notes.append(
                f"GPU {selector!r} not measured: {len(visible_uuids)} GPU(s) visible to CUDA, "
                f"give an index below {len(visible_uuids)} or a UUID from nvidia-smi -L"
            )
        elif position not in chosen:
            chosen.append(position)
    return chosen


def _open_gpu(library: _Library, handle: Any, device: str, index: int, notes: list[str]) -> Channel | None:
    nvml = library.nvml
    label = f"{device} ({_text(nvml.nvmlDeviceGetName(handle))}, {_text(nvml.nvmlDeviceGetUUID(handle))})"
    try:
        mig_current = nvml.nvmlDeviceGetMigMode(handle)[0]
    except nvml.NVMLError:
        mig_current = 0  # NotSupported: a GPU without MIG
    if mig_current == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
        notes.append(
            f"{label} not measured: MIG is enabled and NVML measures the whole GPU, so the energy of "
            "one MIG slice cannot be separated; disable MIG (nvidia-smi -mig 0) to measure it"
        )
        return None
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
        pass  # before Volta: no counter, power readings are integrated instead
    except nvml.NVMLError as error:
        notes.append(f"{label} not measured: its energy counter could not be read ({error})")
        return None
    else:
        return NvmlCounterChannel(library, handle, device, index)
    channel = NvmlSampledChannel(library, handle, device, index)
    try:
        channel.read_watts()
    except SourceError as error:
        channel.close()
        notes.append(f"{label} not measured: no energy counter and no power reading ({error})")
        return None
    return channel


def _reasons(mask: int) -> list[str]:
    """The names of the reason bits set in a clock event mask (an unknown bit by its hex value)."""
    named = [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_REASONS)
    return named + ([f"0x{unknown:x}"] if unknown else [])


def _event_reasons(nvml: ModuleType) -> Callable[[Any], int]:
    """nvmlDeviceGetCurrentClocksEventReasons, or its older name where nvidia-ml-py predates it."""
    reader = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    return reader or nvml.nvmlDeviceGetCurrentClocksThrottleReasons


def _read_facts(nvml: ModuleType, readers: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Each reader's value; a fact this GPU, driver or pynvml does not report is left out, not guessed."""
    facts: dict[str, object] = {}
    for key, reader in readers.items():
        try:
            facts[key] = reader()
        except (nvml.NVMLError, AttributeError):
            pass
    return facts


def _field_number(value: Any) -> float:
    """The number held by an ``nvmlFieldValue_t`` union, by its declared type."""
    member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
    return float(getattr(value.value, member.get(value.valueType, "uiVal")))


def _cuda_version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"  # NVML gives 12040 for CUDA 12.4


class _GpuChannel(Channel):
    """What both GPU channels share: the handle, power readings, identity and other processes."""

    kind = "gpu"

    def __init__(self, library: _Library, handle: Any, device: str, nvml_index: int) -> None:
        self._library = library
        self._nvml = library.nvml
        self._handle = handle
        self.device = device
        self.nvml_index = nvml_index
        self._closed = False
        library.acquire()
        # Chosen once so one integral never mixes two definitions of power; the field is the
        # instantaneous reading, nvmlDeviceGetPowerUsage a ~1 s average on newer GPUs.
        self._instant_field = self._probe_instant_field()
        self._identity = self._read_identity()

    def _probe_instant_field(self) -> int | None:
        field = getattr(self._nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field is None:
            return None
        try:
            value = self._nvml.nvmlDeviceGetFieldValues(self._handle, [field])[0]
        except self._nvml.NVMLError:
            return None
        return field if value.nvmlReturn == _NVML_SUCCESS else None

    def read_watts(self) -> float:
        """Board power in watts now; raises :class:`SourceError` when NVML fails."""
        nvml = self._nvml
        try:
            if self._instant_field is not None:
                value = nvml.nvmlDeviceGetFieldValues(self._handle, [self._instant_field])[0]
                if value.nvmlReturn != _NVML_SUCCESS:
                    raise nvml.NVMLError(value.nvmlReturn)
                return _field_number(value) / 1000.0
            return nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except nvml.NVMLError as error:
            raise SourceError(f"{self.device}: NVML power reading failed ({error})") from None

    def max_watts(self) -> float | None:
        """The enforced power limit read at open, or None where NVML does not report it."""
        limit = self._identity.get("power_limit_watts")
        return float(limit) if isinstance(limit, (int, float)) and limit > 0 else None

    def power(self) -> float | None:
        """Instantaneous board power in watts, or None when NVML fails."""
        try:
            return self.read_watts()
        except SourceError:
            return None

    def other_processes(self) -> list[int]:
        """Pids computing on this GPU other than this process ([] when NVML cannot tell).

        Inside a container NVML reports host pids, so this process can appear among them too.
        """
        try:
            running = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except self._nvml.NVMLError:
            return []
        me = os.getpid()
        return sorted({int(process.pid) for process in running if process.pid != me})

    def _read_identity(self) -> dict[str, object]:
        nvml, handle = self._nvml, self._handle
        facts: dict[str, object] = {"device": self.device, "nvml_index": self.nvml_index, "method": self.method}
        readers: dict[str, Callable[[], object]] = {
            "name": lambda: _text(nvml.nvmlDeviceGetName(handle)),
            "uuid": lambda: _text(nvml.nvmlDeviceGetUUID(handle)),
            "driver_version": lambda: _text(nvml.nvmlSystemGetDriverVersion()),
            "nvml_version": lambda: _text(nvml.nvmlSystemGetNVMLVersion()),
            "cuda_driver_version": lambda: _cuda_version(nvml.nvmlSystemGetCudaDriverVersion()),
            "power_limit_watts": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
            "memory_total_bytes": lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            # Clocks change energy per unit of work as a power limit does: recorded with the kind.
            "sm_clock_max_mhz": lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)),
            "applications_sm_clock_mhz": lambda: int(nvml.nvmlDeviceGetApplicationsClock(handle, nvml.NVML_CLOCK_SM)),
        }
        facts.update(_read_facts(nvml, readers))
        facts["power_reading"] = "NVML_FI_DEV_POWER_INSTANT" if self._instant_field else "nvmlDeviceGetPowerUsage"
        return facts

    def identity(self) -> dict[str, object]:
        """Name, UUID, driver, NVML and CUDA driver versions, power limit, memory, method."""
        return dict(self._identity)

    def conditions(self) -> dict[str, object]:
        """Temperature (degC), SM clock (MHz), enforced power limit (W) and throttle reasons now."""
        nvml, handle = self._nvml, self._handle
        return _read_facts(nvml, {
            "temperature_c": lambda: int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            "sm_clock_mhz": lambda: int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
            "power_limit_watts": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
            "throttle_reasons": lambda: _reasons(int(_event_reasons(nvml)(handle))),
        })

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._library.release()


class NvmlCounterChannel(_GpuChannel):
    """A GPU's hardware energy counter (Volta and newer), in joules since the first read."""

    method = "counter"
    tick_seconds = COUNTER_TICK_SECONDS

    def __init__(self, library: _Library, handle: Any, device: str, nvml_index: int) -> None:
        super().__init__(library, handle, device, nvml_index)
        self._lock = threading.Lock()
        self._last_mj: int | None = None
        self._total_mj = 0

    def read(self) -> float:
        """Joules counted since the first read; raises :class:`SourceError` when NVML fails."""
        with self._lock:  # read and counted in one step: two threads' reads counted out of order went back
            try:
                raw = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            except self._nvml.NVMLError as error:
                raise SourceError(f"{self.device}: NVML energy reading failed ({error})") from None
            last = raw if self._last_mj is None else self._last_mj
            self._last_mj = raw
            delta = raw - last
            if delta < 0:
                if raw < COUNTER_MODULUS_MJ // 2 <= last:
                    delta += COUNTER_MODULUS_MJ  # the 64-bit counter wrapped
                else:
                    # a reset (driver reload, GPU reset): counting goes on from the new value, but the
                    # window this read falls in is lost
                    raise SourceError(
                        f"{self.device}: the energy counter went back by {-delta / 1000:.3f} J "
                        "(driver reload or GPU reset?); this window is invalid"
                    )
            self._total_mj += delta
            return self._total_mj / 1000.0

    def uncertainty(self, joules: float, seconds: float) -> float:
        """The counter's resolution at each edge. The timing error of locating the ticks around an
        edge (a read costs ~4 ms) is the meter's part: it adds it per edge from the observed tick."""
        return 2 * COUNTER_RESOLUTION_JOULES


class NvmlSampledChannel(_GpuChannel, SampledChannel):
    """A GPU without the energy counter: its power read by the sampler and integrated
    (:class:`~pytest_energy.measure.sources.sampled.SampledChannel`), through the same power reading as
    :meth:`_GpuChannel.read_watts`."""

    reader = "NVML"

    def __init__(self, library: _Library, handle: Any, device: str, nvml_index: int) -> None:
        _GpuChannel.__init__(self, library, handle, device, nvml_index)
        SampledChannel.__init__(self)

    def close(self) -> None:
        """Stop the sampler and release NVML."""
        SampledChannel.close(self)
        _GpuChannel.close(self)


class NvmlSource(Source):
    """NVIDIA GPUs through NVML: the first source asked for GPUs, judged in the "gpu" device-kind group;
    each GPU is calibrated with its own reference workload."""

    name = "nvml"
    kinds = ("gpu",)
    methods = ("counter", "sampled")
    devices = r"gpu:\d+"
    requirement = "gpu"
    rank = 10
    group = "gpu"

    def open(self, request: Request) -> Detection:
        """The GPUs the request selects (:func:`open_channels`)."""
        return open_channels(request.selectors.get("gpu"))

    def how(self, channel: Channel) -> str:
        identity = channel.identity()
        name = identity.get("name", "NVIDIA GPU")
        if channel.method == "counter":
            return f"{name}: NVML total-energy counter (nvmlDeviceGetTotalEnergyConsumption)"
        return f"{name}: no energy counter (before Volta), power read by {identity.get('power_reading')} and integrated"

    def doctor_fields(self, channel: Channel) -> dict[str, Any]:
        """Its NVML index; MIG is off on every GPU measured (one with MIG on is refused)."""
        return {"mig_enabled": False, "nvml_index": getattr(channel, "nvml_index", None)}

    def doctor_lines(self, channel: Channel) -> list[str]:
        """CUDA's number against NVML's, the power limit, MIG, and other processes on the GPU."""
        identity = channel.identity()
        limit = identity.get("power_limit_watts")
        others = channel.other_processes()
        facts = [f"cuda:{channel.device.partition(':')[2]} = NVML index {getattr(channel, 'nvml_index', None)} "
                 f"({identity.get('uuid', '?')})",
                 f"power limit {float(limit):g} W" if limit else "power limit n/a",
                 "MIG off",
                 ("other processes on it: " + ", ".join(map(str, others)) + " (their energy is counted too)")
                 if others else "no other process on it"]
        return [f"{channel.device}: " + "; ".join(facts)]

    def section(self, channels: list[Channel], request: Request, notes: list[str], spec: str) -> Section:
        """Whether a GPU is measured, and why not (GPUs not asked for, no driver, none visible to CUDA,
        each GPU refused); answers ``--require gpu``."""
        reason = None
        own_notes = [n for n in notes if n.startswith(("gpu", "GPU"))]
        if not any(c.kind == "gpu" for c in channels):
            if "gpu" not in request.selectors:
                reason = f"GPUs are not among the devices measured (energy_devices = {spec!r})"
            else:
                try:
                    opened = open_channels(request.selectors["gpu"])
                except SourceUnavailable as error:
                    reason = str(error)
                else:
                    for channel in opened.channels:
                        channel.close()
                    reason = "; ".join(own_notes) or "no GPU could be opened"
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        document = {"available": reason is None, "reason": reason, "cuda_visible_devices": visible,
                    "cuda_device_order": os.environ.get("CUDA_DEVICE_ORDER"), "notes": own_notes}
        line = (f"GPU: {'measured' if reason is None else 'not measured: ' + reason}; "
                f"CUDA_VISIBLE_DEVICES={visible if visible is not None else '(unset: every GPU)'}")
        return Section("gpu", "GPU", reason, document, [line], requirement=self.requirement,
                       unmet=None if reason is None else f"--require gpu: no GPU is measured: {reason}")

    def reference_device(self, channel: Channel) -> str:
        """The GPU itself: each GPU runs its own reference workload."""
        return channel.device


#: The source :mod:`pytest_energy.measure.sources` registers.
SOURCE = NvmlSource()
