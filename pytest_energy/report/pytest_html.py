"""Energy columns in pytest-html's report (registered by the plugin only where pytest-html is installed).

The energy of a test reaches pytest-html through ``report.user_properties``: the ``energy_*``
properties of :func:`pytest_energy.report.exports.junit_properties`, which the plugin adds to the
item before its call report is made. A test without them gets empty cells, so columns stay aligned.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from ..core.units import fmt

COLUMNS = (("energy", "Net energy (J per unit)"), ("co2", "CO2 (g)"))


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def energy_cells(properties: list[tuple[str, Any]]) -> tuple[str, str]:
    """(energy text, CO2 text) from a report's user properties; one part per energy record."""
    groups: list[dict[str, str]] = []
    for name, value in properties:
        if name == "energy_record":
            groups.append({"record": str(value)})
        elif isinstance(name, str) and name.startswith("energy_") and groups:
            groups[-1][name[len("energy_"):]] = str(value)
    parts = []
    for group in groups:
        text = f"{fmt(_float(group.get('joules_per_iteration', 'nan')))} J/{group.get('per', 'iteration')}"
        if "wh_per_1000_inferences" in group:
            text += f" ({fmt(_float(group['wh_per_1000_inferences']))} Wh / 1,000 inferences, gross)"
        label = group["record"].rsplit("::", 1)[-1] if len(groups) > 1 else ""
        parts.append(f"{label}: {text}" if label else text)
    co2 = math.fsum(_float(g.get("co2_grams", "nan")) for g in groups)
    return "; ".join(parts), (fmt(co2) if groups else "")


class PytestHtmlHooks:
    """pytest-html hooks adding an energy and a CO2 column to its results table."""

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        for key, title in COLUMNS:
            cells.append(f'<th class="sortable" data-column-type="{key}">{escape(title)}</th>')

    def pytest_html_results_table_row(self, report: Any, cells: list[str]) -> None:
        energy, co2 = energy_cells(list(getattr(report, "user_properties", []) or []))
        cells.append(f'<td class="col-energy">{escape(energy)}</td>')
        cells.append(f'<td class="col-co2">{escape(co2)}</td>')
