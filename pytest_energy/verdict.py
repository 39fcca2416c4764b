"""Verdicts: this run's rounds against a baseline's, turned into improvement / unchanged / regression /
inconclusive, plus "new" (no baseline) and "incomparable" (baseline from other hardware)."""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("regression", "inconclusive", "improvement", "unchanged", "new", "incomparable")


@dataclass
class Verdict:
    """The judgement of one metric of one record against one baseline set."""

    name: str  # record name
    metric: str  # "energy" or a quality metric name ("rougeL", "accuracy", ...)
    status: str  # one of STATUSES
    ratio: float | None  # current / baseline, for energy the ratio of medians
    low: float | None  # confidence interval of the ratio
    high: float | None
    threshold: float  # minimum effect size used
    baseline_set: str
    message: str  # one line, shown in the terminal and reports
    gating: bool = True  # False where the gate must not fail on it (modelled energy, not asked)
