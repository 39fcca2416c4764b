"""A fake ``/sys/class/powercap`` tree in a temporary folder, laid out as the Linux class folder is.

``make_powercap(tmp_path, packages=2)`` writes ``intel-rapl`` (the control type), ``intel-rapl:N``
(``package-N``) with subzones ``intel-rapl:N:0`` (``core``) and ``intel-rapl:N:1`` (``dram``), all
listed side by side as in the class folder, and optionally ``psys`` and ``intel-rapl-mmio:0`` zones.
Counters are plain files the test rewrites with :meth:`FakePowercap.set_energy`. The plugin reads the
tree named by ``PYTEST_ENERGY_POWERCAP`` (``--energy-powercap``) instead of ``/sys/class/powercap``.

Permission denial is real: :meth:`FakePowercap.deny_energy` makes the counters unreadable, and
:func:`run_unprivileged` runs a function in a child process that has dropped root (as root, file
modes are not enforced), so the kernel itself raises ``PermissionError``.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

#: A common Intel value (2^32 units of 61 µJ).
DEFAULT_RANGE_UJ = 262_143_328_850
_NOBODY = 65534

T = TypeVar("T")


@dataclass
class FakePowercap:
    """The tree's root (pass ``str(root)`` to ``rapl.open_channels``) and helpers to drive it."""

    root: Path

    def zone(self, name: str) -> Path:
        return self.root / name

    def set_energy(self, zone: str, microjoules: int) -> None:
        """Replace a zone's ``energy_uj`` atomically: a sysfs read never sees a half-written value."""
        path = self.zone(zone) / "energy_uj"
        staged = path.with_name("energy_uj.new")
        staged.write_text(f"{microjoules}\n")
        staged.chmod(0o644)
        os.replace(staged, path)

    def deny_energy(self) -> None:
        """Make every ``energy_uj`` unreadable, as the kernel does for non-root users since CVE-2020-8694."""
        for path in self.root.glob("*/energy_uj"):
            path.chmod(0o000)


def _write_zone(root: Path, name: str, domain: str, energy_uj: int, max_range_uj: int | None) -> None:
    zone = root / name
    zone.mkdir(mode=0o755)
    (zone / "name").write_text(f"{domain}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    if max_range_uj is not None:
        (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    for path in zone.iterdir():
        path.chmod(0o644)


def make_powercap(
    base: Path,
    *,
    packages: int = 1,
    dram: bool = True,
    psys: bool = False,
    mmio: bool = False,
    energy_uj: int = 0,
    max_range_uj: int | None = DEFAULT_RANGE_UJ,
) -> FakePowercap:
    """Build the tree under ``base/powercap``; every counter starts at ``energy_uj``.

    ``max_range_uj`` None leaves ``max_energy_range_uj`` out (a wrap then cannot be recognised).
    """
    root = base / "powercap"
    root.mkdir(mode=0o755, parents=True)
    (root / "intel-rapl").mkdir(mode=0o755)  # the control type folder, not a zone
    (root / "intel-rapl" / "enabled").write_text("1\n")
    for socket in range(packages):
        _write_zone(root, f"intel-rapl:{socket}", f"package-{socket}", energy_uj, max_range_uj)
        _write_zone(root, f"intel-rapl:{socket}:0", "core", energy_uj, max_range_uj)
        if dram:
            _write_zone(root, f"intel-rapl:{socket}:1", "dram", energy_uj, max_range_uj)
    if psys:
        _write_zone(root, f"intel-rapl:{packages}", "psys", energy_uj, max_range_uj)
    if mmio:
        _write_zone(root, "intel-rapl-mmio:0", "package-0", energy_uj, max_range_uj)
    return FakePowercap(root)


def run_unprivileged(function: Callable[[], T]) -> T:
    """Run ``function`` as user ``nobody`` in a forked child when this process is root, else here.

    The files ``function`` reads must be reachable by ``nobody`` (a folder made with mode 0o755 under
    /tmp, not pytest's 0o700 ``tmp_path``). Its result comes back pickled; an exception is re-raised.
    """
    if os.geteuid() != 0:
        return function()
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12 warns about fork with threads
        pid = os.fork()
    if pid == 0:  # the child: drop root, run, send the outcome, leave without running pytest's exit code
        try:
            os.close(reader)
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
            try:
                outcome: tuple[bool, object] = (True, function())
            except BaseException as error:  # sent to the parent, which raises it
                outcome = (False, error)
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError("the unprivileged child process ended without a result")
    ok, value = pickle.loads(b"".join(chunks))
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]
