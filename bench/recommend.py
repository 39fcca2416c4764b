"""Defaults the measurements support: minimum window, rounds and minimum effect (the verdict threshold).

The criterion is the project's (:class:`pytest_energy.judge.simulation.Target`): identical work flagged as a
regression at most 1 % of the time, and 3 % more work flagged at least 95 % of the time. Among the
thresholds that meet it at some window, the largest is taken (it leaves the most room for drift
between runs, which rounds inside one run cannot see), then the shortest window that meets it with
that threshold.
"""

from __future__ import annotations

from typing import Any

from pytest_energy.judge import verdict
from pytest_energy.judge.simulation import MAX_FALSE_ALARMS, MIN_DETECTION, TARGET_EFFECT, Target


def _rate(rule: dict[str, Any], effect: float) -> float | None:
    return rule["effects"].get(f"{effect:g}", {}).get("regression_rate")


def defaults(simulated_rules: list[dict[str, Any]], rig: str, noise_from: str) -> dict[str, Any]:
    """The recommended minimum window, rounds and minimum effect from the simulated verdict rules of
    ``rig`` whose rounds were drawn from the noise model ``noise_from``."""
    rounds = verdict.minimum_rounds()
    rules = [r for r in simulated_rules if r["rig"] == rig and r["rule"] == "verdict" and r["rounds"] == rounds
             and r["noise_from"] == noise_from]
    passing = [rule for rule in rules if Target().met(_rate(rule, 0.0), _rate(rule, TARGET_EFFECT))]
    if not passing:
        return {"rig": rig, "noise_from": noise_from, "rounds": rounds, "found": False,
                "reason": (f"no window and threshold met <= {MAX_FALSE_ALARMS:.0%} false alarms with >= "
                           f"{MIN_DETECTION:.0%} detection of +{TARGET_EFFECT:.0%} at {rounds} rounds")}
    threshold = max(r["threshold"] for r in passing)
    best = min((r for r in passing if r["threshold"] == threshold), key=lambda r: r["window_seconds"])
    return {
        "rig": rig, "noise_from": noise_from, "found": True, "rounds": rounds,
        "min_window_seconds": best["window_seconds"], "min_effect": threshold,
        "false_alarm_rate": _rate(best, 0.0), "detection_rate_3pct": _rate(best, TARGET_EFFECT),
        "cv_net": best["cv"],
        "reason": (f"the largest threshold with <= {MAX_FALSE_ALARMS:.0%} false alarms and >= {MIN_DETECTION:.0%} "
                   f"detection of +{TARGET_EFFECT:.0%} at {rounds} rounds (the fewest that give the verdict an "
                   "interval), at the shortest window that reaches it"),
    }
