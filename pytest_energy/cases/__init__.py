"""Declarative ML cases collected as tests: inference and fine-tune energy with quality budgets.

Importing this package is cheap (no torch, transformers or pytest); the runners load them when a
case's test runs. See docs/cases.md.

May import: core, stats, measure.
"""

from __future__ import annotations

from .metrics import Metric, Score, register_metric
from . import builtin
from .generation import tasks as generative  # noqa: F401  (the bundled tasks register themselves)
from .base import Case, CaseFailure, Fallback, ModelUnavailableError, PackagedModel, QualityBudgetError
from .declare import FineTuneCase, InferenceCase, PruningSweep
from .generation import GenerationCase
from .tasks import Output, Task, get_task, register_task, registered_tasks

__all__ = ["Case", "CaseFailure", "Fallback", "FineTuneCase", "GenerationCase", "InferenceCase", "Metric",
           "ModelUnavailableError", "Output", "PackagedModel", "PruningSweep", "QualityBudgetError", "Score", "Task",
           "get_task", "register_metric", "register_task", "registered_tasks"]
