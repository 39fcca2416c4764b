"""A case's quality: its chosen metrics over its predictions, in the form records keep."""

from __future__ import annotations

from typing import Any, Sequence

from ..quality import metric
from .registry import Task


def score(spec: Task, case: Any, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``metric -> {value, computed_by, examples, higher_is_better}`` for every metric the case computes,
    each computed by the metric registered under its name."""
    out: dict[str, dict[str, Any]] = {}
    for name in case.chosen_metrics:
        entry = metric(name, f"task {spec.name}")
        out[name] = dict(entry.compute(predictions, references, case).to_dict(),
                         higher_is_better=entry.higher_is_better)
    return out
