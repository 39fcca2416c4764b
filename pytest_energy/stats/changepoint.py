"""Change points of a short, noisy series: where a test's energy across runs moved to a new level.

The data is a nightly history: ten to a few hundred runs per test, noise of one to a few percent that is
heavy-tailed (a run beside a noisy neighbour reads 20-40 % high), and changes that are steps (a commit
changes the level and it stays). The method: binary segmentation of a piecewise-constant fit under
absolute error (a median per level, so one stray run moves nothing; asv's cost and penalty), levels
of three runs (the newest two), then a Mann-Whitney rank test between neighbouring levels that joins
those whose runs it cannot tell apart (clusters of contended runs). ``python3 -m bench.changepoint``
compares it with asv's exact PELT fit (this project's method before), ruptures' PELT and Hunter's
E-divisive with a Welch t-test on synthetic series with known steps; docs/reports.md gives the
numbers and why this one is used.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from .ranks import rank_sum_counts, ranks

#: A step is reported only where the level moves by at least this fraction: smaller moves are within
#: what the gate calls unchanged, and a report of them is noise to the reader.
STEP_MIN_CHANGE = 0.05
#: Runs a level holds, except the newest: a level of two old runs is as likely two contended runs
#: side by side as a change, while a step in the last two runs is shown the morning after.
MIN_LEVEL = 3
NEWEST_MIN_LEVEL = 2
#: Two neighbouring levels are kept apart only where a Mann-Whitney rank test between their runs gives
#: a two-sided p-value at most this: the fit alone splits off a cluster of contended runs (their excess
#: is large against the quiet runs' noise), the ranks see one or two high runs for what they are. 0.05,
#: not less: ten runs split 3 + 7 cannot give less than 0.017, and short series are the common case.
MAX_PVALUE = 0.05


@dataclass(frozen=True)
class ChangePoint:
    """A change of level: ``index`` is the first point of the new level; ``before`` and ``after`` the
    medians of the levels either side."""

    index: int
    before: float
    after: float

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else math.inf


class _Level:
    """A growing segment of a series: its running median and the sum of absolute deviations from it
    (two heaps, so extending a segment by one value costs O(log n))."""

    def __init__(self) -> None:
        self.low: list[float] = []  # max-heap (negated) of the lower half
        self.high: list[float] = []  # min-heap of the upper half
        self.sum_low = self.sum_high = 0.0

    def add(self, value: float) -> None:
        if not self.low or value <= -self.low[0]:
            heapq.heappush(self.low, -value)
            self.sum_low += value
        else:
            heapq.heappush(self.high, value)
            self.sum_high += value
        if len(self.low) > len(self.high) + 1:
            moved = -heapq.heappop(self.low)
            self.sum_low -= moved
            heapq.heappush(self.high, moved)
            self.sum_high += moved
        elif len(self.high) > len(self.low):
            moved = heapq.heappop(self.high)
            self.sum_high -= moved
            heapq.heappush(self.low, -moved)
            self.sum_low += moved

    @property
    def cost(self) -> float:
        median = -self.low[0]
        return (median * len(self.low) - self.sum_low) + (self.sum_high - median * len(self.high))


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def robust_sigma(values: list[float]) -> float:
    """The series' point-to-point noise: the median successive difference / (0.6745 sqrt 2), which
    estimates sigma even across a step; floored at 0.1 % of the level so a perfectly flat series does
    not turn every wiggle into a level."""
    diffs = sorted(abs(b - a) for a, b in zip(values, values[1:]))
    return max(diffs[len(diffs) // 2] / (0.6745 * math.sqrt(2)), abs(median(values)) * 1e-3, 1e-12)


def _costs(values: list[float]) -> list[float]:
    """``costs[k]``: the L1 cost of ``values[:k]`` about its median, for every k (one pass, two heaps)."""
    level, costs = _Level(), [0.0]
    for value in values:
        level.add(value)
        costs.append(level.cost)
    return costs


def _split(values: list[float], lo: int, hi: int, penalty: float, newest: bool, min_level: int,
           newest_min_level: int) -> int | None:
    """The best split of ``values[lo:hi]`` into two levels, where it lowers the cost by more than ``penalty``."""
    left = _costs(values[lo:hi])
    right = _costs(values[lo:hi][::-1])[::-1]  # right[k]: cost of values[lo + k:hi]
    size = hi - lo
    shortest_right = newest_min_level if newest else min_level
    candidates = range(min_level, size - shortest_right + 1)
    if not candidates:
        return None
    k = min(candidates, key=lambda k: left[k] + right[k])
    return lo + k if left[size] - (left[k] + right[k]) > penalty else None


def rank_pvalue(a: list[float], b: list[float]) -> float:
    """The two-sided Mann-Whitney p-value of ``a`` against ``b``: exact for small samples, the normal
    approximation (with continuity correction) beyond 2,500 pairs."""
    m, n = len(a), len(b)
    joint = ranks(a + b)
    u = sum(joint[:m]) - m * (m + 1) / 2
    low = min(u, m * n - u)
    if m * n <= 2500:
        m, n = min(m, n), max(m, n)
        counts = rank_sum_counts(m, n, m * n)
        tail = sum(counts[:math.floor(low + 1e-9) + 1])
        return min(1.0, 2 * tail / math.comb(m + n, m))
    sd = math.sqrt(m * n * (m + n + 1) / 12)
    z = (m * n / 2 - low - 0.5) / sd
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def detect(values: list[float], min_change: float = STEP_MIN_CHANGE, min_level: int = MIN_LEVEL,
           newest_min_level: int = NEWEST_MIN_LEVEL, max_pvalue: float | None = MAX_PVALUE) -> list[ChangePoint]:
    """Where a series changes level, oldest first.

    Binary segmentation under absolute error (a median per level): a level is split where that lowers
    the cost by more than ``2 sigma log n`` (sigma from :func:`robust_sigma`); O(n log n) per split, so
    a 1,000-run series takes milliseconds. A level holds ``min_level`` runs, the newest
    ``newest_min_level``; neighbouring levels whose runs a rank test cannot tell apart (p above
    ``max_pvalue``; None keeps every split) are joined again, the least distinct first; a change under
    ``min_change`` is not a step.
    """
    n = len(values)
    if n < min_level + newest_min_level:
        return []
    penalty = 2 * robust_sigma(values) * math.log(n)
    breaks: list[int] = []
    pending = [(0, n)]
    while pending:
        lo, hi = pending.pop()
        split = _split(values, lo, hi, penalty, hi == n, min_level, newest_min_level)
        if split is not None:
            breaks.append(split)
            pending += [(lo, split), (split, hi)]
    breaks.sort()
    while max_pvalue is not None and breaks:
        edges = [0, *breaks, n]
        pvalues = [rank_pvalue(values[edges[k - 1]:edges[k]], values[edges[k]:edges[k + 1]])
                   for k in range(1, len(edges) - 1)]
        worst = max(range(len(breaks)), key=pvalues.__getitem__)
        if pvalues[worst] <= max_pvalue:
            break
        del breaks[worst]
    return significant(values, breaks, min_change)


def significant(values: list[float], breaks: list[int], min_change: float = STEP_MIN_CHANGE) -> list[ChangePoint]:
    """The breaks (first indices of new segments) whose segments' medians differ by ``min_change`` or more."""
    edges = [0, *breaks, len(values)]
    points = []
    for k in range(1, len(edges) - 1):
        before = median(values[edges[k - 1]:edges[k]])
        after = median(values[edges[k]:edges[k + 1]])
        if before and abs(after / before - 1) >= min_change:
            points.append(ChangePoint(edges[k], before, after))
    return points
