"""CPU package and DRAM energy from Intel RAPL counters under ``/sys/class/powercap`` (Linux).

Each socket is a top-level zone ``intel-rapl:N`` named ``package-K`` (kind ``cpu``, device
``cpu:package-K``); its subzone named ``dram`` (``intel-rapl:N:M``) is kind ``dram``, device
``dram:package-K``. Other zones are left out: ``core`` and ``uncore`` are parts of the package already
counted, ``psys`` (laptops) is the whole platform and overlaps the packages, and ``intel-rapl-mmio``
repeats the package through another interface. AMD CPUs with the kernel's RAPL driver show the same
tree (package zones only).

``energy_uj`` counts microjoules and wraps at ``max_energy_range_uj``; a channel adds the range each
time the value goes back. So that a long window cannot hide a whole wrap between two reads, a guard
thread reads the counter at least twice per shortest possible wrap period. Since CVE-2020-8694
``energy_uj`` is readable by root only on most distributions: that is reported once, with the fix.
A reset (the value going back without a wrap, e.g. after a resume) is read as a wrap and adds up to
the whole range; the meter's bound of :data:`WATTS_CEILING` per window marks that window invalid.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from .base import Channel, Detection, Request, Section, Source, SourceError

#: RAPL counters update about every millisecond: continuous at the meter's scale (tick 0.0).
UPDATE_SECONDS = 0.001
#: The commonest RAPL energy unit, 2^-14 J.
RESOLUTION_JOULES = 2.0**-14
#: No CPU package draws more, so the counter cannot wrap faster than range / this, and no window
#: holds more than this times its length (the meter's plausibility bound).
WATTS_CEILING = 1000.0
#: A hundred updates: a counter that has not moved for this long is frozen (a package always draws power).
FROZEN_AFTER_SECONDS = 0.1
GUARD_MIN_SECONDS = 0.5
GUARD_MAX_SECONDS = 60.0

_PACKAGE_ZONE = re.compile(r"intel-rapl:(\d+)")

PERMISSION_NOTE = (
    "CPU/DRAM energy counters are readable by root only ({path}; since CVE-2020-8694), so CPU and RAM "
    "are modelled: to measure them run `sudo chmod -R a+r /sys/class/powercap/intel-rapl` "
    "(lasts until reboot; a udev rule makes it permanent, see docs/sources.md)"
)


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return ""


def _subzones(root: Path, zone: Path) -> list[Path]:
    """``intel-rapl:N:M`` of a package: listed beside it in /sys/class/powercap, inside it in /sys/devices."""
    seen: dict[str, Path] = {}
    for place in (root, zone):
        for path in place.glob(f"{zone.name}:*"):
            seen.setdefault(path.name, path)
    return [seen[name] for name in sorted(seen, key=_zone_key)]


def _zone_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def open_channels(root: str) -> Detection:
    """Open a channel per package and DRAM domain under ``root`` (normally ``/sys/class/powercap``).

    A machine without RAPL gives an empty :class:`Detection` with no note (most CI machines and
    VMs); counters readable by root only give one note with the fix and no channel for those zones.
    """
    base = Path(root)
    found = Detection()
    if not base.is_dir():
        return found
    denied: Path | None = None
    packages = [p for p in base.iterdir() if _PACKAGE_ZONE.fullmatch(p.name)]
    for package in sorted(packages, key=lambda p: _zone_key(p.name)):
        name = _zone_name(package)
        if not name.startswith("package-"):
            continue  # psys or an unknown domain: overlaps the packages (module docstring)
        socket = name.removeprefix("package-")
        zones = [(package, "cpu", f"cpu:package-{socket}", name)]
        zones += [
            (sub, "dram", f"dram:package-{socket}", "dram")
            for sub in _subzones(base, package)
            if _zone_name(sub) == "dram"
        ]
        for zone, kind, device, domain in zones:
            try:
                found.channels.append(RaplChannel(zone, kind, device, domain))
            except PermissionError:
                denied = denied or zone / "energy_uj"
            except (OSError, ValueError) as error:
                found.notes.append(f"RAPL zone {zone} not measured: its counter could not be read ({error})")
    if denied is not None:
        found.notes.append(PERMISSION_NOTE.format(path=denied))
    return found


class RaplChannel(Channel):
    """One RAPL domain's microjoule counter, in joules since the channel opened, wraparound handled."""

    method = "counter"
    tick_seconds = 0.0  # updates every ~1 ms (UPDATE_SECONDS)
    frozen_after_seconds = FROZEN_AFTER_SECONDS

    def __init__(self, zone: Path, kind: str, device: str, domain: str) -> None:
        """Reads the counter once; raises ``PermissionError`` / ``OSError`` when it is unreadable."""
        self.zone = zone
        self.kind = kind
        self.device = device
        self.domain = domain
        self._energy = zone / "energy_uj"
        try:
            self.max_range_uj: int | None = _read_int(zone / "max_energy_range_uj")
        except (OSError, ValueError):
            self.max_range_uj = None  # a wrap cannot be told from a reset then: both are errors
        self._last_uj = _read_int(self._energy)
        self._total_uj = 0
        self._lock = threading.Lock()
        self._error: SourceError | None = None
        self._stop = threading.Event()
        self._guard: threading.Thread | None = None
        #: Seconds between guard reads: half the fastest possible wrap, within [0.5 s, 60 s].
        self.guard_seconds = (
            min(GUARD_MAX_SECONDS, max(GUARD_MIN_SECONDS, self.max_range_uj / 1e6 / WATTS_CEILING / 2))
            if self.max_range_uj
            else None
        )

    def _advance(self) -> float:
        try:
            raw = _read_int(self._energy)
        except (OSError, ValueError) as error:
            raise SourceError(f"{self.device}: RAPL counter {self._energy} unreadable ({error})") from None
        with self._lock:
            delta = raw - self._last_uj
            self._last_uj = raw
            if delta < 0:
                if not self.max_range_uj:
                    raise SourceError(
                        f"{self.device}: RAPL counter went back and {self.zone}/max_energy_range_uj is "
                        "unreadable, so a wrap cannot be told from a reset; this window is invalid"
                    )
                delta += self.max_range_uj
            self._total_uj += delta
            return self._total_uj / 1e6

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._advance()
            except SourceError as error:
                with self._lock:
                    self._error = self._error or error

    def start(self) -> None:
        """Start the wrap guard (a thread that reads the counter every :attr:`guard_seconds`)."""
        if self._guard is None and self.guard_seconds is not None:
            self._stop.clear()
            self._guard = threading.Thread(
                target=self._run, args=(self.guard_seconds,), name=f"pytest-energy rapl {self.device}", daemon=True
            )
            self._guard.start()

    def read(self) -> float:
        """Joules since the channel opened; raises :class:`SourceError` for a failed read since the last."""
        joules = self._advance()
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error
        return joules

    def max_watts(self) -> float:
        """:data:`WATTS_CEILING`: no package or DRAM domain draws more."""
        return WATTS_CEILING

    def uncertainty(self, joules: float, seconds: float) -> float:
        """One update period of the mean power and one energy unit at each edge of the window.

        This is the reading's resolution only: RAPL is a measurement on Haswell and newer, a model
        on older CPUs, and DRAM is modelled on some client platforms.
        """
        watts = joules / seconds if seconds > 0 else 0.0
        return 2 * (UPDATE_SECONDS * abs(watts) + RESOLUTION_JOULES)

    def identity(self) -> dict[str, object]:
        """The RAPL zone, its domain name and the counter's range."""
        return {
            "device": self.device,
            "rapl_zone": self.zone.name,
            "rapl_domain": self.domain,
            "max_energy_range_uj": self.max_range_uj,
            "method": self.method,
        }

    def close(self) -> None:
        """Stop the wrap guard."""
        if self._guard is not None:
            self._stop.set()
            self._guard.join(timeout=1.0)
            self._guard = None


def rapl_fix(root: str) -> list[str]:
    """The commands that make RAPL counters readable without root (since CVE-2020-8694, "PLATYPUS",
    the kernel creates ``energy_uj`` with mode 0400; no sysctl changes that)."""
    return [
        f"until the next reboot:  sudo chmod a+r {root}/intel-rapl:*/energy_uj",
        "at every boot, a udev rule (sysfs attributes ignore udev's MODE, so it runs chmod):",
        "  echo 'ACTION==\"add\", SUBSYSTEM==\"powercap\", KERNEL==\"intel-rapl:*\", "
        "RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"' | sudo tee /etc/udev/rules.d/90-rapl.rules",
        "  sudo udevadm control --reload-rules && sudo udevadm trigger --action=add --subsystem-match=powercap",
        "on a shared machine give one group access instead of everyone: chgrp GROUP and chmod g+r in place of "
        "chmod a+r (the counters are the side channel the CVE closed)",
        "no sysctl controls this; `setcap cap_dac_read_search+ep` on the Python binary works too but lets every "
        "Python program read every file: don't",
    ]


class RaplSource(Source):
    """CPU packages and DRAM through RAPL: asked after NVML and before the model, judged in the "rapl"
    device-kind group (a measured host, never mixed with a modelled one)."""

    name = "rapl"
    kinds = ("cpu", "ram")
    methods = ("counter",)
    devices = r"(cpu|dram):package-\d+"
    requirement = "rapl"
    rank = 20

    def open(self, request: Request) -> Detection:
        """Every domain under the request's powercap (:func:`open_channels`)."""
        return open_channels(request.powercap)

    def how(self, channel: Channel) -> str:
        identity = channel.identity()
        return f"RAPL {identity.get('rapl_domain')} counter ({identity.get('rapl_zone')}/energy_uj)"

    def section(self, channels: list[Channel], request: Request, notes: list[str], spec: str) -> Section:
        """Whether the counters are readable: readable, root-only (with the commands that fix it),
        absent (no powercap zone) or unreadable; answers ``--require rapl``."""
        root = request.powercap
        base = Path(root)
        zones = sorted(p.name for p in base.glob("intel-rapl:*")) if base.is_dir() else []
        readable = [c.device for c in channels if c.source == self.name]
        denied = sorted(str(base / z / "energy_uj") for z in zones
                        if (base / z / "energy_uj").exists() and not os.access(base / z / "energy_uj", os.R_OK))
        fix: list[str] = []
        if readable:
            state, reason = "readable", None
        elif not zones:
            state = "absent"
            where = "no powercap folder" if not base.is_dir() else "no intel-rapl zone in it"
            reason = (f"no RAPL on this machine ({root}: {where}); VMs and most CI runners have none, "
                      "so CPU and RAM are modelled")
            fix = ["on bare metal with an Intel or AMD CPU, load the kernel's driver: sudo modprobe intel_rapl_msr",
                   "most VMs and hosted CI runners do not expose RAPL: CPU energy stays modelled there"]
        elif denied:
            state = "root-only"
            reason = (f"the RAPL counters are readable by root only ({denied[0]}; since CVE-2020-8694), "
                      "so CPU and RAM are modelled")
            fix = rapl_fix(root)
        else:
            state = "unreadable"
            reason = "; ".join(n for n in notes if "RAPL" in n) or f"RAPL zones under {root} gave no package counter"
        document = {"root": root, "state": state, "zones": zones, "readable": readable, "reason": reason, "fix": fix}
        lines = [f"RAPL ({root}): {state}" + (f": {', '.join(readable)}" if readable else f": {reason}"),
                 *(f"  {line}" for line in fix)]
        hint = " (`pytest-energy doctor` lists the commands that fix it)" if state == "root-only" else ""
        return Section("rapl", "RAPL", reason, document, lines, requirement=self.requirement,
                       unmet=None if readable else f"--require rapl: no RAPL counter is readable: {reason}{hint}")


#: The source :mod:`pytest_energy.measure.sources` registers.
SOURCE = RaplSource()
