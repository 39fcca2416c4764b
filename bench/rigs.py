"""What a benchmark measures on: a real GPU through NVML, a simulated NVML GPU, or this machine's CPU.

A rig gives the same things to every section: the plugin's channels for the device, one iteration of
a steady load (``work(scale)``, ``scale`` 1.03 = 3 % more work), a naive reader of the device's
counter, CodeCarbon's figure for the same device, and, where it is known (the simulation), the
true energy between two instants.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pytest_energy.measure.sources import detect, nvml
from pytest_energy.measure.sources.base import Channel, SourceUnavailable

from . import simnvml

#: One iteration of every steady load lasts about this long (so a 0.1 s window holds several).
ITERATION_SECONDS = 0.02
#: GPU load: square bf16 products of this size, this many per iteration (~1.4 TFLOP, ~20 ms on an H100).
MATMUL_SIZE = 4096
MATMULS_PER_ITERATION = 100


@dataclass
class Rig:
    """One device and its steady load, as every section sees it."""

    key: str  # "nvml", "sim", "cpu"
    label: str  # shown in the tables
    device: str  # the plugin's device name(s), e.g. "gpu:0" or "cpu, ram"
    open_channels: Callable[[], list[Channel]]
    make_work: Callable[[float], Callable[[], None]]
    naive_read: Callable[[], float] | None = None  # cumulative joules, read on the calling thread
    naive_absent: str = ""  # why there is no naive reader
    codecarbon_options: dict[str, Any] = field(default_factory=dict)
    codecarbon_joules: Callable[[Any], float] | None = None  # from EmissionsData
    truth: Callable[[float, float], float] | None = None  # true joules between two perf_counter instants
    sync: Callable[[], None] = lambda: None
    read_seconds: float = 0.0  # CPU cost of one counter read on the real device (for projections)
    simulated_reads: Callable[[], int] | None = None  # counter reads so far (simulation only)
    facts: dict[str, Any] = field(default_factory=dict)

    def work(self, scale: float = 1.0) -> Callable[[], None]:
        """One iteration of the steady load, ``scale`` times the standard amount of work."""
        return self.make_work(scale)


def _kwh_to_joules(kwh: float) -> float:
    return float(kwh) * 3.6e6


# -- simulated NVML ---------------------------------------------------------------------------------
def simulated_rig(seed: int = 0, module: simnvml.SimulatedNvml | None = None, index: int = 0) -> Rig:
    """A GPU of a :class:`~bench.simnvml.SimulatedNvml` module (a fresh one-GPU module by default)."""
    module = module or simnvml.SimulatedNvml(seed=seed)
    module.nvmlInit()
    handle = module.nvmlDeviceGetHandleByIndex(index)

    def open_channels() -> list[Channel]:
        with simnvml.installed(module):
            found = nvml.open_channels([str(index)])
        if not found.channels:
            raise SourceUnavailable("; ".join(found.notes) or "the simulated GPU gave no channel")
        return found.channels

    def make_work(scale: float) -> Callable[[], None]:
        seconds = ITERATION_SECONDS * scale
        return lambda: module.pulse(index, seconds)

    return Rig(
        key="sim",
        label=(f"simulated NVML (counter published every {simnvml.TICK_SECONDS * 1000:.0f} ms, "
               f"{simnvml.READ_SECONDS * 1000:.1f} ms per read, {simnvml.IDLE_WATTS:.0f} W idle, "
               f"{simnvml.LOAD_WATTS:.0f} W load)"),
        device="gpu:0 (simulated)",
        open_channels=open_channels,
        make_work=make_work,
        naive_read=lambda: module.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0,
        codecarbon_options={"gpu_ids": [index]},
        codecarbon_joules=lambda data: _kwh_to_joules(data.gpu_energy),
        truth=lambda start, end: module.true_joules(index, start, end),
        read_seconds=simnvml.READ_SECONDS,
        simulated_reads=lambda: module.calls["nvmlDeviceGetTotalEnergyConsumption"],
        facts={"simulated": True, "tick_seconds": simnvml.TICK_SECONDS, "read_seconds": simnvml.READ_SECONDS,
               "idle_watts": simnvml.IDLE_WATTS, "load_watts": simnvml.LOAD_WATTS,
               "iteration_seconds": ITERATION_SECONDS},
    )


# -- a real GPU -------------------------------------------------------------------------------------
def gpu_available() -> str:
    """"" when a CUDA GPU with NVML can be benchmarked here, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    try:
        found = nvml.open_channels(["0"])
    except SourceUnavailable as error:
        return str(error)
    for channel in found.channels:
        channel.close()
    return "" if found.channels else "; ".join(found.notes) or "NVML gave no channel for gpu:0"


def gpu_rig(index: int = 0) -> Rig:
    """CUDA device ``index`` (``gpu:index`` for the plugin), loaded by bf16 matrix products."""
    import pynvml
    import torch

    device = torch.device(f"cuda:{index}")
    a = torch.rand(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    b = torch.rand(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    out = torch.empty_like(a)
    probe = nvml.open_channels([str(index)])
    if not probe.channels:
        raise SourceUnavailable("; ".join(probe.notes) or f"NVML gave no channel for gpu:{index}")
    channel = probe.channels[0]
    nvml_index = int(getattr(channel, "nvml_index", index))
    identity = channel.identity()
    method = channel.method
    channel.close()
    pynvml.nvmlInit()  # the naive reader's own reference on the library
    handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index)

    def make_work(scale: float) -> Callable[[], None]:
        count = round(MATMULS_PER_ITERATION * scale)  # 101 products = 1 % more work

        def work() -> None:
            for _ in range(count):
                torch.matmul(a, b, out=out)

        return work

    def sync() -> None:
        torch.cuda.synchronize(device)

    return Rig(
        key="nvml",
        label=f"{identity.get('name', 'NVIDIA GPU')} (NVML {method})",
        device=f"gpu:{index}",
        open_channels=lambda: _open_gpu(index),
        make_work=make_work,
        naive_read=lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0,
        codecarbon_options={"gpu_ids": [nvml_index]},
        codecarbon_joules=lambda data: _kwh_to_joules(data.gpu_energy),
        sync=sync,
        read_seconds=0.0039,
        facts={"simulated": False, **identity, "matmul_size": MATMUL_SIZE,
               "matmuls_per_iteration": MATMULS_PER_ITERATION, "torch": torch.__version__,
               "torch_cuda": torch.version.cuda},
    )


def _open_gpu(index: int) -> list[Channel]:
    found = nvml.open_channels([str(index)])
    if not found.channels:
        raise SourceUnavailable("; ".join(found.notes) or f"NVML gave no channel for gpu:{index}")
    return found.channels


# -- this machine's CPU -----------------------------------------------------------------------------
def _hash_rounds_per_iteration(block: bytes) -> int:
    """How many SHA-256 passes over ``block`` take :data:`ITERATION_SECONDS` here (median of 5 probes)."""
    probes = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(20):
            hashlib.sha256(block).digest()
        probes.append((time.perf_counter() - began) / 20)
    probes.sort()
    return max(1, round(ITERATION_SECONDS / probes[2]))


def cpu_rig() -> Rig:
    """The CPU (and RAM) as the plugin sees it here: RAPL counters where readable, else modelled.

    The load hashes a 16 KiB block some hundred times: fixed work in fine steps (1 % more work is a
    whole number of passes), which keeps one core busy and releases the GIL, so the meter's own
    threads are not starved.
    """
    probe = detect("cpu,ram")
    methods = sorted({c.method for c in probe.channels})
    devices = ", ".join(c.device for c in probe.channels)
    identity = {c.device: c.identity() for c in probe.channels}
    for channel in probe.channels:
        channel.close()
    block = bytes(range(256)) * 64
    per_iteration = _hash_rounds_per_iteration(block)

    def make_work(scale: float) -> Callable[[], None]:
        count = max(1, round(per_iteration * scale))

        def work() -> None:
            for _ in range(count):
                hashlib.sha256(block).digest()

        return work

    return Rig(
        key="cpu",
        label=f"CPU ({', '.join(methods)}: {devices})",
        device=devices,
        open_channels=lambda: detect("cpu,ram").channels,
        make_work=make_work,
        naive_absent=("no NVML here; the CPU sources do not tick, so reading them at the edges is what the "
                      "plugin does already"),
        codecarbon_options={"gpu_ids": None},
        codecarbon_joules=lambda data: _kwh_to_joules(data.cpu_energy) + _kwh_to_joules(data.ram_energy),
        facts={"simulated": False, "methods": methods, "notes": probe.notes, "identity": identity,
               "hash_passes_per_iteration": per_iteration},
    )
