"""Validity: do the per-test figures add up? The energy of a sequence of tests (per-test gross joules
plus idle power times the idle gaps between them) against one reading around the whole sequence.

The sequence mixes the plugin's two forms: blocks measured as one window (``with energy.measure()``:
a START and an END edge) and calls measured in rounds (``energy(fn)``: back-to-back windows). Gaps
are idle sleeps of random length and the sequence starts and ends with an idle margin, so the one
outer reading (the counter read directly, or for the CPU a second, independent set of channels) is
taken while the device idles, where a counter tick holds little energy. Calls run with no warm-up
here, so the gaps hold idle power only; the warm-up's effect on a first window is measured by the
noise section. On the simulated GPU the true energy is known and is compared too.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from pytest_energy.measure.meter import END, START, Meter, Taken

from .rigs import Rig


@dataclass(frozen=True)
class TestSpec:
    """One test of the sequence: a block of ``iterations`` calls, or ``rounds`` windows of ``window`` s."""

    form: str  # "block" | "rounds"
    iterations: int = 1
    rounds: int = 0
    window: float = 0.0


FULL = (TestSpec("block", iterations=3), TestSpec("block", iterations=15), TestSpec("rounds", rounds=5, window=0.1),
        TestSpec("rounds", rounds=5, window=0.2), TestSpec("block", iterations=50),
        TestSpec("rounds", rounds=3, window=0.5))
QUICK = (TestSpec("block", iterations=3), TestSpec("block", iterations=15), TestSpec("rounds", rounds=5, window=0.1),
         TestSpec("block", iterations=40))


def _outer_reader(rig: Rig) -> Callable[[], float]:
    """A reading independent of the meter's: the counter read directly, or fresh channels."""
    if rig.naive_read is not None:
        return rig.naive_read
    channels = rig.open_channels()
    return lambda: sum(channel.read() for channel in channels)


def run(rig: Rig, specs: tuple[TestSpec, ...], *, margin: float = 0.5, idle_seconds: float = 1.0,
        seed: int = 0) -> dict[str, Any]:
    chance = random.Random(f"validity-{seed}-{rig.key}")
    meter = Meter(rig.open_channels())
    idle = sum(meter.start(idle_seconds).values())
    outer = _outer_reader(rig)
    work = rig.work()
    rig.sync()
    outer_began = time.perf_counter()
    outer_start = outer()
    time.sleep(margin)
    taken: list[Taken] = []
    for spec in specs:
        time.sleep(chance.uniform(0.1, 0.3))
        if spec.form == "block":
            first = meter.edge(START)
            for _ in range(spec.iterations):
                work()
            taken.append(Taken([first, meter.edge(END)], [spec.iterations]))
        else:
            taken.append(meter.take_rounds(work, (), {}, rounds=spec.rounds, min_window=spec.window, warmup=0))
    time.sleep(margin)
    rig.sync()
    outer_ended = time.perf_counter()
    outer_end = outer()
    tests = [sum(r.gross_joules for r in meter.account(t).rounds if r.valid) for t in taken]
    meter.close()
    spans = [(t.edges[0].at, t.edges[-1].at) for t in taken]
    gaps = [spans[0][0] - outer_began, outer_ended - spans[-1][1]]
    gaps += [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:])]
    whole = outer_end - outer_start
    summed = sum(tests) + idle * sum(gaps)
    result: dict[str, Any] = {
        "rig": rig.key, "tests": len(specs), "specs": [vars(s) for s in specs],
        "per_test_gross_joules": tests, "idle_watts": idle, "idle_gap_seconds": sum(gaps),
        "sum_joules": summed, "whole_session_joules": whole,
        "relative_difference": (summed - whole) / whole if whole else None,
        "outer_reading": "counter read directly" if rig.naive_read else "independent channels",
    }
    if rig.truth is not None:
        truth_tests = [rig.truth(a, b) for a, b in spans]
        truth_whole = rig.truth(outer_began, outer_ended)
        result.update({
            "true_whole_joules": truth_whole,
            "sum_vs_truth": (summed - truth_whole) / truth_whole,
            "whole_reading_vs_truth": (whole - truth_whole) / truth_whole,
            "per_test_errors": [(m - t) / t for m, t in zip(tests, truth_tests)],
        })
    return result
