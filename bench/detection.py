"""Detection: how often a decision rule calls identical work a regression (A/A, false alarms) and how
often it catches 1 %, 3 % and 5 % more work (A/B), for the plugin's verdict and a bare 5 % threshold.

Two modes:

* simulated: many trials, each side's rounds drawn from the noise the noise section measured at that
  window (:func:`pytest_energy.judge.simulation.simulate`, shared with ``pytest-energy calibrate``). For the
  verdict (per-iteration net joules, what the gate compares) the first round after the warm-up and the
  later rounds are drawn apart, each lognormal with the mean and spread measured for that position
  (:class:`~pytest_energy.judge.simulation.NoiseModel`), because a first window can read differently from
  the rest; a second model draws every round like the later ones. For one number, a normal
  distribution with the CV of one window. Fast, so thousands of trials give tight rates; there is no
  drift between runs (the threshold is there for that).
* measured: real A and B measurements with the plugin's meter on a rig, alternating which goes
  first, B doing ``1 + effect`` times the work. Few trials (rates are coarse) but nothing assumed.

The verdict is the gate's (:func:`pytest_energy.judge.simulation.verdict_statuses`). A bare threshold flags
``current / baseline > 1.05`` on one number per side: one window's per-iteration joules, what a tool
that measures each test once compares.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

from pytest_energy.measure.meter import Meter
from pytest_energy.judge.simulation import NoiseModel, Rates, simulate, verdict_statuses

from .rigs import Rig

EFFECTS = (0.0, 0.01, 0.03, 0.05)
THRESHOLDS = (0.01, 0.02, 0.03, 0.05)
BARE_THRESHOLD = 0.05


def bare_flags(current: float, baseline: float, threshold: float = BARE_THRESHOLD) -> bool:
    """A bare threshold on one number: a regression when the ratio exceeds ``1 + threshold``."""
    return current / baseline > 1 + threshold


@dataclass
class Rule:
    """One decision rule's outcomes per effect."""

    rig: str
    mode: str  # "simulated" | "measured"
    rule: str  # "verdict" | "bare"
    window: float
    rounds: int  # per side (1 for a single number)
    threshold: float
    noise_from: str  # which noise figure fed it ("plugin net", "naive gross", ...)
    cv: float | None = None
    by_effect: dict[float, Rates] = field(default_factory=dict)

    def rates(self, effect: float) -> Rates:
        return self.by_effect.setdefault(effect, Rates())

    def as_dict(self) -> dict:
        return {"rig": self.rig, "mode": self.mode, "rule": self.rule, "window_seconds": self.window,
                "rounds": self.rounds, "threshold": self.threshold, "noise_from": self.noise_from, "cv": self.cv,
                "effects": {f"{effect:g}": rates.as_dict() for effect, rates in sorted(self.by_effect.items())}}


# -- simulated --------------------------------------------------------------------------------------
def simulate_verdict(rig: str, window: float, model: NoiseModel, rounds: int, trials: int, seed: int,
                     effects: Sequence[float] = EFFECTS, thresholds: Sequence[float] = THRESHOLDS) -> list[Rule]:
    """Verdict rules (one per threshold) on ``rounds`` rounds per side drawn from ``model``."""
    simulated = simulate(model, rounds, trials=trials, seed=f"verdict-{seed}-{rig}-{window}-{rounds}-{model.name}",
                         effects=effects, thresholds=thresholds)
    return [Rule(rig, "simulated", "verdict", window, rounds, t, model.name, model.later_cv,
                 simulated.by_threshold[t]) for t in thresholds]


def simulate_bare(rig: str, window: float, cv: float, noise_from: str, trials: int, seed: int,
                  effects: Sequence[float] = EFFECTS) -> Rule:
    """The bare 5 % threshold on one number per side with normal noise of ``cv``."""
    chance = random.Random(f"bare-{seed}-{rig}-{window}-{noise_from}")
    rule = Rule(rig, "simulated", "bare", window, 1, BARE_THRESHOLD, noise_from, cv)
    for effect in effects:
        for _ in range(trials):
            baseline = 1 + chance.gauss(0, cv)
            current = (1 + effect) * (1 + chance.gauss(0, cv))
            rule.rates(effect).add("regression" if bare_flags(current, baseline) else "")
    return rule


# -- measured ---------------------------------------------------------------------------------------
@dataclass
class Measurement:
    """Per-iteration joules of one measurement's rounds."""

    net: list[float]
    gross: list[float]


def _measure(meter: Meter, rig: Rig, scale: float, window: float, rounds: int, warmup: int) -> Measurement:
    taken = meter.take_rounds(rig.work(scale), (), {}, rounds=rounds, min_window=window, warmup=warmup)
    valid = [r for r in meter.account(taken).rounds if r.valid]
    return Measurement([r.net_joules / r.iterations for r in valid], [r.gross_joules / r.iterations for r in valid])


def measured_trials(rig: Rig, effects: Sequence[float], *, window: float, rounds: int, trials: int, warmup: int,
                    idle_seconds: float, thresholds: Sequence[float] = THRESHOLDS) -> list[Rule]:
    """Real A/B trials on one rig, every effect in turn; A and B alternate which is measured first."""
    meter = Meter(rig.open_channels())
    meter.start(idle_seconds)
    rules = [Rule(rig.key, "measured", "verdict", window, rounds, t, "plugin net") for t in thresholds]
    bare = Rule(rig.key, "measured", "bare", window, 1, BARE_THRESHOLD, "plugin gross, first window")
    try:
        for trial in range(trials):
            for effect in effects:
                scales = [1.0, 1.0 + effect] if trial % 2 == 0 else [1.0 + effect, 1.0]
                taken = {}
                for scale in scales:
                    time.sleep(0.1)  # an idle gap, as between two tests
                    taken[scale] = _measure(meter, rig, scale, window, rounds, warmup)
                a, b = taken[1.0], taken[1.0 + effect]
                for rule, status in zip(rules, verdict_statuses(b.net, a.net, thresholds)):
                    rule.rates(effect).add(status)
                if a.gross and b.gross:
                    bare.rates(effect).add("regression" if bare_flags(b.gross[0], a.gross[0]) else "")
    finally:
        meter.close()
    return [*rules, bare]


def measured_parallel(rigs: dict[float, Rig], **options: Any) -> list[Rule]:
    """:func:`measured_trials` for simulated rigs, one effect per rig and thread, merged per rule."""
    with ThreadPoolExecutor(len(rigs)) as pool:
        parts = list(pool.map(lambda item: measured_trials(item[1], [item[0]], **options), rigs.items()))
    merged = parts[0]
    for part in parts[1:]:
        for into, rule in zip(merged, part):
            into.by_effect.update(rule.by_effect)
    for rule in merged:
        rule.rig = "sim"
    return merged
