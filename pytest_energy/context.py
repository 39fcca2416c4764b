"""What one test measures under, and the handles its measurements come back in.

Data types below the logic that uses them: the session (which measures) and the fixture (which the
test calls) both use these, and neither imports the other for them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from .core import budget as budgets
from .core.config import Settings
from .core.facts import RecordFacts
from .core.record import Record

#: Marker keywords that tune the verdict of a test's records (kept on the record for the gate).
VERDICT_KEYS = ("threshold", "thresholds", "gate")
#: Marker keywords that override settings for one test.
SETTING_KEYS = ("rounds", "min_window", "warmup", "cooldown", "count_flops")
BUDGET_KEYS = ("budget", "per", "basis")
MARKER_KEYS = BUDGET_KEYS + SETTING_KEYS + VERDICT_KEYS


def record_outcome(when: str, outcome: str, xfail: bool) -> str:
    """A record's outcome (:data:`pytest_energy.core.record.OUTCOMES`) from one phase of a test's report:
    the call's outcome with xfail told apart, "error" for a failed set-up or teardown, "" otherwise."""
    if when == "call":
        if xfail and outcome in ("skipped", "passed"):  # pytest reports an xfail as skipped
            return "xfailed" if outcome == "skipped" else "xpassed"
        return outcome
    return "error" if outcome == "failed" else ""


def whole_count(value: Any, where: str) -> int:
    """``value`` as a whole number >= 1, or the test fails with one line naming ``where``."""
    try:
        if isinstance(value, bool):  # True is an int to Python, never a count to a reader
            raise TypeError
        count = operator.index(value)  # ints and numpy integers; never floats or strings
    except TypeError:
        count = 0
    if count < 1:
        pytest.fail(f"pytest-energy: {where} has {value!r}, expected an integer >= 1", pytrace=False)
    return count


class Pending:
    """A measurement whose record is built on first use: edges of ticking counters resolve in the
    background, so the test goes on instead of waiting for the next counter tick."""

    def __init__(self, build: Callable[[], Record]) -> None:
        self._build = build
        self._record: Record | None = None
        self.outcome = ""

    @property
    def record(self) -> Record:
        if self._record is None:
            self._record = self._build()
        self._record.outcome = self.outcome or self._record.outcome
        return self._record


@dataclass
class TestContext:
    """What one test measured and the terms it is measured under."""

    nodeid: str
    settings: Settings
    marker: dict[str, Any] = field(default_factory=dict)
    budgets: list[budgets.EnergyBudget] = field(default_factory=list)
    taken: list[Pending] = field(default_factory=list)
    given: set[str] = field(default_factory=set)  # every record name given in this test
    outcome: str = ""
    error: str = ""  # a bad marker: the test fails with this one line

    @classmethod
    def for_test(cls, nodeid: str, settings: Settings | None,
                 markers: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> TestContext:
        """A context from the test's ``energy`` markers as (args, kwargs), closest first; a bad marker
        sets ``error``."""
        marker: dict[str, Any] = {}
        try:
            for args, kwargs in reversed(markers):
                marker.update(budgets.marker_keywords(args, kwargs))
            unknown = sorted(set(marker) - set(MARKER_KEYS))
            if unknown:
                raise ValueError(
                    f"energy marker: unknown keyword {unknown[0]!r}; expected one of {', '.join(MARKER_KEYS)}")
            if not isinstance(marker.get("gate", True), bool):  # gate="false" would read as true
                raise ValueError(f"energy marker gate={marker['gate']!r}: expected True or False")
            budget = budgets.budget_from_marker(marker)
            if settings is not None:
                overrides = {k: marker[k] for k in SETTING_KEYS if marker.get(k) is not None}
                settings = settings.with_overrides(overrides, "energy marker")
        except ValueError as error:
            return cls(nodeid, Settings(), marker, error=str(error))
        return cls(nodeid, settings or Settings(), marker, [budget] if budget else [])

    @property
    def records(self) -> list[Record]:
        return [t.record for t in self.taken]

    def set_outcome(self, outcome: str) -> None:
        self.outcome = outcome
        for taken in self.taken:
            taken.outcome = outcome

    def name_for(self, label: str) -> str:
        """A measurement's record name: ``nodeid`` or ``nodeid::label``, its repeats ``#2``, ``#3``...

        The suffix skips every name already given in this test, so label "x" twice and then "x#2" give
        x, x#2 and x#2#2: never two records of one name (they would share a baseline and a history
        row). Names are unique in the run too: each starts with its test's node id, and a test runs in
        one process (one xdist worker).
        """
        base = f"{self.nodeid}::{label}" if label else self.nodeid
        name, count = base, 1
        while name in self.given:
            count += 1
            name = f"{base}#{count}"
        self.given.add(name)
        return name


class Block:
    """Handle of a ``with energy.measure()`` block; set ``iterations`` or call ``step()`` inside, read
    ``record`` after.

    The record is built on first access: a counter that ticks every 100 ms is resolved in the
    background, so code that never reads it does not wait for the next tick. Setting ``iterations``
    to anything but a whole number >= 1 fails the test at that line."""

    def __init__(self, iterations: int = 1) -> None:
        self.iterations = iterations
        self.steps = 0  # steps marked with step()
        self.taken: Pending | None = None  # the session's measurement, once the block has ended
        # What the code inside states of the measurement (a fine-tune case's facts), set before the block
        # ends: built into its record.
        self.facts: RecordFacts | None = None
        self.on_step: Callable[[int], None] | None = None  # the session's, while it measures the block
        # The session's (open, close) of a marked block's rounds, while it measures the block.
        self.on_rounds: tuple[Callable[[int], None], Callable[[], None]] | None = None

    def step(self, count: int = 1) -> None:
        """Mark the end of one step of the block's work (one training step): a block whose steps are
        marked is measured in rounds of them, its first steps a warm-up (see ``energy.measure``); each
        call is a clock read, and an edge where a round ends. Without ``--energy`` it only counts.
        ``count``: the iterations the step held (a served batch's pass: one output token per sequence)."""
        self.steps += count
        if self.on_step is not None:
            self.on_step(count)

    def open_rounds(self, iterations: int) -> None:
        """A marked block (``energy.measure(marked=True)``): its rounds start now, an edge here, and will
        hold ``iterations``; the steps before were its warm-up window (where a served batch first fills)."""
        if self.on_rounds is not None:
            self.on_rounds[0](iterations)

    def close_rounds(self) -> None:
        """A marked block: its rounds end now, an edge here; the steps after are its drain window (where a
        served batch starts to drain)."""
        if self.on_rounds is not None:
            self.on_rounds[1]()

    @property
    def iterations(self) -> int:
        """Iterations the block held; per-iteration energy is the block's divided by them."""
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        self._iterations = whole_count(value, "the energy.measure() block's iterations")

    @property
    def record(self) -> Record | None:
        return self.taken.record if self.taken is not None else None
