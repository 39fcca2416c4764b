"""The ``energy`` fixture: ``energy(fn, *args)``, ``energy.run(...)`` and ``with energy.measure(...)``.

Without ``--energy`` it runs the function once, unmeasured, so suites stay ordinary tests. Its
arguments are checked either way: a bad one fails the test with one line naming the value and what
is expected (no traceback), before anything is measured.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import pytest

from .context import Block, TestContext, whole_count
from .core.budget import EnergyBudget
from .core.config import BY_NAME, SettingError, parse_value
from .core.facts import RecordFacts
from .core.profiles import Profile, get_profile
from .core.record import Record

if TYPE_CHECKING:
    from .session import EnergySession


def _setting(name: str, value: Any, where: str = "energy.run") -> Any:
    """A per-measurement override of a setting, checked as the setting itself (None: the setting's)."""
    try:
        return parse_value(BY_NAME[name], value, f"{where}({name}=...)")
    except SettingError as error:
        problem = str(error)
    pytest.fail(problem, pytrace=False)  # outside the except block: no exception chain is printed


def _gpus(gpus: Sequence[int] | None, where: str) -> list[int] | None:
    """The GPUs a measurement holds, checked: CUDA's numbers in this process, each once (None: all)."""
    if gpus is None:
        return None
    if (isinstance(gpus, (str, bytes)) or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0
                                                  for g in gpus) or len(set(gpus)) != len(gpus)):
        pytest.fail(f"pytest-energy: {where}(gpus={gpus!r}): expected the GPUs held as distinct CUDA numbers in "
                    "this process (gpus=[0, 1] for cuda:0 and cuda:1), or None for every device", pytrace=False)
    return list(gpus)


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
    def quality_seeds(self) -> int:
        """How many training runs a case whose model is trained in the run measures its quality over
        (``--energy-quality-seeds``; 1 without ``--energy``)."""
        return int(self._context.settings.quality_seeds) if self._session is not None else 1

    @property
    def profile(self) -> Profile | None:
        """The measurement protocol inference cases run under (``--energy-profile``); None for the default
        (each case as declared) and without ``--energy``."""
        return get_profile(self._context.settings.profile) if self._session is not None else None

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
        fill_window: bool = False,
        count_flops: bool | None = None,
        facts: RecordFacts | None = None,
        gpus: Sequence[int] | None = None,
    ) -> Any:
        """Measure ``fn`` and return its last result.

        ``iterations`` fixes the calls per round; otherwise each round repeats ``fn`` until the minimum
        window is filled. With ``fill_window`` too, ``iterations`` is the least a round makes: its calls
        go on until the window is filled (an inference case splitting 1,000 inferences over rounds, each
        round still long enough for the counter). ``rounds``, ``min_window``, ``warmup`` and
        ``count_flops`` (count the FLOPs of the torch operations ``fn`` runs, on its first warm-up call)
        override the marker and settings for this measurement. ``facts``
        (:class:`~pytest_energy.core.facts.RecordFacts`: a model, work proxies, a case's facts, the
        iterations one call counts as) are built into the record, as the case runners state theirs.
        ``gpus`` are the GPUs ``fn`` holds, by CUDA's numbers in this process (``[0, 1]``: ``cuda:0`` and
        ``cuda:1``): the record keeps those GPUs, each its own component, and leaves the other GPUs
        measured out (None: every device measured).
        """
        if iterations is not None:
            iterations = whole_count(iterations, "energy.run(iterations=...)")
        elif fill_window:
            pytest.fail("pytest-energy: energy.run(fill_window=True) needs iterations=N (without them every "
                        "round fills the window already)", pytrace=False)
        rounds, min_window, warmup, count_flops = (_setting(name, value) for name, value in (
            ("rounds", rounds), ("min_window", min_window), ("warmup", warmup), ("count_flops", count_flops)))
        kwargs = kwargs or {}
        if self._session is None:
            return fn(*args, **kwargs)
        return self._session.measure_call(
            self._context, fn, args, kwargs, label=label, unit=unit, iterations=iterations,
            rounds=rounds, min_window=min_window, warmup=warmup, fill_window=fill_window, count_flops=count_flops,
            facts=facts, gpus=_gpus(gpus, "energy.run"),
        )

    @contextmanager
    def measure(
        self,
        label: str = "",
        unit: str = "run",
        iterations: int = 1,
        work: Callable[[], Any] | None = None,
        *,
        rounds: int | None = None,
        min_window: float | None = None,
        warmup: int | None = None,
        marked: bool = False,
        gpus: Sequence[int] | None = None,
    ) -> Iterator[Block]:
        """Measure a block that runs exactly once (a fine-tune).

        As one window, its energy divided by ``iterations`` (or the block's ``iterations`` set inside
        it). Where the block marks its steps (``block.step()`` after each, as a training loop can), it
        is measured in rounds of them instead, as energy.run measures a call: ``iterations`` is then
        how many steps the block will make; the first ``warmup`` steps are a warm-up window, measured
        for the totals but in no per-step figure, and the steps after it are split into ``rounds``
        back-to-back windows, each at least ``min_window`` long where the steps left allow (fewer
        rounds where they do not, which the record's notes say). ``rounds``, ``min_window`` and
        ``warmup`` override the marker and settings for this block. A step may hold several iterations
        (``block.step(count)``). A ``marked`` block places its rounds itself: ``block.open_rounds(n)``
        ends its warm-up window there (``warmup`` is not used) and ``block.close_rounds()`` ends its
        rounds, the steps after being a drain window measured for the totals (a served batch's steady
        state, from when it fills until it starts to drain).

        ``work`` is one iteration's work as a call of no arguments (a forward and backward pass without
        the optimizer's step): called once before the block, unmeasured, its FLOPs are the block's per
        iteration and the torch modules it runs name the block's model. A block without it counts none.
        """
        block = Block(iterations=whole_count(iterations, "energy.measure(iterations=...)"))
        if work is not None and not callable(work):
            pytest.fail(f"pytest-energy: energy.measure(work=...) has {work!r}, expected a call of no arguments "
                        "doing one iteration's work", pytrace=False)
        rounds, min_window, warmup = (_setting(name, value, "energy.measure") for name, value in
                                      (("rounds", rounds), ("min_window", min_window), ("warmup", warmup)))
        gpus = _gpus(gpus, "energy.measure")
        if self._session is None:
            yield block
            return
        with self._session.measure_block(self._context, block, label=label, unit=unit, rounds=rounds,
                                         min_window=min_window, warmup=warmup, work=work, marked=marked,
                                         gpus=gpus):
            yield block
