"""Energy handed to other pytest plugins: properties for JUnit XML and pytest-html, and
pytest-benchmark's ``extra_info``. The values come from :mod:`pytest_energy.report.exports`."""

from __future__ import annotations

from typing import Any

from .context import Pending
from .core.record import Record


def wants_properties(config: Any) -> bool:
    """JUnit XML or pytest-html will show energy: only then wait for records during the test."""
    return bool(getattr(config.option, "xmlpath", None) or getattr(config.option, "htmlpath", None))


def properties(records: list[Record]) -> list[tuple[str, str]]:
    """The ``energy_*`` properties of a test's records, for ``item.user_properties``."""
    from .report.exports import junit_properties

    return [p for record in records for p in junit_properties(record)]


def to_benchmark(benchmark: Any, taken: list[Pending]) -> None:
    """Hand the test's latest record to pytest-benchmark's ``extra_info`` (its JSON), where the test
    uses the ``benchmark`` fixture and measured energy (only then is the record built: it may wait for
    a counter's tick)."""
    if benchmark is not None and taken and hasattr(benchmark, "extra_info"):
        from .report.exports import benchmark_extra_info

        benchmark.extra_info.update(benchmark_extra_info(taken[-1].record))
