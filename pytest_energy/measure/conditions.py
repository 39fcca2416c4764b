"""A device's conditions during a measurement: temperature, SM clock, power limit, throttle reasons.

Zeus found a GPU's energy tracking its starting temperature, and a power cap or thermal slowdown
changes energy per unit of work as a different GPU would. The meter reads each GPU's conditions at
every window edge (on a thread of its own, off the measured thread) and a record's component keeps
them as ``{"start": {...}, "end": {...}, "throttled_windows": N, "throttling": [reasons]}`` (and
``"cooldown"`` where ``--energy-cooldown`` waited before it); this module says what they mean:
which throttle reasons are heat or power (:data:`THROTTLING`), how a component's conditions read
(:func:`describe`), how they differ from a baseline's (:func:`difference`), and the session's one
line on the measurements that throttled (:func:`throttled_line`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

#: Throttle reasons (NVML's clock event reasons, as the sources name them) that mean heat or a power
#: cap held the clocks down, as opposed to idling or a clock setting.
THROTTLING = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                        "hw_power_brake_slowdown"})
#: A starting temperature this much warmer or cooler than the baseline's is worth saying on a verdict.
TEMPERATURE_STEP_DEGC = 5.0


def throttling(state: Mapping[str, Any]) -> list[str]:
    """The heat or power reasons among one reading's ``throttle_reasons``, sorted."""
    return sorted(THROTTLING.intersection(state.get("throttle_reasons") or ()))


#: Measurements named in the session's throttling line; the JSON has every one.
THROTTLED_NAMES_SHOWN = 5


def throttled_line(measurements: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The session's one line on throttling, from each measurement's components' conditions (name ->
    conditions): "thermal or power throttling (sw_power_cap) in 4 window(s) of 2 measurement(s): a, b;
    ..."; "" where no window throttled."""
    names, windows, reasons = [], 0, set()
    for name, components in measurements.items():
        throttled = [c for c in components if c.get("throttled_windows")]
        if throttled:
            names.append(name)
            windows += sum(c["throttled_windows"] for c in throttled)
            reasons.update(reason for c in throttled for reason in c.get("throttling") or ())
    if not names:
        return ""
    listed = ", ".join(names[:THROTTLED_NAMES_SHOWN]) + (
        f" and {len(names) - THROTTLED_NAMES_SHOWN} more" if len(names) > THROTTLED_NAMES_SHOWN else "")
    return (f"thermal or power throttling ({', '.join(sorted(reasons))}) in {windows} window(s) of {len(names)} "
            f"measurement(s): {listed}; their energy was taken below the GPU's clocks (each record's conditions "
            "say where)")


def _mean(states: Mapping[str, Mapping[str, Any]], key: str) -> float | None:
    values = [s[key] for s in states.values() if isinstance(s.get(key), (int, float)) and math.isfinite(s[key])]
    return sum(values) / len(values) if values else None


def _limits(states: Mapping[str, Mapping[str, Any]]) -> str:
    values = sorted({float(s["power_limit_watts"]) for s in states.values()
                     if isinstance(s.get("power_limit_watts"), (int, float))})
    return "/".join(f"{v:g} W" for v in values)


def difference(current: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]], *,
               power_limit: bool = True) -> str:
    """How the devices' starting conditions differ from the baseline's, or "": "+9 degC, power limit
    700 W -> 500 W". ``current`` and ``baseline`` map device -> starting conditions; temperatures are
    compared as means over the devices, power limits as the set of limits (left out with
    ``power_limit=False``, where the verdict says it already)."""
    parts = []
    now, then = _mean(current, "temperature_c"), _mean(baseline, "temperature_c")
    if now is not None and then is not None and abs(now - then) >= TEMPERATURE_STEP_DEGC:
        parts.append(f"{now - then:+.0f} degC")
    limits_now, limits_then = _limits(current), _limits(baseline)
    if power_limit and limits_now and limits_then and limits_now != limits_then:
        parts.append(f"power limit {limits_then} -> {limits_now}")
    return ", ".join(parts)


def _span(start: Mapping[str, Any], end: Mapping[str, Any], key: str, unit: str) -> str:
    first, last = start.get(key), end.get(key)
    if first is None and last is None:
        return ""
    if first == last or last is None or first is None:
        return f"{first if first is not None else last:g}{unit}"
    return f"{first:g} -> {last:g}{unit}"


def describe(conditions: Mapping[str, Any]) -> str:
    """One component's conditions in a line: "41 -> 63 degC, SM 1980 -> 1755 MHz, power limit 700 W,
    throttled (sw_power_cap) in 2 windows, cooled down to 45C in 12 s"; "" where there are none."""
    start, end = conditions.get("start") or {}, conditions.get("end") or {}
    parts = [text for text in (_span(start, end, "temperature_c", " degC"),
                               "SM " + _span(start, end, "sm_clock_mhz", " MHz") if "sm_clock_mhz" in start else "",
                               "power limit " + _span(start, end, "power_limit_watts", " W")
                               if "power_limit_watts" in start else "") if text]
    if conditions.get("throttled_windows"):
        parts.append(f"throttled ({', '.join(conditions.get('throttling') or ())}) in "
                     f"{conditions['throttled_windows']} window(s)")
    cooldown = conditions.get("cooldown")
    if cooldown:
        verb = "cooled down" if cooldown.get("reached") else "cooldown not reached"
        parts.append(f"{verb} to {cooldown.get('target')} in {cooldown.get('waited_seconds', 0):.3g} s")
    return ", ".join(parts)
