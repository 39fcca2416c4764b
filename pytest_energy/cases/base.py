"""What every case shares: the collection contract, model sources, failures and quality budgets.

Nothing here imports torch, transformers or pytest: the plugin imports this module at collection.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Union

from .metrics import metric
from .packaged import PackagedModel

#: Accepted ``dtype`` spellings of a case and the dtype each means.
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


class CaseFailure(AssertionError):
    """A case failed for a reason its one-line message says in full (no traceback needed)."""


class QualityBudgetError(CaseFailure):
    """A quality metric is below its budget."""


class ModelUnavailableError(CaseFailure):
    """The model cannot be loaded without a network, and the case has no fallback."""


# pytest's short test summary starts a failure's line with its exception's dotted name and cuts the line
# to the terminal's width, so "pytest_energy.cases.base.QualityBudgetError: " would leave no room for the
# message. pytest names its own outcome exceptions ("Failed: ...") the same way.
for _short in (CaseFailure, QualityBudgetError, ModelUnavailableError):
    _short.__module__ = "builtins"
del _short


@dataclass(frozen=True)
class Fallback:
    """A small model built from a transformers config, used where the named hub model is not cached.

    Its tokenizer is trained here on ``data`` (a JSONL file of the case's task); with ``steps > 0`` the
    model is then trained on the same file for that many steps, far enough that the case's quality
    budget is a real check. Trained fallbacks are kept in memory for the session, keyed by everything
    that shapes them, so variants of a case train once.
    """

    model_type: str  # a transformers model type: "distilbert", "bert", "bart", "t5", ...
    data: str | Path
    config: Mapping[str, Any] = field(default_factory=dict)  # size overrides: layers, hidden size...
    vocab_size: int = 2000
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 5e-3
    seed: int = 0
    # Case fields that apply only when the fallback runs: a model trained from scratch wants a higher
    # learning rate, and its quality budget can be tighter than the hub model's.
    overrides: Mapping[str, Any] = field(default_factory=dict)


#: A model is a hub id, a local folder, a packaged folder, or a factory returning ``(model, tokenizer)``.
ModelSource = Union[str, Path, PackagedModel, Callable[[], Any]]


def describe_model(model: ModelSource) -> str:
    """A short name for a model source, as records and test output show it."""
    if isinstance(model, PackagedModel):
        return model.name or model.distribution
    if isinstance(model, (str, Path)):
        return str(model)
    return getattr(model, "__qualname__", repr(model))


def check_metrics(owner: str, allowed: tuple[str, ...], chosen: tuple[str, ...],
                  quality: Mapping[str, float]) -> None:
    """Raise ValueError (one line) for an unknown metric, one the task cannot compute, or a budget on
    a metric the case does not compute."""
    for name in chosen:
        metric(name, owner)  # an unknown metric: one line listing the known ones
        if name not in allowed:
            raise ValueError(f"{owner}: metric {name!r} does not apply to this task; use {', '.join(allowed)}")
    for name, minimum in quality.items():
        if name not in chosen:
            raise ValueError(f"{owner}: quality budget on {name!r}, which the case does not compute "
                             f"(metrics: {', '.join(chosen)})")
        if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or not math.isfinite(minimum):
            raise ValueError(f"{owner}: quality budget {name}={minimum!r} must be a number")


def apply_quality_budget(quality: dict[str, dict[str, Any]], budget: Mapping[str, float]) -> str | None:
    """Note each budget in the record's quality entries; the failure message, or None when all are met.

    A metric with no value (not computable here, e.g. BERTScore without its model) cannot fail; its
    entry says it was not checked.
    """
    missed = []
    for name, minimum in budget.items():
        entry = quality.get(name)
        if entry is None:
            continue
        entry["budget"] = float(minimum)
        value = entry.get("value")
        if value is None:
            entry["budget_checked"] = False
            continue
        higher = entry.get("higher_is_better", True)
        passed = (value >= minimum) if higher else (value <= minimum)
        entry["budget_met"] = bool(passed)
        if not passed:
            # The metric and its figures first: pytest's short test summary keeps only the line's start.
            missed.append(f"{name} {value:.4g} {'below' if higher else 'above'} its budget {minimum:.4g} "
                          f"({entry['computed_by']})")
    return "; ".join(missed) if missed else None


class Case:
    """Base of every declared case; the plugin collects an instance found in a test module.

    :meth:`tests` returns one ``(test name, function)`` pair per variant; the function takes the
    ``energy`` fixture as its only argument.
    """

    #: The fields that decide what the model computes beyond which model it is (tokens generated, the
    #: fine-tune's recipe): :meth:`settings`.
    SETTINGS: ClassVar[tuple[str, ...]] = ()

    def tests(self, name: str) -> list[tuple[str, Callable[[Any], None]]]:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """How this case runs its model, as its :data:`SETTINGS` fields' values in JSON's types.

        Kept with the model's identity (the record's ``model.settings``), so a change of them (fewer new tokens, a
        fifth of the steps) fails the gate as a model change does, on any runner, with what it costs in
        quality and work said beside it, until the baselines record the new settings: a change within the
        noise of the quality between runs would otherwise pass unseen on another CPU.
        """
        return json.loads(json.dumps({name: getattr(self, name) for name in self.SETTINGS}, default=str))


def declaration_line(module: Path, name: str) -> int:
    """0-based line of ``name = ...`` in the module file (0 where it cannot be found): failures and
    ``-v`` point at the case's declaration, not at the runner that ran it."""
    try:
        lines = Path(module).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    pattern = re.compile(rf"^{re.escape(name)}\s*(?::[^=]*)?=")
    return next((number for number, text in enumerate(lines) if pattern.match(text)), 0)


def one_line_failures(run: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a runner so a :class:`CaseFailure` surfaces from the test function itself.

    The message is complete; re-raising it here (without its chain) keeps pytest's report to the
    test function's frame and the one line, instead of a traceback through the runner's internals.
    """

    def test(energy: Any) -> None:  # pytest injects fixtures by parameter name: this must be "energy"
        __tracebackhide__ = True  # pytest's convention: the report shows the message, not this frame
        try:
            run(energy)
        except CaseFailure as failure:
            raise type(failure)(str(failure)) from None

    return test
