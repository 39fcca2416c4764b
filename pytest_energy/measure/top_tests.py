"""``--energy-top N``: every test's call read as one window of its own, the N with the most energy kept.

As ``--durations=N`` is for time. A test's window is its call, edges only: no warm-up and no
repetition, so the test runs once, as it would without the plugin. Its edges are boundaries (power
taken as constant across the counter tick at each edge, no idle assumed on either side: the tests
around it may be working), so a test shorter than a tick gets its share of that tick's energy.

These records have the form ``test`` and go to the JSON's ``top`` list only: they are never judged
against baselines, never become baselines or history rows, and never fail the run. A test marked for
energy is measured and judged as before, in its own record; its top window holds its whole call
(warm-up and rounds included).

The records are built at the end of the session, not after each test: a ticking counter's edges
resolve on the poller thread, and waiting for them would add up to a tick to every test. Only the
records that can be listed are built: the windows are ordered by the joules read at their edges, and
built in that order until N hold an energy figure (one whose windows prove invalid makes room for the
next), so a suite of thousands of tests builds about N records, not thousands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..core.record import Record

#: A top record's form and unit: the test's call is one iteration of one round.
FORM = "test"


def _order(joules: float, valid: bool = True) -> tuple[bool, float]:
    """Most joules first; what has no energy figure (invalid windows, or none read) after every measured one."""
    measured = valid and math.isfinite(joules)
    return (not measured, -joules if measured else 0.0)


def ranked(records: list[Record], count: int) -> list[Record]:
    """The ``count`` records with the most gross joules, most first; a record without an energy
    figure (every window invalid) comes after every measured one, so it is listed, not dropped."""
    return sorted(records, key=lambda record: _order(record.total_gross_joules, record.valid))[:count]


@dataclass(frozen=True)
class Window:
    """One test's window, its record not built yet."""

    build: Callable[[], Record]  # the record, once the edges have resolved
    gross: Callable[[], float]  # the joules read across its edges before any check (NaN: none read)


class TopTests:
    """The per-test windows of one session (or xdist worker), and those merged from workers."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pending: list[Window] = []  # one per test, the listed ones built at the end
        self._records: list[Record] = []
        self.merged: list[Record] = []  # the controller's: each worker's best

    def add(self, build: Callable[[], Record], gross: Callable[[], float]) -> None:
        """One test's window: ``build`` makes its record once the edges have resolved, ``gross`` reads
        the joules across them (what orders the windows before any record is built)."""
        self._pending.append(Window(build, gross))

    def records(self) -> list[Record]:
        """The session's top records, most energy first (building those of the pending windows that
        can be listed)."""
        if self._pending:
            pending, self._pending = self._pending, []
            self._records = ranked(self._records + self._listed(pending), self.count)
        return ranked(self._records + self.merged, self.count)

    def _listed(self, windows: list[Window]) -> list[Record]:
        """The records of the windows that can be listed: built in order of the joules read, until
        ``count`` of them hold an energy figure (a valid record's gross joules are those joules)."""
        by_joules = sorted(((window.gross(), window) for window in windows), key=lambda pair: _order(pair[0]))
        built: list[Record] = []
        measured = 0
        for _, window in by_joules:
            if measured >= self.count:
                break
            record = window.build()
            built.append(record)
            measured += record.valid and math.isfinite(record.total_gross_joules)
        return built

    def payload(self) -> list[dict[str, Any]]:
        """An xdist worker's top records as plain data (sent once, at the worker's end)."""
        return [record.to_dict() for record in self.records()]

    def merge(self, records: list[dict[str, Any]]) -> None:
        """Take one worker's top records (controller side)."""
        self.merged = ranked(self.merged + [Record.from_dict(r) for r in records], self.count)
