"""Trend series across runs and their change points, as the session and nightly reports show them.

A trend is one test's net joules per iteration, oldest run first, each point with its run's time and,
where the history gives them, its commit and runner; its steps are the change points
(:mod:`pytest_energy.stats.changepoint`) with the commit range they fall in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from ..core.units import percent_change
from ..stats.changepoint import detect

#: Trend charts a session report draws: those of its most urgent rows (every chart is inline SVG).
SESSION_TRENDS = 60


@dataclass
class TrendPoint:
    started: str  # ISO time of the run
    joules: float  # net J per iteration
    status: str  # the energy verdict of the run ("" where none)
    commit: str = ""  # the run's git commit, where the history has it
    runner: str = ""  # the fingerprint id of the machine that measured it


@dataclass
class Step:
    """A change of level in a trend: ``index`` is the first point of the new level; the commit range
    is the last commit measured before it and the first measured after."""

    index: int
    started: str
    before: float
    after: float
    commit_before: str = ""
    commit_after: str = ""

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else math.inf

    @property
    def commits(self) -> str:
        """``abc1234..def5678``, or "" where the runs name no commit."""
        return commit_range(self.commit_before, self.commit_after)

    @property
    def text(self) -> str:
        return f"{percent_change(self.ratio)} at {self.started[:19]}" + (f" ({self.commits})" if self.commits else "")


def commit_range(before: str, after: str) -> str:
    """The commits to bisect, ``abc1234..def5678`` (each to 12 characters, "?" where unknown), or "" where
    neither is known."""
    return f"{before[:12] or '?'}..{after[:12] or '?'}" if before or after else ""


@dataclass
class Trend:
    name: str
    points: list[TrendPoint]
    steps: list[Step]


def steps_of(points: list[TrendPoint]) -> list[Step]:
    """The change points of a trend's joules, with the time and commit range of each."""
    return [Step(c.index, points[c.index].started, c.before, c.after,
                 points[c.index - 1].commit, points[c.index].commit)
            for c in detect([p.joules for p in points])]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _points(raw: Iterable[tuple[str, float, str]]) -> list[TrendPoint]:
    return [TrendPoint(str(started), float(joules), str(status or ""))
            for started, joules, status in sorted(raw, key=lambda p: str(p[0])) if _finite(joules)]


def build_trends(series: dict[str, list[tuple[str, float, str]]], names: Iterable[str],
                 limit: int | None = None) -> tuple[list[Trend], int]:
    """The trends of ``names`` in that order (regressions first), the first ``limit`` with two runs or
    more, and how many more with two runs were left out (counted, not built: a big suite has a series
    per test)."""
    trends, left_out = [], 0
    for name in names:
        raw = series.get(name, ())
        if sum(1 for point in raw if _finite(point[1])) < 2:
            continue
        if limit is not None and len(trends) >= limit:
            left_out += 1
            continue
        points = _points(raw)
        trends.append(Trend(name, points, steps_of(points)))
    return trends, left_out


def session_trends(history: Any, fingerprint_id: str | None, names: list[str]) -> tuple[list[Trend], str]:
    """A session report's trends: the history's series of this run's tests on this hardware, the
    :data:`SESSION_TRENDS` most urgent drawn, and a one-line note where some or all are missing (a
    report never fails for its history)."""
    if history is None:
        return [], "no history store yet: trends appear after the second run with --energy"
    try:
        series = dict(history.series(fingerprint_id))
    except Exception as error:  # a missing or unreadable store must not break the report
        return [], f"history unavailable: {error}"
    trends, left_out = build_trends(series, names, SESSION_TRENDS)
    if left_out:
        return trends, (f"{left_out} more series with history are not drawn here; `pytest-energy report` "
                        "draws every test of the fleet")
    return trends, "" if trends else "no test has two or more runs in the history store yet"
