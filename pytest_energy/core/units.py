"""Energy quantities as people write them ("0.2 Wh", "15 kJ") and as reports show them: the one home of
the joules-per-Wh constants, the number and percentage formats every report, verdict and CLI line uses."""

from __future__ import annotations

import math
import re
from typing import Any

JOULES_PER_WH = 3600.0
JOULES_PER_KWH = 3.6e6
JOULES_PER = {"j": 1.0, "kj": 1e3, "wh": JOULES_PER_WH, "kwh": JOULES_PER_KWH}
# Milli and mega differ only by case, so those units are matched exactly before the lower-case table.
_CASE_SENSITIVE = {"mWh": JOULES_PER_WH / 1e3, "MWh": JOULES_PER_KWH * 1e3, "mJ": 1e-3, "MJ": 1e6}
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
    if size < JOULES_PER_KWH:
        return f"{joules / JOULES_PER_WH:.4g} Wh"
    return f"{joules / JOULES_PER_KWH:.4g} kWh"


def finite_number(value: Any) -> float | None:
    """``value`` as a float where it is a finite number (not a bool), else None: what a report can show."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


_SPECS = {digits: f".{digits}g" for digits in range(1, 10)}


def fmt(value: float | None, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; whole numbers from ``10**digits`` up to 1e9; "n/a" for
    None, NaN and infinities."""
    if value is None or value != value or value in (math.inf, -math.inf):
        return "n/a"
    if 10 ** digits <= abs(value) < 1e9:
        return f"{value:,.0f}"
    return format(value, _SPECS[digits])


def percent(fraction: float) -> str:
    """A fraction as a percentage: 0.05 -> "5 %" ("n/a" where not finite)."""
    return f"{fraction * 100:.3g} %" if math.isfinite(fraction) else "n/a"


def percent_change(ratio: float | None, suffix: str = " %") -> str:
    """A ratio as a signed percentage change: 1.104 -> "+10.4 %" ("n/a" for None or not finite); an
    interval's bounds drop the ``suffix``: "[+1.2, +9.8]"."""
    if ratio is None or not math.isfinite(ratio):
        return "n/a"
    return f"{(ratio - 1) * 100:+.1f}{suffix}"
