"""Where joules come from: NVML (GPUs), RAPL (CPU package and DRAM), a labelled model, or a source of yours.

Sources are registered by name in :data:`SOURCES`, as tasks and metrics are: a project's from a conftest
with :func:`register_source`, an installed package's through the entry point group
``pytest_energy.sources`` (so the ``pytest-energy`` commands know them too), and the bundled ones
(:data:`BUNDLED`); the last two when the sources are first walked, so checking ``--energy-devices``
imports no source module. :func:`detect` asks them most trusted first (their
:attr:`~pytest_energy.measure.sources.base.Source.rank`): for each device kind it keeps the channels of
the first source that measures it, so a hardware counter comes first, power sampling next, and a model of
CPU time and rated power where nothing else exists. A new source is one module: a
:class:`~pytest_energy.measure.sources.base.Source` subclass (its channels, and what the doctor, the device
kinds and calibration need to know of it) and the call that registers it (docs/sources.md).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from ...core.config import SettingError, named
from ...core.registry import Registry
from .base import DEVICE_KIND, Channel, Detection, Request, Section, Source, SourceError, SourceUnavailable

__all__ = ["ENTRY_POINT_GROUP", "SOURCES", "Channel", "Detection", "Request", "Section", "Source", "SourceError",
           "SourceUnavailable", "check_devices", "cpu_tdp", "detect", "found_devices", "group_of", "kind_groups",
           "parse_devices", "register_source", "registered_sources", "source_for", "source_of"]

KINDS = ("gpu", "cpu", "ram")
_KIND_LABEL = {"gpu": "GPU", "cpu": "CPU", "ram": "RAM"}
METHODS = ("counter", "sampled", "modelled")
#: The entry point group an installed package names its sources in: ``name = "module:SOURCE"`` (a
#: :class:`Source` object, or a subclass, made with no arguments).
ENTRY_POINT_GROUP = "pytest_energy.sources"
#: The modules of the bundled sources, each with its ``SOURCE``.
BUNDLED = ("nvml", "rapl", "modelled")

#: Every registered source by name (the bundled ones and the entry points' once :func:`registered_sources`
#: has read them).
SOURCES: Registry[Source] = Registry("source", "register_source", code=type,
                                     hint=" (a conftest can add one with pytest_energy.measure.sources.register_source)")


def register_source(source: Source, *, replace: bool = False) -> Source:
    """Make ``source`` measure from now on; returns it. It must have a name, kinds among gpu, cpu and ram,
    and methods among counter, sampled and modelled (ValueError, one line). A second source of the same
    name is refused unless ``replace=True``; the same class registered again (a conftest imported anew)
    replaces the first."""
    owner = f"register_source({type(source).__name__})"
    if not source.name or not source.kinds or not source.methods:
        raise ValueError(f"{owner}: a source needs a name, kinds and methods")
    unknown = [k for k in source.kinds if k not in KINDS] + [m for m in source.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"{owner}: unknown kind or method {unknown[0]!r}; kinds are {', '.join(KINDS)}, "
                         f"methods {', '.join(METHODS)}")
    return SOURCES.register(source, replace=replace)


_loaded_notes: list[str] | None = None  # None: the bundled sources and the entry points are not read yet


def _load() -> list[str]:
    """Register the bundled sources and those of the ``pytest_energy.sources`` entry points, once (a source
    registered by name already keeps its place); one note per entry point that could not be loaded (the
    others measure on)."""
    global _loaded_notes
    if _loaded_notes is None:
        _loaded_notes = []
        for module in BUNDLED:
            source = importlib.import_module(f".{module}", __name__).SOURCE
            if source.name not in SOURCES:
                register_source(source)
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = point.load()
                register_source(loaded() if isinstance(loaded, type) else loaded)
            except Exception as error:  # a broken package must not stop measuring: said once, left out
                _loaded_notes.append(f"energy source {point.name!r} ({point.value}) not loaded: "
                                     f"{type(error).__name__}: {error}")
    return _loaded_notes


def registered_sources() -> list[Source]:
    """Every source (the bundled ones and the entry points' read on first call), most trusted first."""
    _load()
    return sorted(SOURCES.values(), key=lambda source: source.rank)


def source_for(device: str, kind: str, method: str) -> Source | None:
    """The most trusted source whose channels have this device name, kind and method (what a stored
    component keeps); where none names its devices so, the most trusted of this kind and method."""
    ranked = registered_sources()
    return (next((source for source in ranked if source.owns(device, kind, method)), None)
            or next((source for source in ranked if source.owns(device, kind, method, by_name=False)), None))


def source_of(channel: Channel) -> Source:
    """The source that opened ``channel`` (a plain :class:`Source`'s defaults where none is registered)."""
    return SOURCES.get(channel.source) or source_for(channel.device, channel.kind, channel.method) or Source()


def group_of(device: str, kind: str, method: str) -> str:
    """The device-kind group of a device from its name, kind ("gpu", "cpu", "dram", "ram") and method: its
    source's; a device no registered source measures is grouped by its method alone."""
    source = source_for(device, kind, method)
    return source.device_group if source is not None else method


def kind_groups() -> list[str]:
    """The device-kind groups of the registered sources, most trusted first."""
    return list(dict.fromkeys(source.device_group for source in registered_sources()))


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
    """Open channels for the devices named by ``spec`` (see :func:`parse_devices`), asking the
    registered sources most trusted first; ``cpu_tdp`` is the (watts, who set it) a modelled CPU is
    estimated from (:func:`cpu_tdp`).

    Each kind is measured by the first source that opens a channel for it; a later source is asked
    only for the kinds still missing, and channels of kinds not wanted are closed. A kind asked for by
    name that cannot be measured at all is a note, never an exception: the CPU and RAM always fall back
    to the modelled source, a GPU only if one is present.
    """
    wanted = parse_devices(spec)
    named_kinds = spec.strip().lower() not in ("", "auto", "all")
    found = Detection(notes=list(_load()))
    measured: set[str] = set()
    unavailable: dict[str, list[str]] = {}
    for source in registered_sources():
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
                channel.source = source.name
                found.channels.append(channel)
                measured.add(kind)
            else:
                channel.close()
    if named_kinds:
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


def check_devices(settings: Any) -> None:
    """Where measurement is on, ``--energy-devices`` names known devices; else :class:`SettingError`, one
    line listing the devices found on this machine. Called beside :func:`pytest_energy.core.config.check`."""
    if not settings.enabled:
        return
    try:
        wanted = parse_devices(settings.devices)
    except ValueError as error:
        reason = str(error)
    else:
        if wanted:
            return
        reason = "it names no device: expected auto, gpu, gpu:N, gpu:UUID, cpu or ram"
    raise SettingError(f"pytest-energy: {named(settings, 'devices')} has {settings.devices!r} ({reason}); "
                       f"found on this machine: {found_devices(settings.powercap)}")
