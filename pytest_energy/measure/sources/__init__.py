"""Where joules come from: NVML (GPUs), RAPL (CPU package and DRAM), or a labelled model.

:func:`detect` walks :data:`SOURCES`, the registry of sources in order of preference: for each device
kind it keeps the channels of the first source that measures it, so a hardware counter comes first,
power sampling next, and a model of CPU time and rated power where nothing else exists. A new source
is one module with an ``open_source(request) -> Detection`` function (a sampled one subclasses
:class:`~pytest_energy.measure.sources.sampled.SampledChannel`) and one row here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .base import Channel, Detection, Request, SourceError, SourceUnavailable

__all__ = ["SOURCES", "Channel", "Detection", "Request", "Source", "SourceError", "SourceUnavailable", "cpu_tdp",
           "detect", "found_devices", "parse_devices"]

KINDS = ("gpu", "cpu", "ram")
#: The ``--energy-devices`` kind each channel kind is measured for (a RAPL ``dram`` domain is the RAM).
DEVICE_KIND = {"gpu": "gpu", "cpu": "cpu", "dram": "ram", "ram": "ram"}
_KIND_LABEL = {"gpu": "GPU", "cpu": "CPU", "ram": "RAM"}


@dataclass(frozen=True)
class Source:
    """One energy source: the device kinds it can measure and the module that opens its channels.

    The module is imported only when :func:`detect` asks it for channels (never when the plugin
    loads); its ``open_source(request)`` returns a :class:`Detection` and raises
    :class:`SourceUnavailable` when the source cannot be used on this machine at all.
    """

    name: str
    kinds: tuple[str, ...]
    module: str  # relative to this package

    def open(self, request: Request) -> Detection:
        """Open this source's channels for the kinds in ``request``."""
        return importlib.import_module(f".{self.module}", __name__).open_source(request)


#: Every source :func:`detect` knows, most trusted first within each kind.
SOURCES: tuple[Source, ...] = (
    Source("nvml", ("gpu",), "nvml"),
    Source("rapl", ("cpu", "ram"), "rapl"),
    Source("modelled", ("cpu", "ram"), "modelled"),
)


def parse_devices(spec: str) -> dict[str, list[str] | None]:
    """Parse ``--energy-devices``: "auto", or a comma list of kinds and GPUs ("gpu:0,gpu:1,cpu").

    Returns kind -> None (all of that kind) or a list of GPU selectors; kinds absent are not measured.
    """
    spec = spec.strip().lower()
    if spec in ("", "auto", "all"):
        return {kind: None for kind in KINDS}
    wanted: dict[str, list[str] | None] = {}
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        kind, _, selector = item.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown device {item!r}: expected auto, gpu, gpu:N, gpu:UUID, cpu or ram")
        if selector:
            if kind != "gpu":
                raise ValueError(f"device {item!r}: only GPUs take an index or UUID")
            selected = wanted.get("gpu") or []
            wanted["gpu"] = [*selected, selector]
        else:
            wanted[kind] = None
    return wanted


def detect(spec: str = "auto", *, rapl_root: str = "/sys/class/powercap",
           cpu_tdp: tuple[float, str] | None = None) -> Detection:
    """Open channels for the devices named by ``spec`` (see :func:`parse_devices`), walking :data:`SOURCES`;
    ``cpu_tdp`` is the (watts, who set it) a modelled CPU is estimated from (:func:`cpu_tdp`).

    Each kind is measured by the first source that opens a channel for it; a later source is asked
    only for the kinds still missing, and channels of kinds not wanted are closed. A kind asked for by
    name that cannot be measured at all is a note, never an exception: the CPU and RAM always fall back
    to the modelled source, a GPU only if one is present.
    """
    wanted = parse_devices(spec)
    named = spec.strip().lower() not in ("", "auto", "all")
    found = Detection()
    measured: set[str] = set()
    unavailable: dict[str, list[str]] = {}
    for source in SOURCES:
        kinds = [kind for kind in source.kinds if kind in wanted and kind not in measured]
        if not kinds:
            continue
        try:
            opened = source.open(Request({kind: wanted[kind] for kind in kinds}, rapl_root, cpu_tdp))
        except SourceUnavailable as error:
            for kind in kinds:
                unavailable.setdefault(kind, []).append(str(error))
            continue
        found.notes += opened.notes
        for channel in opened.channels:
            kind = DEVICE_KIND[channel.kind]
            if kind in kinds:
                found.channels.append(channel)
                measured.add(kind)
            else:
                channel.close()
    if named:
        found.notes += [f"{_KIND_LABEL[kind]} energy not measured: {'; '.join(errors)}"
                        for kind, errors in unavailable.items() if kind not in measured]
    return found


def cpu_tdp(settings: Any) -> tuple[float, str] | None:
    """The TDP ``--energy-cpu-tdp`` (or its ini key or variable) sets, and who set it; None where unset."""
    watts = settings.values.get("cpu_tdp")
    return None if watts is None else (float(watts), f"set by {settings.sources.get('cpu_tdp', '--energy-cpu-tdp')}")


def found_devices(rapl_root: str = "/sys/class/powercap") -> str:
    """The devices this machine offers, named as ``--energy-devices`` names them, with their method:
    "gpu:0 (NVIDIA H100 80GB HBM3, counter), cpu (counter), ram (modelled)".

    Opens the channels (NVML is initialised) and closes them again; nothing is started or measured.
    """
    try:
        found = detect("auto", rapl_root=rapl_root)
    except Exception as error:  # only for a message: a driver fault must not hide the usage error
        return f"none listed ({type(error).__name__}: {error})"
    names: dict[str, str] = {}
    for channel in found.channels:
        if channel.kind == "gpu":
            names[channel.device] = f"{channel.device} ({channel.identity().get('name', 'GPU')}, {channel.method})"
        else:
            name = DEVICE_KIND[channel.kind]
            names.setdefault(name, f"{name} ({channel.method})")
        channel.close()
    return ", ".join(names.values()) or "none"
