"""The contract every energy source implements: channels that read cumulative joules.

A *channel* is one device seen by one source (one GPU through NVML, one RAPL domain, the modelled
CPU). Every channel exposes a monotonic cumulative energy in joules, whatever it is underneath:
a hardware counter (differenced, wraparound handled by the channel), power readings integrated by a
background sampler, or a model of CPU time and rated power. The meter only ever differences
``read()`` values, so windows, rounds and idle work the same for every method.

Every device draws some power and none draws much more than its power limit, so a channel also says
what bounds a plausible window (:attr:`Channel.frozen_after_seconds`, :meth:`Channel.max_watts`); the
meter marks a window outside them invalid instead of passing on a frozen counter's 0 J or a jump.

A *source* (:class:`Source`) opens channels and carries everything the rest of the package knows of it:
which device kinds it measures and how trusted it is, the device-kind group its energy is judged in,
what ``pytest-energy doctor`` says and checks of it, and which reference workload calibrates its
channels. Nothing outside a source's module names it.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Any

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
    #: the name of the :class:`Source` that opened it (set by ``detect``)
    source: str = ""
    #: seconds between counter updates; 0.0 for sources that are continuous at the meter's scale
    tick_seconds: float = 0.0
    #: A continuous reading that stays unchanged this long is frozen: the device always draws some
    #: power. 0.0: never checked (a model). Ticking counters: the meter's poller waits three ticks.
    frozen_after_seconds: float = 0.0
    #: xdist workers that draw on this device in the same windows (set by the session; see
    #: :func:`pytest_energy.xdist.share`); 0: this process has it to itself.
    shared_with: int = 0

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


#: The kind of device each channel kind measures, as ``--energy-devices`` names it (a RAPL ``dram``
#: domain is the RAM).
DEVICE_KIND = {"gpu": "gpu", "cpu": "cpu", "dram": "ram", "ram": "ram"}


@dataclass
class Section:
    """What ``pytest-energy doctor`` says of one source: whether it measures here and why not, its part
    of the JSON document, its lines in the terminal, and the requirement it answers (``--require``)."""

    key: str  # its key in the JSON document ("gpu", "rapl")
    label: str  # its name in a sentence ("GPU", "RAPL")
    reason: str | None  # why it measures nothing here; None where it measures
    document: dict[str, Any]  # keys of its own; "reason" among them
    lines: list[str] = field(default_factory=list)
    requirement: str = ""  # its source's requirement (``--require NAME``); "" where it has none
    unmet: str | None = None  # one line: why ``--require NAME`` is not met; None where it is


class Source:
    """One energy source, registered by name (:func:`pytest_energy.measure.sources.register_source`).

    A subclass sets :attr:`name`, :attr:`kinds` and :attr:`methods` and implements :meth:`open`; the other
    methods have defaults a source overrides where it knows better. Its module is the only place that
    knows it: detection, the device kinds, the doctor and calibration ask it.
    """

    #: The name it is registered under ("nvml").
    name: str = ""
    #: The ``--energy-devices`` kinds it can measure ("gpu", "cpu", "ram").
    kinds: tuple[str, ...] = ()
    #: The methods its channels read with ("counter", "sampled", "modelled"): with the kinds and the device
    #: names, how a stored component (which keeps its device, kind and method) is known to be this source's.
    methods: tuple[str, ...] = ()
    #: A regular expression its channels' device names match in full ("gpu:\\d+"); "": any name.
    devices: str = ""
    #: Most trusted first: each kind is measured by the source of the lowest rank that opens a channel for
    #: it (the bundled ones: NVML 10, RAPL 20, the model 90).
    rank: int = 50
    #: The device-kind group its energy is judged in; energy of two groups never mixes
    #: (:func:`pytest_energy.measure.fingerprint.device_kinds`). Default: its name.
    group: str = ""
    #: What ``pytest-energy doctor --require NAME`` asks of it (its :meth:`section` answers); "": nothing.
    requirement: str = ""

    def open(self, request: Request) -> Detection:
        """Open channels for the kinds in ``request``; raise :class:`SourceUnavailable` (one line: why,
        and what to do) where this source cannot be used on this machine at all."""
        raise NotImplementedError

    @property
    def device_group(self) -> str:
        """:attr:`group`, or the name where none is set."""
        return self.group or self.name

    def owns(self, device: str, kind: str, method: str, *, by_name: bool = True) -> bool:
        """Whether a channel (or a stored component) of this device, kind and method is this source's;
        with ``by_name`` false, the device's name is not asked (a record that named devices otherwise)."""
        return (DEVICE_KIND.get(kind, kind) in self.kinds and method in self.methods
                and (not by_name or not self.devices or re.fullmatch(self.devices, device) is not None))

    def how(self, channel: Channel) -> str:
        """One line for the doctor: where this channel's joules come from."""
        return f"{self.name} {channel.method}"

    def doctor_lines(self, channel: Channel) -> list[str]:
        """More lines the doctor prints for this channel (a GPU's CUDA number, power limit, MIG)."""
        return []

    def doctor_fields(self, channel: Channel) -> dict[str, Any]:
        """Fields of the doctor's device report this source fills (``nvml_index``, ``mig_enabled``)."""
        return {}

    def section(self, channels: list[Channel], request: Request, notes: list[str], spec: str) -> Section | None:
        """What the doctor says of this source on this machine (``channels`` are every channel detected,
        ``spec`` the ``--energy-devices`` value); None: nothing beyond its devices' lines."""
        return None

    def fingerprint_facts(self, channel: Channel) -> dict[str, Any]:
        """Facts of this channel the runner's fingerprint keeps beside its devices (a modelled CPU's TDP)."""
        return {}

    def reference_device(self, channel: Channel) -> str:
        """The device whose reference workload calibrates this channel: its own (a GPU runs its own), or
        "cpu", the host's product that every host device shares (the default)."""
        return "cpu"
