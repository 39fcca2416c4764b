"""Change-point methods on synthetic nightly series with known steps: false alarms, detection, location.

``python3 -m bench.changepoint [--trials N]`` prints the table docs/reports.md quotes; ``python3 -m bench``
runs it as its "changepoint" section. Every method gets the same series and the same rule that a step
moves the level by at least ``STEP_MIN_CHANGE`` (5 %), so only the segmentation differs:

* pytest-energy: :func:`pytest_energy.stats.changepoint.detect`: binary segmentation under absolute error
  (penalty 2 sigma log n), levels of three runs (the newest two), neighbours joined where a Mann-Whitney
  rank test gives p > 0.05; and the same without the rank test;
* report/model.py's ``detect_steps`` before this bench: asv's exact L1 fit (PELT), levels of two runs;
* ruptures PELT, l1: that cost and penalty through ruptures (checks the hand-written PELT);
* ruptures PELT, l2: squared error with the BIC-style penalty 2 sigma^2 log n, the textbook default;
* E-divisive + Welch t-test: Hunter's approach (split where the energy statistic peaks, keep the split
  where a Welch t-test between the two sides gives p < 0.001, recurse on both sides).

ruptures and scipy are bench-only: the package never imports them.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from pytest_energy.stats.changepoint import ChangePoint, _Level, detect, robust_sigma, significant

#: Noise models of a nightly series (fractions of the level). "contended": 10 % of runs are 20-40 %
#: high, as a run sharing its runner with another job reads.
NOISES = ("gaussian 2 %", "student-t3 2 %", "contended 1 % + 10 % of runs 20-40 % high")
LENGTHS = (10, 30, 60)
EFFECTS = (0.0, 0.10, 0.20, -0.10)
HUNTER_PVALUE = 0.001


def _noise(kind: str, rng: random.Random) -> float:
    if kind.startswith("gaussian"):
        return rng.gauss(0, 0.02)
    if kind.startswith("student"):
        # Student's t with 3 degrees of freedom, scaled to a 2 % spread of its core.
        chi = sum(rng.gauss(0, 1) ** 2 for _ in range(3)) / 3
        return 0.02 * rng.gauss(0, 1) / math.sqrt(chi)
    return rng.gauss(0, 0.01) + (rng.uniform(0.2, 0.4) if rng.random() < 0.1 else 0.0)


def series(noise: str, length: int, effect: float, rng: random.Random) -> tuple[list[float], int | None]:
    """One series of ``length`` runs at level 10 and, from a random run (each level two runs or more),
    at ``10 * (1 + effect)``; the step's index (None where flat)."""
    at = rng.randint(2, length - 2) if effect else None
    values = [10.0 * (1 + (effect if at is not None and i >= at else 0.0)) * (1 + _noise(noise, rng))
              for i in range(length)]
    return values, at


def _ruptures(cost: str) -> Callable[[list[float]], list[ChangePoint]]:
    def run(values: list[float]) -> list[ChangePoint]:
        import numpy as np
        import ruptures

        sigma = robust_sigma(values)
        penalty = 2 * sigma * math.log(len(values)) if cost == "l1" else 2 * sigma**2 * math.log(len(values))
        breaks = ruptures.Pelt(model=cost, min_size=2, jump=1).fit(np.asarray(values)).predict(pen=penalty)
        return significant(values, breaks[:-1])
    return run


def _edivisive_split(x: Any) -> int | None:
    """The split of ``x`` (first index of the right side) where the E-divisive statistic peaks."""
    import numpy as np

    n = len(x)
    if n < 4:
        return None
    distance = np.abs(x[:, None] - x[None, :])
    best, where = -math.inf, None
    for tau in range(2, n - 1):
        left, right = distance[:tau, :tau], distance[tau:, tau:]
        between = distance[:tau, tau:].mean()
        within_left = left.sum() / (tau * (tau - 1))
        within_right = right.sum() / ((n - tau) * (n - tau - 1))
        q = tau * (n - tau) / n * (2 * between - within_left - within_right)
        if q > best:
            best, where = q, tau
    return where


def hunter(values: list[float]) -> list[ChangePoint]:
    """E-divisive splits kept where Welch's t-test between the sides gives p < HUNTER_PVALUE."""
    import numpy as np
    from scipy.stats import ttest_ind

    x = np.asarray(values)
    breaks: list[int] = []
    pending = [(0, len(values))]
    while pending:
        start, end = pending.pop()
        split = _edivisive_split(x[start:end])
        if split is None:
            continue
        left, right = x[start:start + split], x[start + split:end]
        if ttest_ind(left, right, equal_var=False).pvalue < HUNTER_PVALUE:
            breaks.append(start + split)
            pending += [(start, start + split), (start + split, end)]
    return significant(values, sorted(breaks))


def asv_pelt(values: list[float]) -> list[ChangePoint]:
    """report/model.py's ``detect_steps`` before this bench: the exact L1 fit with the same penalty by
    dynamic programming with PELT pruning, levels of two runs or more, no rank test."""
    n = len(values)
    if n < 4:
        return []
    penalty = 2 * robust_sigma(values) * math.log(n)
    best = [0.0] + [math.inf] * n
    start = [0] * (n + 1)
    levels = {0: _Level()}
    for j in range(1, n + 1):
        scores = []
        for i, level in levels.items():
            level.add(values[j - 1])
            if j - i >= 2:
                scores.append((best[i] + level.cost + penalty, i))
        if scores:
            best[j], start[j] = min(scores)
            for score, i in scores:
                if score - penalty > best[j]:
                    del levels[i]
        levels[j] = _Level()
    starts, j = [], n
    while j > 0:
        j = start[j]
        starts.append(j)
    return significant(values, sorted(starts)[1:])


METHODS: dict[str, Callable[[list[float]], list[ChangePoint]]] = {
    "pytest-energy: L1 binary segmentation + rank test": detect,
    "the same without the rank test": lambda values: detect(values, max_pvalue=None),
    "L1 PELT, levels of 2 runs (detect_steps before)": asv_pelt,
    "ruptures PELT, l1 (same cost and penalty)": _ruptures("l1"),
    "ruptures PELT, l2 (BIC penalty)": _ruptures("l2"),
    "E-divisive + Welch t-test (Hunter)": hunter,
}


@dataclass
class Cell:
    """One method on one noise model, length and effect: counts over the trials."""

    method: str
    noise: str
    length: int
    effect: float
    trials: int = 0
    flagged: int = 0  # series with any change point
    detected: int = 0  # a change point within one run of the true step, in its direction
    exact: int = 0  # a change point at the true step
    spurious: int = 0  # series with a change point not matching the step
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        rate = (lambda count: count / self.trials if self.trials else None)
        return {"method": self.method, "noise": self.noise, "length": self.length, "effect": self.effect,
                "trials": self.trials, "false_alarm_rate": rate(self.flagged) if not self.effect else None,
                "detection_rate": rate(self.detected) if self.effect else None,
                "exact_location_rate": rate(self.exact) if self.effect else None,
                "spurious_rate": rate(self.spurious), "ms_per_series": 1000 * self.seconds / max(self.trials, 1)}


def run(trials: int = 100, seed: int = 0, noises: tuple[str, ...] = NOISES, lengths: tuple[int, ...] = LENGTHS,
        effects: tuple[float, ...] = EFFECTS, methods: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The ``methods`` (all where None) on the same ``trials`` series per noise model, length and effect."""
    cells = []
    for noise in noises:
        for length in lengths:
            for effect in effects:
                rng = random.Random(f"{seed}-{noise}-{length}-{effect}")
                drawn = [series(noise, length, effect, rng) for _ in range(trials)]
                for name, method in METHODS.items():
                    if methods is not None and name not in methods:
                        continue
                    cell = Cell(name, noise, length, effect)
                    for values, at in drawn:
                        began = time.perf_counter()
                        found = method(values)
                        cell.seconds += time.perf_counter() - began
                        cell.trials += 1
                        cell.flagged += bool(found)
                        match = [p for p in found if at is not None and abs(p.index - at) <= 1
                                 and (p.ratio > 1) == (effect > 0)]
                        cell.detected += bool(match)
                        cell.exact += any(p.index == at for p in match)
                        cell.spurious += len(found) > len(match[:1])
                    cells.append(cell.as_dict())
    return cells


def summary(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: false alarms over flat series, detection and exact location over stepped ones, by
    noise model (all lengths and step sizes pooled)."""
    rows = []
    for method in dict.fromkeys(c["method"] for c in cells):
        for noise in dict.fromkeys(c["noise"] for c in cells):
            mine = [c for c in cells if c["method"] == method and c["noise"] == noise]
            flat = [c for c in mine if not c["effect"]]
            steps = [c for c in mine if c["effect"]]
            pooled = (lambda key, group: sum(c[key] * c["trials"] for c in group) / sum(c["trials"] for c in group)
                      if group else None)
            rows.append({"method": method, "noise": noise,
                         "false_alarm_rate": pooled("false_alarm_rate", flat),
                         "detection_rate": pooled("detection_rate", steps),
                         "exact_location_rate": pooled("exact_location_rate", steps),
                         "spurious_rate_with_step": pooled("spurious_rate", steps),
                         "ms_per_series": pooled("ms_per_series", mine)})
    return rows


def markdown(cells: list[dict[str, Any]]) -> list[str]:
    """The summary table and the detection by length and step size."""
    pct = (lambda value: "n/a" if value is None else f"{100 * value:.1f} %")
    lines = ["| method | noise | false alarms (flat) | detected (±1 run) | exact run | extra points (stepped) "
             "| ms / series |", "|" + " --- |" * 7]
    for row in summary(cells):
        lines.append(f"| {row['method']} | {row['noise']} | {pct(row['false_alarm_rate'])} | "
                     f"{pct(row['detection_rate'])} | {pct(row['exact_location_rate'])} | "
                     f"{pct(row['spurious_rate_with_step'])} | {row['ms_per_series']:.2f} |")
    lengths = sorted({c["length"] for c in cells})
    effects = [e for e in EFFECTS if e and any(c["effect"] == e for c in cells)]
    lines += ["", "Detected (±1 run), by series length and step (all noise models pooled):", "",
              "| method | " + " | ".join(f"{n} runs, {e:+.0%}" for n in lengths for e in effects) + " |",
              "|" + " --- |" * (1 + len(lengths) * len(effects))]
    for method in dict.fromkeys(c["method"] for c in cells):
        values = []
        for length in lengths:
            for effect in effects:
                group = [c for c in cells if c["method"] == method and c["length"] == length and c["effect"] == effect]
                values.append(pct(sum(c["detection_rate"] * c["trials"] for c in group)
                                  / sum(c["trials"] for c in group)))
        lines.append(f"| {method} | " + " | ".join(values) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.changepoint", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="series per noise model, length and step (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    print("\n".join(markdown(run(arguments.trials, arguments.seed))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
