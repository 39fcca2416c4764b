"""The ``energy`` fixture: ``energy(fn, *args)``, ``energy.run(...)`` and ``with energy.measure(...)``.

Without ``--energy`` it runs the function once, unmeasured, so suites stay ordinary tests.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .budget import EnergyBudget
from .record import Record

if TYPE_CHECKING:
    from .session import EnergySession, TestContext


@dataclass
class Block:
    """Handle of a ``with energy.measure()`` block; set ``iterations`` inside, read ``record`` after.

    The record is built on first access: a counter that ticks every 100 ms is resolved in the
    background, so code that never reads it does not wait for the next tick."""

    iterations: int = 1
    taken: Any = None  # the session's lazily built measurement, once the block has ended

    @property
    def record(self) -> Record | None:
        return self.taken.record if self.taken is not None else None


class EnergyFixture:
    """Measures the energy of code inside one test. Every measurement becomes one record."""

    def __init__(self, session: EnergySession | None, context: TestContext) -> None:
        self._session = session
        self._context = context

    @property
    def enabled(self) -> bool:
        """True when ``--energy`` is on and measurements are taken."""
        return self._session is not None

    @property
    def records(self) -> list[Record]:
        """This test's records so far."""
        return self._context.records

    @property
    def last(self) -> Record | None:
        """The latest record of this test, or None (also without ``--energy``)."""
        return self._context.records[-1] if self._context.records else None

    def add_budget(self, budget: EnergyBudget) -> None:
        """Add an energy budget checked after the test's call, like the marker's."""
        self._context.budgets.append(budget)

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Measure ``fn(*args, **kwargs)``: warm-up, then rounds that each fill the minimum window."""
        return self.run(fn, args=args, kwargs=kwargs)

    def run(
        self,
        fn: Callable[..., Any],
        *,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        label: str = "",
        unit: str = "iteration",
        iterations: int | None = None,
        rounds: int | None = None,
        min_window: float | None = None,
        warmup: int | None = None,
    ) -> Any:
        """Measure ``fn`` and return its last result.

        ``iterations`` fixes the calls per round (an inference case splitting 1,000 inferences over
        rounds); otherwise each round repeats ``fn`` until the minimum window is filled. ``rounds``,
        ``min_window`` and ``warmup`` override the marker and settings for this measurement.
        """
        kwargs = kwargs or {}
        if self._session is None:
            return fn(*args, **kwargs)
        return self._session.measure_call(
            self._context, fn, args, kwargs, label=label, unit=unit, iterations=iterations,
            rounds=rounds, min_window=min_window, warmup=warmup,
        )

    @contextmanager
    def measure(self, label: str = "", unit: str = "run", iterations: int = 1) -> Iterator[Block]:
        """Measure a block that runs exactly once (a fine-tune) as one window."""
        block = Block(iterations=iterations)
        if self._session is None:
            yield block
            return
        with self._session.measure_block(self._context, block, label=label, unit=unit):
            yield block
