"""The task registry: what a case's ``task="..."`` names, in one place for bundled and user tasks alike.

A :class:`Task` says which example fields it reads, how one inference runs (``encode`` then
``predict``), how its proxies are counted, which metrics it computes by default, and, where a model
can be trained for it, how a training batch is made and how a fallback model is built. The bundled
tasks (:mod:`pytest_energy.cases.builtin`, imported by the package) register themselves through
:func:`register_task`, the same call a user's conftest makes. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..core.registry import Registry
from .metrics import metric


@dataclass
class Output:
    """What one batch produced: a prediction per example and the tokens it read and generated."""

    predictions: list[Any]
    tokens_in: int
    tokens_out: int = 0


#: ``encode(predictor, rows)``: the model's inputs for one batch (a mapping of tensors on the device, or
#: one tensor; :meth:`~pytest_energy.cases.predictor.Predictor.encode` refuses anything else in one line).
Encode = Callable[[Any, Sequence[Mapping[str, Any]]], Any]
#: ``predict(predictor, rows, inputs)``: one inference call on the encoded batch.
Predict = Callable[[Any, Sequence[Mapping[str, Any]], Any], Output]
#: ``train_batch(model, processor, task, rows, *, prefix, max_input_tokens, max_target_tokens,
#: pad_to_max, device)``: tokenized inputs and labels of one training step.
TrainBatch = Callable[..., Mapping[str, Any]]
#: ``build_fallback(fallback, task, rows, *, prefix, max_input_tokens)``: an untrained model built from a
#: config and its processor (tokenizer or image processor), with a short description of its size.
BuildFallback = Callable[..., tuple[Any, Any, str]]


@dataclass(frozen=True)
class Task:
    """A task a case can run: its data fields, one inference, its metrics, its proxies, its training.

    ``metrics`` are the names (registered in :mod:`pytest_energy.cases.metrics`) the task can compute;
    ``default_metrics`` those a case computes when it names none (default: all of ``metrics``).
    ``model_class`` and ``processor_class`` are the transformers auto classes that load a model folder
    or a cached hub model for the task. ``generates``: the task writes text (the record then gives
    energy per output token). ``work_by_shape``: one call's FLOPs depend on its input shapes alone
    (an encoder), so each shape is counted once; otherwise every call is counted. ``prepare`` turns
    one example as read (``{field: value}``) into the form ``encode`` and the metrics take, and
    ``reference`` the target into the form predictions are compared with. ``train_batch`` and
    ``build_fallback`` are ``None`` for a task no model can be trained on here (no fallback, no
    fine-tune).
    """

    name: str
    inputs: tuple[str, ...]
    target: str
    metrics: tuple[str, ...]
    encode: Encode
    predict: Predict
    default_metrics: tuple[str, ...] = ()
    model_class: str = "AutoModel"
    processor_class: str = "AutoTokenizer"
    generates: bool = False
    work_by_shape: bool = True
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    reference: Callable[[Any], Any] | None = None
    train_batch: TrainBatch | None = None
    build_fallback: BuildFallback | None = None
    # The example's texts a fallback's tokenizer learns its vocabulary from (default: the inputs, and
    # the target where text is generated).
    texts: Callable[[Mapping[str, Any]], Iterable[str]] | None = None
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # what a task's own functions want to know

    def __post_init__(self) -> None:
        owner = f"Task({self.name!r})"
        if not self.name or not self.inputs or not self.target or not self.metrics:
            raise ValueError(f"{owner}: name, inputs, target and metrics must not be empty")
        for name in self.metrics:
            metric(name, owner)  # an unknown metric fails here, with the known ones listed
        if not self.default_metrics:
            object.__setattr__(self, "default_metrics", tuple(self.metrics))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        unknown = [m for m in self.default_metrics if m not in self.metrics]
        if unknown:
            raise ValueError(f"{owner}: default metric {unknown[0]!r} is not one of its metrics")
        if self.build_fallback is not None and self.train_batch is None:
            raise ValueError(f"{owner}: a fallback is trained with train_batch: give it too")

    @property
    def trainable(self) -> bool:
        """Whether a model can be trained for this task here (a fallback, a fine-tune case)."""
        return self.train_batch is not None

    def example_texts(self, example: Mapping[str, Any]) -> Iterable[str]:
        """The texts of one example a fallback's tokenizer learns from."""
        if self.texts is not None:
            return self.texts(example)
        fields = [*self.inputs, self.target] if self.generates else list(self.inputs)
        return [str(example[name]) for name in fields]


#: Every task by name, the bundled ones first (they register when the package loads).
TASKS: Registry[Task] = Registry("task", "register_task", code=lambda entry: entry.predict,
                                 hint=" (a conftest can add one with pytest_energy.cases.register_task)")
#: The module (name, file) that registered each task, for processes that must register it again.
_REGISTERED_BY: dict[str, tuple[str, str]] = {}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Make ``task`` available to cases by its name; returns it (so it can be kept in a name).

    A second task of the same name is refused (one line) unless ``replace=True``: two conftests
    registering "ner" differently would otherwise run whichever came last. The same definition
    registered again (a conftest imported anew) replaces the first.
    """
    caller = sys._getframe(1).f_globals
    registered = TASKS.register(task, replace=replace)
    _REGISTERED_BY[task.name] = (str(caller.get("__name__", "")), str(caller.get("__file__") or ""))
    return registered


def registered_by(name: str) -> tuple[str, str]:
    """The module (its name and file) whose code registered the task ``name``, ``("", "")`` where unknown:
    a process of its own (a fine-tune's torchrun processes) imports it to have the task registered too."""
    return _REGISTERED_BY.get(name, ("", ""))


def get_task(name: str, owner: str = "case") -> Task:
    """The task registered as ``name``; raises ValueError (one line) for an unknown one."""
    return TASKS.get_entry(name, owner)


def registered_tasks() -> dict[str, Task]:
    """Every registered task by name, the bundled ones first (they register when the package loads)."""
    return dict(TASKS)
