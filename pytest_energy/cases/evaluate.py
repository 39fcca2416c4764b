"""A case's quality: its chosen metrics over its predictions, in the form records keep."""

from __future__ import annotations

from typing import Any, Sequence

from ..stats.resampling import interval, seed_for
from .metrics import metric
from .tasks import Task

#: The confidence of a quality figure's interval over its examples (the energy verdicts' too).
CONFIDENCE = 0.98


def score(spec: Task, case: Any, predictions: Sequence[Any], references: Sequence[Any],
          keys: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """``metric -> {value, computed_by, examples, higher_is_better, ...}`` for every metric the case
    computes, each computed by the metric registered under its name.

    Where the metric keeps what each example contributed, the entry also holds those ``per_example``
    items, the examples' ``example_keys`` (``keys``, one per prediction) and the value's ``interval``
    (a seeded bootstrap over the examples at :data:`CONFIDENCE`).
    """
    out: dict[str, dict[str, Any]] = {}
    for name in case.chosen_metrics:
        entry = metric(name, f"task {spec.name}")
        found = entry.compute(predictions, references, case)
        result = dict(found.to_dict(), higher_is_better=entry.higher_is_better)
        if found.per_example and found.value is not None:
            if len(keys) == len(found.per_example):
                result["example_keys"] = list(keys)
            bounds = interval(found.per_example, entry.aggregate, confidence=CONFIDENCE, seed=seed_for(spec.name, name))
            if bounds is not None:
                result["interval"] = list(bounds)
                result["confidence"] = CONFIDENCE
        out[name] = result
    return out
