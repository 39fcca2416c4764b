"""Fake energy hardware, for testing budgets and gates on a machine without a GPU or readable RAPL.

As ``pytest-httpx`` or ``responses`` fake the network, these fake the two hardware boundaries the
plugin reads: NVIDIA's NVML library (a fake ``pynvml`` module whose GPUs draw the power you give them)
and the kernel's ``/sys/class/powercap`` RAPL tree (plain files in a temporary folder). The plugin's own
tests and bench use them too, with two helpers they share, imported by module path:
``pytest_energy.testing.records`` (synthetic records, judgements and run facts) and
``pytest_energy.testing.postgres`` (a throwaway PostgreSQL cluster). Nothing here is imported when the
plugin loads.

::

    from pytest_energy.testing import FakeGpu, FakeNvmlModule, install_fake_nvml, make_powercap

See docs/sources.md ("Testing without the hardware") for a ``conftest.py`` that runs a whole
``pytest --energy`` session on a fake GPU.

May import: core, judge (records.py alone builds records and judgements; the fakes import nothing of the package).
"""

from __future__ import annotations

from .nvml import FakeClock, FakeGpu, FakeNvmlModule, install_fake_nvml
from .powercap import FakePowercap, make_powercap, run_unprivileged

__all__ = [
    "FakeClock",
    "FakeGpu",
    "FakeNvmlModule",
    "FakePowercap",
    "install_fake_nvml",
    "make_powercap",
    "run_unprivileged",
]
