"""The hardware and software identity that a baseline is valid for.

Only hardware and measurement methods go into the id (the baselines folder name): a driver or torch
upgrade is recorded, and shows in reports, but does not orphan every baseline. Versions are read
without importing the heavy packages (``torch/version.py`` is read as text).
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
from typing import Any, Iterable

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
    gpus = [dict(c.identity(), device=c.device) for c in channels if c.kind == "gpu"]
    methods = sorted({f"{c.kind}:{c.method}" for c in channels})
    cpu = cpu_model()
    logical_cpus = os.cpu_count() or 1
    gpu_names = [str(g.get("name", "unknown GPU")) for g in gpus]
    hardware_key = "|".join([*sorted(gpu_names), cpu, str(logical_cpus), *methods])
    digest = hashlib.sha256(hardware_key.encode()).hexdigest()[:8]
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
    }


def git_commit(rootdir: Path) -> str | None:
    """The commit checked out at ``rootdir``, with "-dirty" when the tree has changes; None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=rootdir, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=rootdir, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
