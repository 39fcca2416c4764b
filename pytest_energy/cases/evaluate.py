"""A case's quality: its chosen metrics over its predictions, in the form records keep."""

from __future__ import annotations

from typing import Any, Sequence

from .. import quality
from .base import PackagedModel
from .data import Task


def _bertscore(case: Any, predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    source = case.bertscore_model
    if isinstance(source, PackagedModel):
        folder = source.locate()
        if folder is None:  # the score cannot be computed here; the entry says why and no budget fails on it
            return {"value": None, "computed_by": f"not computed: {source.distribution} is not installed",
                    "examples": len(predictions), "higher_is_better": True}
        name = source.name or source.distribution
    else:
        folder, name = source, ""
    result = quality.bertscore(predictions, references, model_path=folder, num_layers=case.bertscore_layers,
                               model_name=name)
    return result.to_dict()


def score(spec: Task, case: Any, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``metric -> {value, computed_by, examples, higher_is_better}`` for every metric the case computes."""
    chosen = case.chosen_metrics
    out: dict[str, dict[str, Any]] = {}
    if "accuracy" in chosen:
        out["accuracy"] = quality.accuracy(predictions, references).to_dict()
    if "f1" in chosen:
        out["f1"] = quality.f1(predictions, references).to_dict()
    if "spearman" in chosen:
        out["spearman"] = quality.spearman(predictions, references).to_dict()
    if {"rouge1", "rouge2", "rougeL"} & set(chosen):
        for result in quality.rouge(predictions, references):
            if result.metric in chosen:
                out[result.metric] = result.to_dict()
    if "meteor" in chosen:
        out["meteor"] = quality.meteor(predictions, references).to_dict()
    if "bertscore" in chosen:
        out["bertscore"] = _bertscore(case, predictions, references)
    return out
