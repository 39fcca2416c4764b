"""The hardware and software identity of a runner, and the device kinds its energy is judged by.

The fingerprint ``id`` names this runner in verdicts, reports and history: hardware and measurement
methods only, so a driver or torch upgrade is recorded (and shown) without making a new runner.
Baselines are not keyed by it: work and quality travel between runners, and energy is judged per
*device kind* (:func:`device_kinds`), so two H100 runners on different host CPUs share their GPU
baseline. Versions are read without importing the heavy packages (``torch/version.py`` as text).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..core.config import DEVICE_KIND_FIELDS
from .sources import group_of, kind_groups, source_of
from .sources.base import Channel
from .sources.modelled import cpu_model


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_cuda_version() -> str | None:
    """CUDA version torch was built with, from ``torch/version.py`` without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^cuda\s*(?::\s*[^=]+)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return match.group(1) if match else None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _slug(text: str) -> str:
    text = re.sub(r"\(r\)|\(tm\)|cpu @.*|processor", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40]


def fingerprint(channels: Iterable[Channel]) -> dict[str, Any]:
    """This machine's identity; ``["id"]`` is stable across runs on the same kind of hardware."""
    channels = list(channels)
    # Sorted by what the GPU is, not by CUDA_VISIBLE_DEVICES order: reordering devices is the same runner.
    gpus = sorted((dict(c.identity(), device=c.device) for c in channels if c.kind == "gpu"),
                  key=lambda g: (str(g.get("name", "")), str(g.get("uuid", "")), str(g.get("device", ""))))
    methods = sorted({f"{c.kind}:{c.method}" for c in channels})
    cpu = cpu_model()
    logical_cpus = os.cpu_count() or 1
    gpu_names = [str(g.get("name", "unknown GPU")) for g in gpus]
    hardware_key = "|".join([*sorted(gpu_names), cpu, str(logical_cpus), *methods])
    digest = hashlib.sha256(hardware_key.encode()).hexdigest()[:8]
    # Facts a source adds (a modelled CPU's estimate scales with the TDP it assumes: said with its figures).
    facts: dict[str, Any] = {}
    for channel in channels:
        facts.update(source_of(channel).fingerprint_facts(channel))
    if gpu_names:
        label = f"{_slug(gpu_names[0])}-x{len(gpu_names)}"
    else:
        label = f"{_slug(cpu)}-{logical_cpus}c"
    return {
        "id": f"{label}-{digest}",
        "gpus": gpus,
        "cpu_model": cpu,
        "logical_cpus": logical_cpus,
        "memory_gib": _memory_gib(),
        "methods": methods,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "torch_cuda": _torch_cuda_version(),
        "transformers": _version("transformers"),
        "pytest_energy": _version("pytest-energy"),
        "executable": sys.executable,
        **facts,
    }


DEFAULT_KIND_FIELDS = ("product", "count")


@dataclass(frozen=True)
class DeviceKind:
    """The devices of one group a record spans, and the id of the kind a baseline must share.

    Measured devices fall in groups, each judged on its own: each source names the group of its devices
    (:attr:`pytest_energy.measure.sources.base.Source.group`: "gpu" for NVML's, "rapl", "modelled"), so a
    GPU's energy never mixes with the host CPU's, and a modelled estimate never with a measurement.
    """

    id: str  # e.g. "gpu: NVIDIA H100 80GB HBM3 x1", "modelled: AMD EPYC x2"
    group: str  # its source's group
    devices: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict, compare=False)  # power limit, driver, clocks...


def _distinct(values: Iterable[Any]) -> str:
    return " + ".join(sorted({f"{v:g}" if isinstance(v, float) else str(v) for v in values if v not in (None, "")}))


def _gpu_facts(fingerprint: dict[str, Any], devices: Sequence[str]) -> dict[str, Any]:
    """What NVML says of these GPUs that changes their energy: power limit, driver, clocks."""
    by_device = {str(g.get("device")): g for g in fingerprint.get("gpus") or []}
    gpus = [by_device.get(d, {}) for d in devices]
    facts = {
        "name": _distinct(g.get("name", "unknown GPU") for g in gpus),
        "power_limit_watts": _distinct(g.get("power_limit_watts") for g in gpus),
        "driver_version": _distinct(g.get("driver_version") for g in gpus),
        "sm_clock_max_mhz": _distinct(g.get("sm_clock_max_mhz") for g in gpus),
        "applications_sm_clock_mhz": _distinct(g.get("applications_sm_clock_mhz") for g in gpus),
    }
    return {k: v for k, v in facts.items() if v}


def device_kinds(components: Iterable[Any], fingerprint: dict[str, Any],
                 fields: Sequence[str] = DEFAULT_KIND_FIELDS) -> list[DeviceKind]:
    """The device kinds of these components (objects with ``device``, ``kind``, ``method``), one per
    group, from the runner's ``fingerprint`` (after the ``pytest_energy_update_fingerprint`` hook, so a
    conftest can join or split kinds by changing ``cpu_model`` or a GPU's ``name``).

    ``fields`` (``--energy-device-kind-fields``) choose what makes a kind; unknown ones are refused
    where the option is read. A field a group has no value for (a CPU's power limit) is left out.
    """
    unknown = [f for f in fields if f not in DEVICE_KIND_FIELDS]
    if unknown:
        raise ValueError(f"unknown device kind field {unknown[0]!r}; known: {', '.join(DEVICE_KIND_FIELDS)}")
    grouped: dict[str, list[Any]] = {}
    for component in components:
        grouped.setdefault(group_of(component.device, component.kind, component.method), []).append(component)
    cpu = str(fingerprint.get("cpu_model") or "unknown CPU")
    kinds = []
    for group in sorted(grouped, key=[*kind_groups(), *sorted(grouped)].index):  # the most trusted source's first
        devices = tuple(sorted(c.device for c in grouped[group]))
        # GPUs are named by their own product; other devices by the host's CPU.
        gpus = all(c.kind == "gpu" for c in grouped[group])
        facts = _gpu_facts(fingerprint, devices) if gpus else {"cpu_model": cpu}
        facts["logical_cpus"] = fingerprint.get("logical_cpus")
        values = {
            "product": facts.get("name", "") if gpus else cpu,
            "count": f"x{len(devices)}",
            "power_limit": f"{facts['power_limit_watts']} W" if facts.get("power_limit_watts") else "",
            "driver": f"driver {facts['driver_version']}" if facts.get("driver_version") else "",
            "clocks": (f"{facts.get('applications_sm_clock_mhz') or facts.get('sm_clock_max_mhz')} MHz"
                       if facts.get("applications_sm_clock_mhz") or facts.get("sm_clock_max_mhz") else ""),
            "host_cpu": f"on {cpu}" if gpus else "",
            "logical_cpus": f"{facts['logical_cpus']} CPUs" if facts.get("logical_cpus") else "",
        }
        parts = [values[name] for name in fields if values[name]]
        kinds.append(DeviceKind(f"{group}: {' '.join(parts) or 'any'}", group, devices,
                                {k: v for k, v in facts.items() if v is not None}))
    return kinds


def git_state(rootdir: Path) -> tuple[str | None, str | None]:
    """The commit checked out at ``rootdir`` (with "-dirty" when a tracked file has changes) and its
    branch (None on a detached head, as CI checks out a pull request's merge commit); no commit
    before the first one, and neither outside git. One ``git status`` process, taking no optional lock (a
    test run must not hold the index lock of the repository it runs in)."""
    try:
        status = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=rootdir, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    if status.returncode != 0:
        return None, None
    commit = branch = None
    dirty = False
    for line in status.stdout.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split(" ", 2)[2].strip()
        elif line.startswith("# branch.head "):
            branch = line.split(" ", 2)[2].strip()
        elif line and not line.startswith("#"):  # a changed tracked file (untracked ones are not listed)
            dirty = True
    commit = None if commit in (None, "", "(initial)") else commit + ("-dirty" if dirty else "")
    return commit, None if branch in (None, "", "(detached)") else branch


def git_commit(rootdir: Path) -> str | None:
    """The commit checked out at ``rootdir``, with "-dirty" when the tree has changes; None outside git."""
    return git_state(rootdir)[0]


def git_branch(rootdir: Path) -> str | None:
    """The branch checked out at ``rootdir``; None outside git or on a detached head (as CI checks out
    a pull request's merge commit)."""
    return git_state(rootdir)[1]
