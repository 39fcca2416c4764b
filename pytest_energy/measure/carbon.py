"""The carbon intensity a session assumes, entirely offline (grams of CO2eq are kWh x intensity x PUE:
:meth:`pytest_energy.core.record.Carbon.grams`).

The intensity comes from CodeCarbon's bundled per-country data (``global_energy_mix.json``), read as a
file: CodeCarbon itself is never imported, and its online tracker (which silently assumes Canada with
no network) is never used. An explicit ``--energy-carbon-intensity`` wins over the country.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..core.record import Carbon

#: CodeCarbon's world average (IEA 2019), used when no country or intensity is given.
WORLD_AVERAGE_G_PER_KWH = 475.0


class CarbonError(ValueError):
    """The carbon settings cannot be used; the message is one line saying what to do."""


def _codecarbon_data_dir() -> Path | None:
    spec = importlib.util.find_spec("codecarbon")  # locates the package without importing it
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "data" / "private_infra"
    return path if path.is_dir() else None


@lru_cache(maxsize=1)
def _energy_mix() -> tuple[dict[str, Any], str]:
    """CodeCarbon's per-country energy mix and a label naming it, or ({}, reason) where absent."""
    folder = _codecarbon_data_dir()
    if folder is None:
        return {}, "codecarbon is not installed"
    path = folder / "global_energy_mix.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")), f"codecarbon {path.name}"
    except (OSError, ValueError) as error:
        return {}, f"cannot read {path}: {error}"


def resolve_carbon(
    country_iso_code: str | None, explicit_intensity: float | None, pue: float
) -> Carbon:
    """The carbon assumptions of a session: explicit value > country's data > world average."""
    if explicit_intensity is not None:
        return Carbon(explicit_intensity, "explicit (--energy-carbon-intensity)", pue, country_iso_code)
    if country_iso_code is None:
        return Carbon(WORLD_AVERAGE_G_PER_KWH, "world average (CodeCarbon; no --energy-country given)", pue)
    mix, label = _energy_mix()
    entry = mix.get(country_iso_code.upper())
    if entry is None or entry.get("carbon_intensity") is None:
        if not mix:
            raise CarbonError(
                f"pytest-energy: no carbon data for {country_iso_code} ({label}); "
                "install codecarbon or pass --energy-carbon-intensity G_PER_KWH"
            )
        raise CarbonError(
            f"pytest-energy: country {country_iso_code!r} is not in {label}; "
            "use a 3-letter ISO code such as FRA or USA, or pass --energy-carbon-intensity G_PER_KWH"
        )
    year = entry.get("year")
    source = f"{label}: {entry.get('country_name', country_iso_code)}" + (f" ({year})" if year else "")
    return Carbon(float(entry["carbon_intensity"]), source, pue, country_iso_code.upper())
