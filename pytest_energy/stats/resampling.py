"""How far a quality figure can move by chance: over its examples, and between runs that train a model.

Two sources of spread, each measured, never assumed:

* **examples**: a figure is an aggregate of what each evaluation example contributed (a metric's
  ``Score.per_example``). A seeded bootstrap over the examples gives the figure's interval, and the
  interval of a difference to a baseline scored on the same examples (paired: each draw takes the same
  examples on both sides, so what both models get right or wrong alike cancels). The seed comes from
  the record and metric names, so an interval is the same every time it is computed from the same
  scores.
* **runs**: a model trained in the run (a fine-tune, a fallback trained here) scores differently with
  another seed, another thread count or another CPU, whose arithmetic differs in the last bits and
  training amplifies. The figure of several such runs gives a prediction interval for one more run:
  ``mean ± t(K-1) · sd · sqrt(1 + 1/K)``, Student's t because K is small.

The verdict (:func:`pytest_energy.judge.verdict.judge_quality`) uses whichever interval is wider.
"""

from __future__ import annotations

import math
import random
import statistics
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

#: Bootstrap draws: the 1 % and 99 % points of 2,000 draws move by about 0.1 standard errors between seeds.
RESAMPLES = 2000


@dataclass(frozen=True)
class Difference:
    """A difference current - baseline of a quality figure, with its interval and where that came from."""

    estimate: float
    low: float
    high: float
    source: str  # "examples" or "runs"
    detail: str  # how it was measured, for the verdict's line

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def seed_for(*parts: str) -> int:
    """A bootstrap seed from names (a record and a metric): the same interval on every computation."""
    return zlib.crc32("\x1f".join(parts).encode("utf-8"))


def _percentiles(draws: list[float], confidence: float) -> tuple[float, float]:
    draws.sort()
    tail = (1 - confidence) / 2
    low = draws[max(0, math.floor(tail * len(draws)))]
    high = draws[min(len(draws) - 1, math.ceil((1 - tail) * len(draws)) - 1)]
    return low, high


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def interval(items: Sequence[Any], aggregate: Callable[[Sequence[Any]], float], *, confidence: float,
             seed: int, resamples: int = RESAMPLES) -> tuple[float, float] | None:
    """The percentile bootstrap interval of ``aggregate(items)`` over the examples; None for fewer
    than 2 examples, or where no draw gives a finite figure."""
    if len(items) < 2:
        return None
    rng = random.Random(seed)
    count = len(items)
    draws = _finite([aggregate([items[i] for i in rng.choices(range(count), k=count)]) for _ in range(resamples)])
    return _percentiles(draws, confidence) if draws else None


def paired(current: Sequence[Any], baseline: Sequence[Any], aggregate: Callable[[Sequence[Any]], float], *,
           confidence: float, seed: int, resamples: int = RESAMPLES) -> tuple[float, float, float] | None:
    """Estimate and bootstrap interval of ``aggregate(current) - aggregate(baseline)``, the two lists
    holding the same examples in the same order (each draw takes the same examples on both sides)."""
    count = len(current)
    if count < 2 or count != len(baseline):
        return None
    estimate = aggregate(current) - aggregate(baseline)
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        chosen = rng.choices(range(count), k=count)
        draws.append(aggregate([current[i] for i in chosen]) - aggregate([baseline[i] for i in chosen]))
    draws = _finite(draws)
    if not draws or not math.isfinite(estimate):
        return None
    return (estimate, *_percentiles(draws, confidence))


def unpaired(current: Sequence[Any], baseline: Sequence[Any], aggregate: Callable[[Sequence[Any]], float], *,
             confidence: float, seed: int, resamples: int = RESAMPLES) -> tuple[float, float, float] | None:
    """As :func:`paired`, for examples that are not the same on both sides: each side drawn on its own."""
    if len(current) < 2 or len(baseline) < 2:
        return None
    estimate = aggregate(current) - aggregate(baseline)
    rng = random.Random(seed)
    draws = _finite([
        aggregate([current[i] for i in rng.choices(range(len(current)), k=len(current))])
        - aggregate([baseline[i] for i in rng.choices(range(len(baseline)), k=len(baseline))])
        for _ in range(resamples)])
    if not draws or not math.isfinite(estimate):
        return None
    return (estimate, *_percentiles(draws, confidence))


def examples_difference(current: Sequence[Any], current_keys: Sequence[str], baseline: Sequence[Any],
                        baseline_keys: Sequence[str], aggregate: Callable[[Sequence[Any]], float], *,
                        confidence: float, seed: int) -> Difference | None:
    """The difference to the baseline over the examples: paired on the examples both scored (matched
    by key), else unpaired; None where a side has no per-example scores."""
    if not current or not baseline:
        return None
    now = dict(zip(current_keys, current)) if len(current_keys) == len(current) else {}
    then = dict(zip(baseline_keys, baseline)) if len(baseline_keys) == len(baseline) else {}
    shared = [key for key in now if key in then]
    if len(shared) >= 2:
        found = paired([now[k] for k in shared], [then[k] for k in shared], aggregate, confidence=confidence,
                       seed=seed)
        left = max(len(now), len(then)) - len(shared)
        detail = (f"paired bootstrap over the {len(shared)} examples both scored"
                  + (f" ({left} not shared)" if left else ""))
    else:
        found = unpaired(list(current), list(baseline), aggregate, confidence=confidence, seed=seed)
        detail = (f"unpaired bootstrap: the {len(current)} examples here are not the baseline's "
                  f"{len(baseline)}")
    if found is None:
        return None
    estimate, low, high = found
    return Difference(estimate, low, high, "examples", detail)


def student_t_quantile(probability: float, degrees: int) -> float:
    """The ``probability`` quantile of Student's t with ``degrees`` degrees of freedom (bisection on
    its distribution function, which the regularised incomplete beta function gives)."""
    if not 0 < probability < 1 or degrees < 1:
        raise ValueError("student_t_quantile needs 0 < probability < 1 and degrees >= 1")
    if probability < 0.5:
        return -student_t_quantile(1 - probability, degrees)
    low, high = 0.0, 1.0
    while _student_t_cdf(high, degrees) < probability:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _student_t_cdf(middle, degrees) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _student_t_cdf(t: float, degrees: int) -> float:
    x = degrees / (degrees + t * t)
    tail = 0.5 * _incomplete_beta(degrees / 2, 0.5, x)
    return 1 - tail if t >= 0 else tail


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) by its continued fraction (Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return front * result / a


#: Fewest runs whose spread a verdict uses: two give a standard deviation on one degree of freedom,
#: whose t factor (63.7 at 98 %) makes any interval useless.
MIN_RUNS = 3


def runs_difference(value: float, runs: Sequence[float], *, confidence: float, described: str) -> Difference | None:
    """The difference of ``value`` to the runs' mean, with the prediction interval of one more run
    (None for fewer than :data:`MIN_RUNS` finite runs). ``described`` says which runs they were."""
    values = _finite([float(v) for v in runs])
    if len(values) < MIN_RUNS or not math.isfinite(value):
        return None
    centre = statistics.fmean(values)
    spread = statistics.stdev(values)
    factor = student_t_quantile(1 - (1 - confidence) / 2, len(values) - 1)
    margin = factor * spread * math.sqrt(1 + 1 / len(values))
    estimate = value - centre
    return Difference(estimate, estimate - margin, estimate + margin, "runs",
                      f"spread between runs: {described}, mean {centre:.4g}, sd {spread:.2g}")

