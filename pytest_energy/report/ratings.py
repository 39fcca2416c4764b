"""The ratings a report gives a record: AI-Energy-Score-style stars for an inference case against its
task's range, and a carbon-efficiency class for a fine-tune."""

from __future__ import annotations

import math
from typing import Any

from ..record import Record
from ..units import JOULES_PER_WH, finite_number

CLASSES = "ABCDE"


def is_fine_tune(record: Record) -> bool:
    """A fine-tune case, as the cases module marks it (``extra["case"]`` is "fine-tune", or a dict
    whose ``kind`` is)."""
    case = record.extra.get("case") if isinstance(record.extra, dict) else None
    return (case.get("kind") if isinstance(case, dict) else case) == "fine-tune"


def star_rating(value: float, reference_range: tuple[float, float]) -> int:
    """AI Energy Score style: the task's range (lowest, highest energy) cut into five equal bands;
    5 stars for the lowest 20 %, 1 star for the highest; values outside the range get 5 or 1."""
    low, high = (float(v) for v in reference_range)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"reference range {reference_range!r}: expected (lowest, highest) with highest > lowest")
    if not math.isfinite(value):
        raise ValueError(f"energy {value!r}: cannot be rated")
    band = math.floor((value - low) / (high - low) * 5)
    return 5 - min(4, max(0, band))


def _reference_range(raw: Any) -> tuple[float, float] | None:
    if isinstance(raw, dict):
        raw = (raw.get("low"), raw.get("high"))
    if isinstance(raw, (list, tuple)) and len(raw) == 2:
        try:
            return float(raw[0]), float(raw[1])
        except (TypeError, ValueError):
            return None
    return None


def rated_wh_per_1000(record: Record) -> tuple[float | None, str]:
    """What the AI Energy Score rates: gross GPU Wh per 1,000 iterations (all devices where no GPU
    was measured, and then said so)."""
    if record.iterations <= 0:
        return None, "no valid rounds"
    gpus = [c for c in record.components if c.kind == "gpu"]
    used = gpus or record.components
    joules = math.fsum(c.gross_joules for c in used)
    basis = "gross GPU energy" if gpus else "gross energy of " + ", ".join(c.device for c in used) + " (no GPU)"
    return finite_number(joules / record.iterations * 1000 / JOULES_PER_WH), basis


def rating(record: Record) -> tuple[int | None, str]:
    """Stars for a record carrying ``extra["reference_range"]`` (Wh per 1,000, lowest and highest of
    its task), with a line saying what was rated; (None, "") without a range."""
    raw = record.extra.get("reference_range") if isinstance(record.extra, dict) else None
    if raw is None:
        return None, ""
    reference = _reference_range(raw)
    value, basis = rated_wh_per_1000(record)
    if reference is None or value is None:
        return None, f"not rated: reference range {raw!r} or energy unusable"
    try:
        stars = star_rating(value, reference)
    except ValueError as error:
        return None, f"not rated: {error}"
    return stars, (f"{value:.4g} Wh per 1,000 ({basis}) in the task range "
                   f"{reference[0]:.4g}-{reference[1]:.4g} Wh")


def _first_metric(records: list[Record]) -> str | None:
    """The first quality metric every record reports as a number (higher is better)."""
    common = None
    for record in records:
        names = {m for m, d in record.quality.items()
                 if isinstance(d, dict) and finite_number(d.get("value")) is not None and d.get("higher_is_better", True)}
        common = names if common is None else common & names
    return min(common) if common else None


def carbon_efficiency_classes(records: list[Record]) -> list[tuple[str | None, str]]:
    """A carbon-efficiency class A (best) to E per fine-tune record, after Castaño et al. (2023).

    Their classification places a model's emissions against what it delivers (model size, data,
    performance) within a reference population, in five bands like an energy label. The population
    here is the fine-tunes being reported (their Hub data set is not bundled): each record is ranked
    on lower emissions and on every attribute all records carry (a quality metric, parameters,
    training input tokens) per gram; the mean percentile rank gives the band. One record alone cannot be
    ranked and gets None with the reason.
    """
    if len(records) < 2:
        return [(None, "a single fine-tune case: classes compare two or more")] * len(records)
    grams = [finite_number(r.co2_grams) for r in records]
    if any(g is None or g <= 0 for g in grams):
        return [(None, "a fine-tune case has no positive CO2 figure")] * len(records)
    attributes: dict[str, list[float]] = {"lower emissions": [1 / g for g in grams]}
    metric = _first_metric(records)
    if metric:
        attributes[f"{metric} per g"] = [r.quality[metric]["value"] / g for r, g in zip(records, grams)]
    for key in ("parameters", "tokens_in"):  # model size; training data (input tokens over every step)
        values = [finite_number(r.proxies.get(key)) for r in records]
        if all(v is not None for v in values):
            attributes[f"{key} per g"] = [v / g for v, g in zip(values, grams)]
    n = len(records)
    ranks = [0.0] * n
    for values in attributes.values():
        for i, value in enumerate(values):
            below = sum(1 for other in values if other < value)
            ties = sum(1 for other in values if other == value) - 1
            ranks[i] += (below + 0.5 * ties) / (n - 1) / len(attributes)
    basis = f"ranked among {n} fine-tune cases on {', '.join(attributes)} (Castaño et al. 2023 style)"
    return [(CLASSES[min(4, int((1 - rank) * 5))], basis) for rank in ranks]
