"""The declarative cases: :class:`InferenceCase`, :class:`FineTuneCase` and :class:`PruningSweep`.

A case is a frozen dataclass assigned to a name in a test module; the plugin collects it as one test
per variant. Declaring a case only checks its fields; models load when its test runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..core.units import parse_energy
from .base import DTYPES, Case, Fallback, ModelSource, PackagedModel, check_metrics, describe_model, one_line_failures
from .data import Dataset
from .tasks import get_task

OPTIMIZERS = ("adamw", "adam", "sgd")
#: Fields a fallback cannot override: they decide which model loads and how, before it is known.
LOADING_FIELDS = ("model", "fallback", "task", "device", "gpus", "dtype", "variants", "prefix", "columns", "max_input_tokens")
SCHEDULES = ("linear", "constant")


def _variants(case: Any, owner: str) -> list[tuple[str, Any]]:
    """``(label, case)`` per variant: the case with each variant's fields replaced; just itself without."""
    if not case.variants:
        return [("", case)]
    names = {f.name for f in dataclasses.fields(case)} - {"variants"}
    expanded = []
    for label, overrides in case.variants.items():
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"{owner}: variant {label!r} sets unknown field {unknown[0]!r}")
        expanded.append((str(label), dataclasses.replace(case, variants={}, **overrides)))
    return expanded


def _check_common(case: Any, owner: str) -> None:
    """Raise ValueError (one line) for a field no run could use."""
    spec = get_task(case.task, owner)
    if case.dtype not in DTYPES:
        raise ValueError(f"{owner}: dtype {case.dtype!r}; expected one of {', '.join(DTYPES)}")
    if case.device != "auto" and not (case.device == "cpu" or case.device.startswith("cuda")):
        raise ValueError(f"{owner}: device {case.device!r}; expected 'auto', 'cpu' or 'cuda[:N]'")
    if isinstance(case.gpus, bool) or not isinstance(case.gpus, int) or case.gpus < 1:
        raise ValueError(f"{owner}: gpus={case.gpus!r}; expected a whole number >= 1 (the GPUs the case holds)")
    if case.gpus > 1 and case.device not in ("auto", "cuda"):
        raise ValueError(f"{owner}: gpus={case.gpus} runs on the first {case.gpus} GPUs of its process: device "
                         f"must be 'auto' or 'cuda', not {case.device!r}")
    if case.max_energy is not None:
        try:
            parse_energy(case.max_energy)
        except ValueError as error:
            raise ValueError(f"{owner}: max_energy: {error}") from None
    if "bertscore" in case.chosen_metrics and case.bertscore_model is None:
        raise ValueError(f"{owner}: BERTScore needs bertscore_model (a local folder or a PackagedModel)")
    if case.bertscore_model is not None and not case.bertscore_layers:
        raise ValueError(f"{owner}: bertscore_model needs bertscore_layers (the layer BERTScore reads)")
    check_metrics(owner, spec.metrics, case.chosen_metrics, case.quality)
    if case.fallback is not None and spec.build_fallback is None:
        raise ValueError(f"{owner}: no fallback can be trained for {spec.name}; give a real model")
    if case.max_new_tokens < 1 or case.num_beams < 1:
        raise ValueError(f"{owner}: max_new_tokens and num_beams must be >= 1")
    if case.fallback is not None and case.fallback.overrides:
        names = {f.name for f in dataclasses.fields(case)}
        for name in case.fallback.overrides:
            if name not in names or name in LOADING_FIELDS:
                raise ValueError(f"{owner}: fallback overrides {name!r}, which is not a field it can change")
        dataclasses.replace(case, fallback=None, **case.fallback.overrides)  # checks the overridden case
    _variants(case, owner)  # each variant is a case too: its fields are checked now, at declaration


def _metrics(case: Any) -> tuple[str, ...]:
    if case.metrics is not None:
        return tuple(case.metrics)
    spec = get_task(case.task)
    chosen = spec.default_metrics
    if case.bertscore_model is not None and "bertscore" in spec.metrics and "bertscore" not in chosen:
        return chosen + ("bertscore",)  # a BERTScore model given is a BERTScore wanted
    return chosen


@dataclass(frozen=True)
class InferenceCase(Case):
    """Energy per 1,000 inferences of a model on a task, and the quality of those same predictions.

    The inferences (default 1,000, batch size 1, as in "Power Hungry Processing" and the AI Energy
    Score) cycle through the dataset, exactly as many as given (the last batch cut to the rest), and are
    split over the measured rounds, each making at least its share rounded up; the record's unit is one
    inference. Where text is generated the record also gives energy per output token.
    """

    model: ModelSource
    task: str
    dataset: Dataset
    inferences: int = 1000
    batch_size: int = 1
    device: str = "auto"  # "auto": the first CUDA GPU where there is one, else the CPU
    # The GPUs the case holds, the first of its process's (its xdist worker's block): one replica of the
    # model on each, the batches split across them (data-parallel); its record keeps these GPUs alone.
    gpus: int = 1
    dtype: str = "float32"
    fallback: Fallback | None = None
    max_energy: float | str | None = None  # gross, per 1,000 inferences: joules or "0.2 Wh"
    quality: Mapping[str, float] = field(default_factory=dict)  # metric -> minimum value
    metrics: Sequence[str] | None = None  # default: the task's standard set
    columns: Mapping[str, str] = field(default_factory=dict)  # task field -> dataset column
    # (lowest, highest) Wh per 1,000 inferences of the task on this hardware, e.g. from the AI Energy
    # Score leaderboard on an H100: the report rates the case 1-5 stars within it.
    reference_range: tuple[float, float] | None = None
    prefix: str = ""  # put before every input, e.g. "summarize: " for T5
    max_input_tokens: int = 512
    max_new_tokens: int = 48
    num_beams: int = 1
    bertscore_model: str | Path | PackagedModel | None = None
    bertscore_layers: int | None = None
    rounds: int = 5  # measured rounds; each makes at least its share of the inferences, rounded up
    warmup: int = 10  # unmeasured batches first (optimum-benchmark, behind the AI Energy Score, uses 10)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    SETTINGS = ("prefix", "max_input_tokens", "max_new_tokens", "num_beams")

    def __post_init__(self) -> None:
        owner = f"InferenceCase({describe_model(self.model)})"
        if self.inferences < 1 or self.batch_size < 1:
            raise ValueError(f"{owner}: inferences and batch_size must be >= 1")
        if self.rounds < 1 or self.warmup < 0:
            raise ValueError(f"{owner}: rounds must be >= 1 and warmup >= 0")
        if self.reference_range is not None and not (
                len(self.reference_range) == 2 and 0 <= self.reference_range[0] < self.reference_range[1]):
            raise ValueError(f"{owner}: reference_range {self.reference_range!r}; expected (lowest, highest) "
                             "Wh per 1,000 inferences with lowest < highest")
        _check_common(self, owner)

    @property
    def chosen_metrics(self) -> tuple[str, ...]:
        """The metrics this case computes."""
        return _metrics(self)

    def tests(self, name: str) -> list[tuple[str, Callable[[Any], None]]]:
        """One test per variant; each runs the case with the ``energy`` fixture."""
        owner = f"InferenceCase({describe_model(self.model)})"
        return [(f"{name}[{label}]" if label else name, one_line_failures(partial(_run_inference, case)))
                for label, case in _variants(self, owner)]


@dataclass(frozen=True)
class FineTuneCase(Case):
    """Energy of a whole fine-tune (one measured block), per step and per epoch, and quality after it.

    Training batches are padded to ``max_input_tokens`` / ``max_target_tokens``, so every step does the
    same work: energy per step is comparable between runs and the FLOP proxy is exact. The steps are
    measured in ``rounds`` (after ``warmup`` steps measured apart), so energy per step gets a verdict
    with an interval, as an inference case's does.
    """

    model: ModelSource
    task: str
    train: Dataset
    eval: Dataset
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 16
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    schedule: str = "linear"  # linear warm-up then linear decay to 0, or constant after warm-up
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0  # gradient clipping, as transformers' Trainer; None: none
    seed: int = 0
    device: str = "auto"
    # The GPUs the case holds, the first of its process's: above 1, one torchrun process per GPU trains
    # under DistributedDataParallel, each on its share of every step's batch (cases/torchrun.py).
    gpus: int = 1
    dtype: str = "float32"  # the weights' dtype while training
    fallback: Fallback | None = None
    max_energy: float | str | None = None  # gross, for the whole fine-tune
    quality: Mapping[str, float] = field(default_factory=dict)  # measured on ``eval`` after training
    metrics: Sequence[str] | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""
    max_input_tokens: int = 128
    max_target_tokens: int = 48
    max_new_tokens: int = 48
    num_beams: int = 1
    eval_examples: int | None = None  # default: all of ``eval``
    bertscore_model: str | Path | PackagedModel | None = None
    bertscore_layers: int | None = None
    # LoRA adapters through peft (peft.LoraConfig's fields, e.g. {"r": 16, "target_modules": ["q_proj",
    # "v_proj"]}); None, or peft not installed: every weight trains (the record says which).
    lora: Mapping[str, Any] | None = None
    # The measurement's protocol, as an InferenceCase's: rounds the steps are split into, each at least
    # --energy-min-window long where the steps allow; unmeasured-per-step warm-up steps first (their window
    # counts in the whole fine-tune's joules). Not the learning rate's ``warmup_steps``.
    rounds: int = 5
    warmup: int = 5
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    SETTINGS = ("steps", "epochs", "batch_size", "learning_rate", "weight_decay", "optimizer", "schedule",
                "warmup_steps", "max_grad_norm", "seed", "lora", "prefix", "max_input_tokens", "max_target_tokens",
                "max_new_tokens", "num_beams")

    def __post_init__(self) -> None:
        owner = f"FineTuneCase({describe_model(self.model)})"
        if self.rounds < 1 or self.warmup < 0:
            raise ValueError(f"{owner}: rounds must be >= 1 and warmup >= 0")
        if self.lora is not None and (not isinstance(self.lora, Mapping) or int(self.lora.get("r", 8)) < 1):
            raise ValueError(f"{owner}: lora must be peft.LoraConfig's fields as a mapping, with r >= 1")
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"{owner}: give exactly one of steps or epochs")
        if (self.steps is not None and self.steps < 1) or (self.epochs is not None and self.epochs <= 0):
            raise ValueError(f"{owner}: steps must be >= 1 and epochs > 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"{owner}: optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"{owner}: schedule {self.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if self.batch_size < 1 or self.learning_rate <= 0 or self.warmup_steps < 0:
            raise ValueError(f"{owner}: batch_size >= 1, learning_rate > 0 and warmup_steps >= 0 are required")
        if isinstance(self.gpus, int) and self.gpus > 1 and self.batch_size % self.gpus:
            raise ValueError(f"{owner}: batch_size {self.batch_size} with gpus={self.gpus}: each GPU takes an equal "
                             f"share of every step's batch, so give a multiple of {self.gpus}")
        if self.max_grad_norm is not None and not (isinstance(self.max_grad_norm, (int, float))
                                                   and not isinstance(self.max_grad_norm, bool)
                                                   and 0 < self.max_grad_norm < float("inf")):
            raise ValueError(f"{owner}: max_grad_norm={self.max_grad_norm!r}: expected a number > 0, or None for no "
                             "gradient clipping")
        _check_common(self, owner)
        if not get_task(self.task).trainable:
            raise ValueError(f"{owner}: task {self.task!r} cannot be fine-tuned (it has no train_batch)")

    @property
    def chosen_metrics(self) -> tuple[str, ...]:
        """The metrics this case computes after training."""
        return _metrics(self)

    def tests(self, name: str) -> list[tuple[str, Callable[[Any], None]]]:
        """One test per variant; each fine-tunes inside one measured block, in rounds of steps."""
        owner = f"FineTuneCase({describe_model(self.model)})"
        return [(f"{name}[{label}]" if label else name, one_line_failures(partial(_run_finetune, case)))
                for label, case in _variants(self, owner)]


@dataclass(frozen=True)
class PruningSweep(Case):
    """An inference case repeated at several magnitude-pruning levels, plus 2:4 sparsity on a GPU.

    Each level prunes the smallest-magnitude weights of the base model's linear layers (heads stay
    dense) by global L1 magnitude (``torch.nn.utils.prune``), then runs the case: energy and quality per
    level. On dense kernels unstructured zeros save no work, which the sweep shows; the ``2:4`` variant
    (semi-structured sparsity, CUDA with compute capability 8.0 or newer) is where sparsity can change
    the work done, and is skipped with the reason elsewhere.
    """

    case: InferenceCase
    sparsity: Sequence[float] = (0.0, 0.3, 0.5, 0.7)
    semi_structured: bool = True
    quality_at: Mapping[float, Mapping[str, float]] = field(default_factory=dict)  # level -> budget

    def __post_init__(self) -> None:
        owner = f"PruningSweep({describe_model(self.case.model)})"
        if self.case.variants:
            raise ValueError(f"{owner}: give the base case without variants; the sweep makes its own")
        for level in self.sparsity:
            if not 0.0 <= float(level) < 1.0:
                raise ValueError(f"{owner}: sparsity {level!r} must be in [0, 1)")
        for level, budget in self.quality_at.items():
            if float(level) not in {float(s) for s in self.sparsity} and level != "2:4":
                raise ValueError(f"{owner}: quality_at names level {level!r}, which is not swept")
            check_metrics(owner, get_task(self.case.task, owner).metrics, self.case.chosen_metrics, budget)

    def levels(self) -> list[tuple[str, float | str, Mapping[str, float] | None]]:
        """``(label, level, quality budget or None)`` per level; the level is a fraction or ``"2:4"``.

        A level's ``quality_at`` budget replaces the case's for that level; where the fallback runs, its
        own ``overrides`` still win (they are the budget for the model that ran).
        """
        chosen: list[float | str] = [float(s) for s in self.sparsity] + (["2:4"] if self.semi_structured else [])
        out = []
        for level in chosen:
            label = level if isinstance(level, str) else f"{round(level * 100)}%"
            budget = next((dict(b) for k, b in self.quality_at.items() if _same_level(k, level)), None)
            out.append((label, level, budget))
        return out

    def tests(self, name: str) -> list[tuple[str, Callable[[Any], None]]]:
        """One test per pruning level."""
        return [(f"{name}[{label}]", one_line_failures(partial(_run_pruned, self.case, level, budget)))
                for label, level, budget in self.levels()]


def _same_level(key: float | str, level: float | str) -> bool:
    if isinstance(key, str) or isinstance(level, str):
        return key == level
    return float(key) == float(level)


# The runners import torch and transformers: they load when a case's test runs, never at collection.
def _run_inference(case: InferenceCase, energy: Any) -> None:
    from .runner import run_inference

    run_inference(case, energy)


def _run_finetune(case: FineTuneCase, energy: Any) -> None:
    from .runner import run_finetune

    run_finetune(case, energy)


def _run_pruned(case: InferenceCase, level: float | str, budget: Mapping[str, float] | None, energy: Any) -> None:
    from .pruning import Pruning
    from .runner import run_inference

    run_inference(case, energy, transform=Pruning(level), quality=budget)
