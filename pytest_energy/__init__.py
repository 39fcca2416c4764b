"""pytest-energy: measure, budget and gate the energy and CO2 of test code and ML model cases.

Importing this package is cheap: the case classes are loaded on first use, and nothing here imports
torch, transformers or codecarbon. The light core (budget, record, units) is imported here on purpose:
its classes must keep one identity for the whole process, also when pytester runs sessions in-process
and drops the modules each run imported (a budget failure is caught by its class).
"""

from __future__ import annotations

from typing import Any

from .core.budget import EnergyBudget, EnergyBudgetExceeded
from .core.record import SCHEMA_VERSION, Record
from .core.units import format_energy, parse_energy
from .core.version import __version__

_CASES = ("Case", "InferenceCase", "FineTuneCase", "PruningSweep")

__all__ = ["EnergyBudget", "EnergyBudgetExceeded", "Record", "SCHEMA_VERSION", "format_energy",
           "parse_energy", "__version__", *_CASES]


def __getattr__(name: str) -> Any:
    if name in _CASES:
        from . import cases

        return getattr(cases, name)
    raise AttributeError(f"module 'pytest_energy' has no attribute {name!r}")
