"""pytest-energy: measure, budget and gate the energy and CO2 of test code and ML model cases.

Importing this package is cheap: every name below is loaded on first use (pytest imports the
package to load the plugin, with ``--energy`` on or off), and nothing here imports torch,
transformers or codecarbon.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "EnergyBudget": "budget", "EnergyBudgetExceeded": "budget",
    "Record": "record", "SCHEMA_VERSION": "record",
    "format_energy": "units", "parse_energy": "units",
    "Case": "cases", "InferenceCase": "cases", "FineTuneCase": "cases", "PruningSweep": "cases",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_energy' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
