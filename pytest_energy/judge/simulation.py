"""How often the gate's energy rule flags identical work (false alarms) and changed work (detection),
simulated from a noise model of the rounds; shared by ``pytest-energy calibrate`` and bench/.

The rule is the gate's own: :func:`pytest_energy.judge.verdict.ratio_interval` and
:func:`~pytest_energy.judge.verdict.classify`, the two calls :func:`~pytest_energy.judge.verdict.judge_energy`
makes, called directly so one interval serves every threshold. Rounds are drawn lognormal (energy is
positive and its noise scales with it; the verdict works on logarithms) from seeded generators, so a
simulation gives the same rates every time.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Sequence

from ..core.units import percent
from . import verdict

#: The project's target: identical work flagged at most 1 % of the time, +3 % flagged at least 95 %.
MAX_FALSE_ALARMS = 0.01
MIN_DETECTION = 0.95
TARGET_EFFECT = 0.03


@dataclass(frozen=True)
class Target:
    """What a decision rule must achieve: at most ``max_false_alarms`` regressions on identical work,
    and at least ``min_detection`` regressions on ``1 + effect`` times the work."""

    max_false_alarms: float = MAX_FALSE_ALARMS
    min_detection: float = MIN_DETECTION
    effect: float = TARGET_EFFECT

    def met(self, false_alarms: float | None, detected: float | None) -> bool:
        """Whether these rates (None: not simulated) meet the target."""
        return (false_alarms is not None and detected is not None
                and false_alarms <= self.max_false_alarms and detected >= self.min_detection)

    def describe(self) -> str:
        """E.g. "at most 1 % false alarms and at least 95 % detection of +3 %"."""
        return (f"at most {percent(self.max_false_alarms)} false alarms and at least "
                f"{percent(self.min_detection)} detection of +{percent(self.effect)}")


def verdict_statuses(current: Sequence[float], baseline: Sequence[float], thresholds: Sequence[float]) -> list[str]:
    """The gate's energy status for each threshold (values: per-iteration joules of each round)."""
    try:
        interval = verdict.ratio_interval(current, baseline)
    except ValueError:  # a round at or below zero (lognormal draws never are; judge_energy leaves such out)
        return ["inconclusive"] * len(thresholds)
    return [verdict.classify(interval, threshold) for threshold in thresholds]


def lognormal(chance: random.Random, cv: float) -> float:
    """A lognormal draw with mean 1 and coefficient of variation ``cv`` (1.0 exactly when cv is 0)."""
    if cv <= 0:
        return 1.0
    sigma = math.sqrt(math.log1p(cv * cv))
    return math.exp(chance.gauss(-sigma * sigma / 2, sigma))


@dataclass(frozen=True)
class NoiseModel:
    """Rounds relative to the mean of the later rounds: the first (the round after the warm-up) has
    mean ``1 + first_offset`` and spread ``first_sd``, every later one mean 1 and spread ``later_cv``."""

    name: str  # shown as where the noise came from
    later_cv: float
    first_offset: float = 0.0
    first_sd: float = 0.0

    def draw(self, chance: random.Random, rounds: int) -> list[float]:
        scale = 1 + self.first_offset
        first = scale * lognormal(chance, self.first_sd / scale if scale > 0 else 0.0)
        return [first] + [lognormal(chance, self.later_cv) for _ in range(rounds - 1)]


@dataclass
class Rates:
    """Outcomes of one rule at one effect over many trials."""

    trials: int = 0
    regression: int = 0
    improvement: int = 0

    def add(self, status: str) -> None:
        self.trials += 1
        self.regression += status == verdict.Status.REGRESSION
        self.improvement += status == verdict.Status.IMPROVEMENT

    @property
    def regression_rate(self) -> float | None:
        return self.regression / self.trials if self.trials else None

    def as_dict(self) -> dict:
        share = (lambda n: n / self.trials) if self.trials else (lambda n: None)
        return {"trials": self.trials, "regression_rate": share(self.regression),
                "improvement_rate": share(self.improvement)}


@dataclass
class Simulated:
    """Rates per threshold and effect of one noise model at one number of rounds per side."""

    rounds: int
    by_threshold: dict[float, dict[float, Rates]] = field(default_factory=dict)

    def rate(self, threshold: float, effect: float) -> float | None:
        return self.by_threshold.get(threshold, {}).get(effect, Rates()).regression_rate

    def meets(self, target: Target, threshold: float) -> bool:
        return target.met(self.rate(threshold, 0.0), self.rate(threshold, target.effect))


def simulate(model: NoiseModel, rounds: int, *, trials: int, seed: str, effects: Sequence[float],
             thresholds: Sequence[float], drift: float = 0.0) -> Simulated:
    """The gate's statuses over ``trials`` pairs of round sets (``rounds`` a side) drawn from ``model``,
    the current side doing ``1 + effect`` times the work, for each effect and threshold.

    ``drift`` is a change between the baseline's run and this one that rounds inside a run cannot see
    (a runner warming up, a neighbour's load); it is applied in the direction that hurts the rule:
    up for identical work (more false alarms), down for a change (less detection).
    """
    chance = random.Random(seed)
    result = Simulated(rounds, {threshold: {} for threshold in thresholds})
    for effect in effects:
        shift = (1 + effect) * (1 + abs(drift)) ** (1 if effect <= 0 else -1)
        for threshold in thresholds:
            result.by_threshold[threshold][effect] = Rates()
        for _ in range(trials):
            baseline = model.draw(chance, rounds)
            current = [shift * value for value in model.draw(chance, rounds)]
            for threshold, status in zip(thresholds, verdict_statuses(current, baseline, thresholds)):
                result.by_threshold[threshold][effect].add(status)
    return result
