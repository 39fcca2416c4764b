"""The ``--energy-top N`` listing in pytest's terminal summary, as ``--durations=N`` lists slow tests.

One line per test, most energy first: gross and net joules of the test's call, the method (counter,
sampled, modelled), its duration and its node id. A test whose windows were all invalid shows
``n/a`` and why, last. Which tests are listed is :mod:`pytest_energy.measure.top_tests`'s choice.
"""

from __future__ import annotations

from typing import Any

from ..core.record import Record
from ..core.units import fmt


def lines(records: list[Record]) -> list[str]:
    """The listing's lines (without the heading)."""
    out = []
    for record in records:
        methods = ",".join(record.methods) or "none"
        figures = (f"{fmt(record.total_gross_joules):>9} J gross {fmt(record.total_net_joules):>9} J net "
                   f"{methods:<9} {record.duration_seconds:8.3f}s")
        note = "; ".join(record.notes) if not record.valid else ""
        out.append(f"{figures}  {record.nodeid}" + (f" ({note})" if note else ""))
    return out


def render(records: list[Record], count: int, terminalreporter: Any) -> None:
    """Write the heading and one line per listed test."""
    terminalreporter.write_sep("=", f"pytest-energy: the {len(records)} tests with the most energy "
                                    f"(--energy-top {count}; listed, not judged)")
    for line in lines(records):
        terminalreporter.write_line(line)
