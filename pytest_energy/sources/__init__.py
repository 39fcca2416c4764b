"""Where joules come from: NVML (GPUs), RAPL (CPU package and DRAM), or a labelled model.

:func:`detect` picks, per device kind, the best source this machine offers: a hardware counter
first, power sampling next, and a model of CPU time and rated power where nothing else exists.
"""

from __future__ import annotations

from .base import Channel, Detection, SourceError, SourceUnavailable

__all__ = ["Channel", "Detection", "SourceError", "SourceUnavailable", "detect", "found_devices", "parse_devices"]

KINDS = ("gpu", "cpu", "ram")


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


def detect(spec: str = "auto", *, rapl_root: str = "/sys/class/powercap") -> Detection:
    """Open channels for the devices named by ``spec`` (see :func:`parse_devices`).

    A kind asked for by name that cannot be measured at all is a note, never an exception: the
    CPU and RAM always fall back to the modelled source, a GPU only if one is present.
    """
    from . import modelled, nvml, rapl

    wanted = parse_devices(spec)
    found = Detection()
    if "gpu" in wanted:
        try:
            gpus = nvml.open_channels(wanted["gpu"])
        except SourceUnavailable as error:
            if spec.strip().lower() not in ("", "auto", "all"):
                found.notes.append(f"GPU energy not measured: {error}")
        else:
            found.channels += gpus.channels
            found.notes += gpus.notes
    if "cpu" in wanted or "ram" in wanted:
        counted = rapl.open_channels(rapl_root)
        found.notes += counted.notes
        rapl_kinds = {c.kind for c in counted.channels}
        for channel in counted.channels:
            if (channel.kind == "cpu" and "cpu" in wanted) or (channel.kind == "dram" and "ram" in wanted):
                found.channels.append(channel)
            else:
                channel.close()
        if "cpu" in wanted and "cpu" not in rapl_kinds:
            found.channels.append(modelled.CpuChannel())
        if "ram" in wanted and "dram" not in rapl_kinds:
            found.channels.append(modelled.RamChannel())
    return found


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
            name = "ram" if channel.kind in ("dram", "ram") else "cpu"
            names.setdefault(name, f"{name} ({channel.method})")
        channel.close()
    return ", ".join(names.values()) or "none"
