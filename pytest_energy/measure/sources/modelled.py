"""Modelled CPU and RAM energy, for machines with no counter (CI runners, VMs, RAPL locked to root).

The numbers are estimates and are labelled ``modelled`` everywhere. The CPU model is CodeCarbon's:
``TDP x (0.1 + 0.9 x load^3)``, with load taken from this process's CPU time over the window divided
by the logical CPUs, and TDP looked up in CodeCarbon's bundled ``cpu_power.csv`` (read as a file;
CodeCarbon itself is never imported), its 85 W default where the CPU is not there, or as
``--energy-cpu-tdp`` sets it; the channel says which (``tdp_source``), and records carry it. RAM is 3/8 W per GiB of the process's resident memory, the
rule CodeCarbon used before it counted DIMMs.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import platform
import time
from functools import lru_cache
from pathlib import Path

from typing import Any

from .base import Channel, Detection, Request, Source

#: CodeCarbon's fallback when a CPU is not in its table.
DEFAULT_TDP_WATTS = 85.0
RAM_WATTS_PER_GIB = 3 / 8
#: A stated assumption, not a measurement: published comparisons of TDP models with wall meters
#: differ from them by tens of percent.
MODEL_RELATIVE_UNCERTAINTY = 0.3


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or platform's guess elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _codecarbon_cpu_table() -> Path | None:
    spec = importlib.util.find_spec("codecarbon")  # locates the package without importing it
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "data" / "hardware" / "cpu_power.csv"
    return path if path.exists() else None


@lru_cache(maxsize=8)
def rated_power(model: str) -> tuple[float, str]:
    """(TDP watts, where it came from) for a CPU model name, by the longest table name inside it; where
    it came from reads after "the TDP is": CodeCarbon's table, or its default guess."""
    table = _codecarbon_cpu_table()
    if table is not None:
        best: tuple[int, float, str] | None = None
        lowered = model.lower()
        with table.open(newline="") as handle:
            rows = csv.reader(handle)  # not DictReader: a dict per row of ~5,000 took 5x as long
            header = next(rows, [])
            if "Name" in header and "TDP" in header:
                name_at, tdp_at = header.index("Name"), header.index("TDP")
                for row in rows:
                    name = row[name_at].strip() if len(row) > max(name_at, tdp_at) else ""
                    if len(name) >= 4 and name.lower() in lowered and (best is None or len(name) > best[0]):
                        best = (len(name), float(row[tdp_at]), name)
        if best is not None:
            return best[1], f"from CodeCarbon's cpu_power.csv ({best[2]})"
    return DEFAULT_TDP_WATTS, "a default guess (CodeCarbon's 85 W: this CPU is not in its cpu_power.csv)"


_STATM: dict[int, int] = {}  # pid -> an open /proc/<pid>/statm (opening it costs ~0.1 ms, a read 10 µs)


def _resident_bytes() -> int:
    try:
        pid = os.getpid()  # a forked child must not read its parent's file
        if pid not in _STATM:
            _STATM.clear()
            _STATM[pid] = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
        pages = int(os.pread(_STATM[pid], 256, 0).split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _ModelledChannel(Channel):
    """Accumulates modelled joules between reads; each read integrates the span since the last."""

    method = "modelled"
    tick_seconds = 0.0

    def __init__(self) -> None:
        self._joules = 0.0
        self._last_wall = time.perf_counter()
        self._last_state = self._state()

    def _state(self) -> float:
        return 0.0

    def _watts(self, wall: float, state_before: float, state_after: float) -> float:
        raise NotImplementedError

    def read(self) -> float:
        now, state = time.perf_counter(), self._state()
        span = now - self._last_wall
        if span > 0:
            self._joules += self._watts(span, self._last_state, state) * span
        self._last_wall, self._last_state = now, state
        return self._joules

    def uncertainty(self, joules: float, seconds: float) -> float:
        return abs(joules) * MODEL_RELATIVE_UNCERTAINTY


class CpuChannel(_ModelledChannel):
    """This process's share of the CPU, modelled from CPU time and rated power."""

    device = "cpu"
    kind = "cpu"

    def __init__(self, tdp_watts: float | None = None, tdp_source: str = "given by the caller",
                 logical_cpus: int | None = None) -> None:
        self.model = cpu_model()
        if tdp_watts is None:
            self.tdp_watts, self.tdp_source = rated_power(self.model)
        else:
            self.tdp_watts, self.tdp_source = tdp_watts, tdp_source
        self.logical_cpus = logical_cpus or os.cpu_count() or 1
        super().__init__()

    def _state(self) -> float:
        return time.process_time()

    def _watts(self, wall: float, state_before: float, state_after: float) -> float:
        load = min(1.0, max(0.0, (state_after - state_before) / (wall * self.logical_cpus)))
        return self.tdp_watts * (0.1 + 0.9 * load**3)

    def identity(self) -> dict[str, object]:
        return {
            "cpu_model": self.model,
            "tdp_watts": self.tdp_watts,
            "tdp_source": self.tdp_source,
            "logical_cpus": self.logical_cpus,
        }


class RamChannel(_ModelledChannel):
    """This process's resident memory at 3/8 W per GiB."""

    device = "ram"
    kind = "ram"

    def _state(self) -> float:
        return float(_resident_bytes())

    def _watts(self, wall: float, state_before: float, state_after: float) -> float:
        return (state_before + state_after) / 2 / 2**30 * RAM_WATTS_PER_GIB

    def identity(self) -> dict[str, object]:
        return {"ram_model": f"{RAM_WATTS_PER_GIB} W per GiB resident"}


class ModelledSource(Source):
    """The CPU and RAM modelled: the last source asked for them, so it measures only where nothing else
    does; judged in the "modelled" device-kind group (an estimate never mixes with a measurement)."""

    name = "modelled"
    kinds = ("cpu", "ram")
    methods = ("modelled",)
    devices = "cpu|ram"
    rank = 90

    def open(self, request: Request) -> Detection:
        """The modelled CPU and RAM the request asks for."""
        channels: list[Channel] = []
        if "cpu" in request.selectors:
            channels.append(CpuChannel(*request.cpu_tdp) if request.cpu_tdp else CpuChannel())
        if "ram" in request.selectors:
            channels.append(RamChannel())
        return Detection(channels)

    def how(self, channel: Channel) -> str:
        identity = channel.identity()
        if channel.kind == "cpu":
            return (f"modelled: TDP {identity.get('tdp_watts')} W x (0.1 + 0.9 x load^3), load = this process's "
                    f"CPU time over {identity.get('logical_cpus')} CPUs; the TDP is {identity.get('tdp_source')}")
        return f"modelled: {identity.get('ram_model', 'resident memory')}"

    def fingerprint_facts(self, channel: Channel) -> dict[str, Any]:
        """The TDP a modelled CPU assumes and where it came from: its estimates scale with it."""
        if channel.kind != "cpu":
            return {}
        identity = channel.identity()
        return {"cpu_tdp_watts": identity.get("tdp_watts"), "cpu_tdp_source": identity.get("tdp_source")}


#: The source :mod:`pytest_energy.measure.sources` registers.
SOURCE = ModelledSource()
