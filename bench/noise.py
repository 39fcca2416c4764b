"""Noise: the coefficient of variation of per-iteration energy of a steady load, window by window, for
the plugin's meter, naive counter reads at the window edges, and CodeCarbon's tracker.

Every method measures the same load: ``warmup`` unmeasured iterations, then ``rounds`` windows that
each repeat the load until the window is filled; a measurement is repeated until the window has
enough values. The plugin's windows are back to back, as its rounds are. A naive reader reads the
counter at the two edges of each window, with a short idle gap of random length before each window:
back-to-back windows of a steady load have nearly the same length, so their edges keep the same
phase against the counter's 100 ms ticks and their errors repeat (or cancel) instead of showing
the error a single window has. CodeCarbon's windows are one tracker each (started and stopped around
the window), which is how a per-test figure is taken with it. The CV is over every window of every
measurement, so a first window that reads differently from the rest counts; the statistics of the
first windows and of the others are kept apart too. Where the true energy is known (the simulated
GPU), each window's error against it is kept.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable

from pytest_energy.measure.meter import Meter

from . import codecarbon_window
from .rigs import Rig

PLUGIN, NAIVE = "plugin", "naive"
METHODS = (PLUGIN, NAIVE, "codecarbon-15", "codecarbon-1")
METHOD_LABELS = {
    PLUGIN: "pytest-energy meter (interpolates counter ticks at the edges)",
    NAIVE: "naive counter reads at the edges",
    "codecarbon-15": "CodeCarbon offline tracker, measure_power_secs=15 (default)",
    "codecarbon-1": "CodeCarbon offline tracker, measure_power_secs=1",
}


def codecarbon_interval(method: str) -> float | None:
    """15.0 for "codecarbon-15", None for a method that is not CodeCarbon."""
    prefix = "codecarbon-"
    return float(method[len(prefix):]) if method.startswith(prefix) else None


@dataclass
class Plan:
    """How much to measure per window."""

    windows: list[float]
    rounds: int = 5  # windows per measurement (the plugin's default rounds)
    warmup: int = 3  # the plugin's default warm-up iterations
    seconds_per_window: float = 6.0  # aim for this much measured time per method and window
    max_measurements: int = 4
    idle_seconds: float = 1.0  # the meter's idle window, once per rig
    country: str = "USA"
    seed: int = 0

    def measurements(self, window: float) -> int:
        return max(1, min(self.max_measurements, math.ceil(self.seconds_per_window / (self.rounds * window))))


@dataclass
class Sample:
    """One window."""

    joules: float  # gross, as read
    iterations: int
    seconds: float
    position: int  # index of the window inside its measurement (0 = first after warm-up)
    net_joules: float | None = None  # the plugin's net (gross minus idle power x seconds)
    true_joules: float | None = None

    @property
    def per_iteration(self) -> float:
        return self.joules / self.iterations


@dataclass
class Series:
    """Every window one method measured at one window length on one rig."""

    rig: str
    method: str
    window: float
    samples: list[Sample] = field(default_factory=list)
    absent: str = ""  # "n/a" reason when the method could not run

    def values(self, net: bool = False) -> list[float]:
        if net:
            return [s.net_joules / s.iterations for s in self.samples if s.net_joules is not None]
        return [s.per_iteration for s in self.samples]

    def cv(self, net: bool = False) -> float | None:
        """Sample standard deviation over mean of per-iteration joules (None with fewer than 2 values)."""
        return coefficient_of_variation(self.values(net))

    def errors(self, positions: Callable[[int], bool] = lambda p: True) -> list[float]:
        """Relative errors against the true energy of the windows at the chosen positions."""
        return [(s.joules - s.true_joules) / s.true_joules for s in self.samples
                if s.true_joules and positions(s.position)]

    def first_window(self) -> dict[str, float | None]:
        """Net per-iteration joules of the first windows against the later ones: the later windows'
        CV, and the first windows' offset from the later mean and their spread, relative to that mean."""
        first = [s.net_joules / s.iterations for s in self.samples if s.position == 0 and s.net_joules is not None]
        later = [s.net_joules / s.iterations for s in self.samples if s.position > 0 and s.net_joules is not None]
        if len(later) < 2 or not statistics.fmean(later):
            return {"cv_net_later": None, "first_offset_net": None, "first_sd_net": None}
        mean = statistics.fmean(later)
        return {"cv_net_later": statistics.stdev(later) / abs(mean),
                "first_offset_net": statistics.fmean(first) / mean - 1 if first else 0.0,
                "first_sd_net": statistics.stdev(first) / abs(mean) if len(first) > 1 else 0.0}

    def summary(self) -> dict:
        first, later = self.errors(lambda p: p == 0), self.errors(lambda p: p > 0)
        return {
            "rig": self.rig, "method": self.method, "window_seconds": self.window, "absent": self.absent,
            "windows": len(self.samples), "cv": self.cv(), "cv_net": self.cv(net=True),
            "cv_later_windows": coefficient_of_variation([s.per_iteration for s in self.samples if s.position > 0]),
            **self.first_window(),
            "mean_per_iteration_joules": statistics.fmean(self.values()) if self.samples else None,
            "error_mean": _mean(self.errors()), "error_sd": _sd(self.errors()),
            "error_mean_first_window": _mean(first), "error_mean_later_windows": _mean(later),
            "error_sd_later_windows": _sd(later),
            "samples": [asdict(s) for s in self.samples],
        }


def coefficient_of_variation(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / abs(mean) if mean else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _sd(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _fill(work: Callable[[], None], window: float) -> int:
    """Repeat ``work`` until ``window`` seconds have passed; returns the iterations."""
    count, began = 0, time.perf_counter()
    while True:
        work()
        count += 1
        if time.perf_counter() - began >= window:
            return count


def _pause(chance: random.Random) -> None:
    """An idle gap between measurements, of random length so ticks fall anywhere in the windows."""
    time.sleep(chance.uniform(0.1, 0.25))


class MethodRunner:
    """Measures windows with one method on one rig (a meter is started once, on first use)."""

    def __init__(self, method: str, rig: Rig, plan: Plan) -> None:
        self.method, self.rig, self.plan = method, rig, plan
        self.chance = random.Random(f"{plan.seed}-{method}-{rig.key}")
        self._meter: Meter | None = None

    def close(self) -> None:
        if self._meter is not None:
            self._meter.close()

    def absent(self) -> str:
        """Why this method cannot run on this rig ("" when it can)."""
        if self.method == NAIVE and self.rig.naive_read is None:
            return self.rig.naive_absent
        if codecarbon_interval(self.method) is not None:
            if self.rig.codecarbon_joules is None:
                return "CodeCarbon cannot measure this device"
            return codecarbon_window.unavailable()
        return ""

    def series(self, window: float) -> Series:
        series = Series(self.rig.key, self.method, window)
        series.absent = self.absent()
        if series.absent:
            return series
        try:
            for _ in range(self.plan.measurements(window)):
                _pause(self.chance)
                series.samples += self.measure(window)
        except Exception as error:  # a method that fails here is a row that says why, not a crash
            series.absent = f"{type(error).__name__}: {error}"
        return series

    def measure(self, window: float) -> list[Sample]:
        """One measurement: warm-up, then ``plan.rounds`` windows."""
        if self.method == PLUGIN:
            return self._plugin(window)
        if self.method == NAIVE:
            return self._naive(window)
        return self._codecarbon(window, codecarbon_interval(self.method) or 15.0)

    def meter(self) -> Meter:
        if self._meter is None:
            meter = Meter(self.rig.open_channels())
            meter.start(self.plan.idle_seconds)
            self._meter = meter
        return self._meter

    def _truth(self, start: float, end: float) -> float | None:
        return self.rig.truth(start, end) if self.rig.truth else None

    def _plugin(self, window: float) -> list[Sample]:
        meter = self.meter()
        taken = meter.take_rounds(self.rig.work(), (), {}, rounds=self.plan.rounds, min_window=window,
                                  warmup=self.plan.warmup)
        measured = meter.account(taken)
        samples = []
        for position, round_ in enumerate(measured.rounds):
            if not round_.valid:
                continue
            start, end = taken.edges[position].at, taken.edges[position + 1].at
            samples.append(Sample(round_.gross_joules, round_.iterations, round_.seconds, position,
                                  round_.net_joules, self._truth(start, end)))
        return samples

    def _naive(self, window: float) -> list[Sample]:
        read = self.rig.naive_read
        assert read is not None
        work = self.rig.work()
        for _ in range(self.plan.warmup):
            work()
        samples = []
        for position in range(self.plan.rounds):
            time.sleep(self.chance.uniform(0.02, 0.12))  # a new phase against the ticks for every window
            self.rig.sync()
            at, energy = time.perf_counter(), read()
            iterations = _fill(work, window)
            self.rig.sync()
            now, value = time.perf_counter(), read()
            samples.append(Sample(value - energy, iterations, now - at, position,
                                  true_joules=self._truth(at, now)))
        return samples

    def _codecarbon(self, window: float, interval: float) -> list[Sample]:
        work = self.rig.work()
        for _ in range(self.plan.warmup):
            work()
        samples = []
        for position in range(self.plan.rounds):
            taken = codecarbon_window.measure(self.rig, interval, self.plan.country, lambda: _fill(work, window))
            samples.append(Sample(taken.joules, taken.iterations, taken.ended - taken.began, position,
                                  true_joules=self._truth(taken.began, taken.ended)))
        return samples


def run(rigs: dict[str, Rig], plan: Plan, methods: tuple[str, ...] = METHODS, *,
        parallel: bool = False) -> list[Series]:
    """Measure every window with every method. ``rigs`` maps a method to the rig it measures on.

    ``parallel`` runs the methods at once, one thread each; it is for simulated rigs only (their
    loads and reads are sleeps), each method with a GPU of its own.
    """
    runners = [MethodRunner(method, rigs[method], plan) for method in methods]
    try:
        if parallel:
            with ThreadPoolExecutor(len(runners)) as pool:
                per_method = list(pool.map(lambda r: [r.series(w) for w in plan.windows], runners))
            return [s for series in zip(*per_method) for s in series]
        return [runner.series(window) for window in plan.windows for runner in runners]
    finally:
        for runner in runners:
            runner.close()
