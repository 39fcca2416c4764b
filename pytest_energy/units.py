"""Energy quantities as people write them ("0.2 Wh", "15 kJ") and as reports show them."""

from __future__ import annotations

import math
import re

JOULES_PER = {"j": 1.0, "kj": 1e3, "wh": 3600.0, "kwh": 3.6e6}
# Milli and mega differ only by case, so those units are matched exactly before the lower-case table.
_CASE_SENSITIVE = {"mWh": 3.6, "MWh": 3.6e9, "mJ": 1e-3, "MJ": 1e6}
_QUANTITY = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[-+]?\.\d+)\s*([A-Za-z]*)\s*$")


class EnergyValueError(ValueError):
    """An energy that cannot be read: ``energy '<value>': <reason>``; ``reason`` says what is accepted."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"energy {value!r}: {reason}")
        self.reason = reason


def parse_energy(value: float | int | str) -> float:
    """Joules from a number (joules) or a string with a unit: J, kJ, MJ, mJ, Wh, mWh, kWh.

    Raises :class:`EnergyValueError` (a ValueError) with a message saying what is accepted.
    """
    if isinstance(value, bool):
        raise EnergyValueError(value, "expected a number of joules or a string like '0.2 Wh'")
    if isinstance(value, (int, float)):
        joules = float(value)
    else:
        match = _QUANTITY.match(str(value))
        if not match:
            raise EnergyValueError(value, "expected a number and a unit such as '10 J' or '0.2 Wh'")
        number, unit = float(match.group(1)), match.group(2) or "J"
        factor = _CASE_SENSITIVE.get(unit, JOULES_PER.get(unit.lower()))
        if factor is None:
            raise EnergyValueError(value, f"unknown unit {unit!r}; use J, kJ, mJ, Wh, mWh or kWh")
        joules = number * factor
    if not math.isfinite(joules) or joules <= 0:
        raise EnergyValueError(value, "must be a positive amount")
    return joules


def format_energy(joules: float) -> str:
    """A short human form: mJ below 1 J, J below 10 kJ, then Wh / kWh."""
    if not math.isfinite(joules):
        return "n/a"
    size = abs(joules)
    if size < 1:
        return f"{joules * 1e3:.3g} mJ"
    if size < 1e4:
        return f"{joules:.4g} J"
    if size < 3.6e6:
        return f"{joules / 3600:.4g} Wh"
    return f"{joules / 3.6e6:.4g} kWh"
