"""Declarative ML cases collected as tests: inference and fine-tune energy with quality budgets.

Importing this package is cheap (no torch, transformers or pytest); the runners load them when a
case's test runs. See docs/cases.md.
"""

from __future__ import annotations

from .base import Case, CaseFailure, Fallback, ModelUnavailableError, PackagedModel, QualityBudgetError
from .declare import FineTuneCase, InferenceCase, PruningSweep
from .generation import GenerationCase

__all__ = ["Case", "CaseFailure", "Fallback", "FineTuneCase", "GenerationCase", "InferenceCase", "ModelUnavailableError",
           "PackagedModel", "PruningSweep", "QualityBudgetError"]
