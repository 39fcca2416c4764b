"""The contract every energy source implements: channels that read cumulative joules.

A *channel* is one device seen by one source (one GPU through NVML, one RAPL domain, the modelled
CPU). Every channel exposes a monotonic cumulative energy in joules, whatever it is underneath:
a hardware counter (differenced, wraparound handled by the channel), power readings integrated by a
background sampler, or a model of CPU time and rated power. The meter only ever differences
``read()`` values, so windows, rounds and idle work the same for every method.

Every device draws some power and none draws much more than its power limit, so a channel also says
what bounds a plausible window (:attr:`Channel.frozen_after_seconds`, :meth:`Channel.max_watts`); the
meter marks a window outside them invalid instead of passing on a frozen counter's 0 J or a jump.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

#: How far above its power limit a device's power may read (boost transients, edge timing) before a
#: reading or a window is taken as a fault rather than energy.
POWER_LIMIT_MARGIN = 1.5


class SourceError(RuntimeError):
    """A reading failed (driver error, file vanished). The window it falls in is marked invalid."""


class SourceUnavailable(RuntimeError):
    """A source cannot be used on this machine; the message says why and what to do."""


class Channel(abc.ABC):
    """One device's energy as a cumulative joule count."""

    #: "gpu:0", "cpu:package-0", "dram:package-0", "cpu", "ram"
    device: str
    #: "gpu" | "cpu" | "dram" | "ram"
    kind: str
    #: "counter" | "sampled" | "modelled"
    method: str
    #: seconds between counter updates; 0.0 for sources that are continuous at the meter's scale
    tick_seconds: float = 0.0
    #: A continuous reading that stays unchanged this long is frozen: the device always draws some
    #: power. 0.0: never checked (a model). Ticking counters: the meter's poller waits three ticks.
    frozen_after_seconds: float = 0.0

    @abc.abstractmethod
    def read(self) -> float:
        """Cumulative joules since an arbitrary origin; monotonic. Raises :class:`SourceError`."""

    def power(self) -> float | None:
        """An instantaneous power reading in watts where it is cheap (used for edge corrections)."""
        return None

    def max_watts(self) -> float | None:
        """The most this device can draw (its power limit), bounding a window's energy; None: unknown."""
        return None

    def uncertainty(self, joules: float, seconds: float) -> float:
        """Systematic uncertainty in joules of one window's reading (resolution or model error)."""
        return 0.0

    def start(self) -> None:
        """Called before the first window (a sampled channel starts its sampler here)."""

    def close(self) -> None:
        """Release the device handle or stop the sampler."""

    def timeline(self, since: float, until: float) -> list[tuple[float, float]]:
        """(perf_counter seconds, watts) power samples taken between two instants, where sampled."""
        return []

    def identity(self) -> dict[str, object]:
        """Facts for the hardware fingerprint (name, driver, power limit...)."""
        return {}

    def conditions(self) -> dict[str, object]:
        """The device's state now, for the record: for GPUs ``temperature_c``, ``sm_clock_mhz``,
        ``power_limit_watts`` and ``throttle_reasons`` (names such as "sw_power_cap"); {} where the
        source has none. The meter calls it at window edges from a thread of its own."""
        return {}

    def other_processes(self) -> list[int]:
        """Pids of other processes using this device, whose energy the reading includes (GPUs)."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.device} {self.method}>"


@dataclass(frozen=True)
class Request:
    """What :func:`pytest_energy.measure.sources.detect` asks one source for."""

    #: kind ("gpu", "cpu", "ram") -> None (every device of that kind) or selectors such as "0" or a UUID
    selectors: dict[str, list[str] | None]
    #: where the kernel's powercap tree is mounted (``--energy-powercap``)
    powercap: str = "/sys/class/powercap"
    #: the CPU's rated power a modelled CPU uses, and who set it (``--energy-cpu-tdp``); None: its table's
    cpu_tdp: tuple[float, str] | None = None


@dataclass
class Detection:
    """What :func:`pytest_energy.measure.sources.detect` found: the channels, and one line per problem."""

    channels: list[Channel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings shown once (e.g. RAPL permission)
