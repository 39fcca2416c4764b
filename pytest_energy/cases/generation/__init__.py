"""Text generation by a decoder-only model, with prefill and decode measured apart.

A :class:`GenerationCase` collects one test per variant; with ``--energy`` the test makes two
records, labelled ``prefill`` and ``decode``. Each is a measurement of its own (its rounds, its
uncertainty, its baseline and its verdict), so the gate can say that decode got dearer while prefill
did not (a lost key/value cache, a slower attention kernel), which one summed figure would hide. Both
records' unit is one query (an inference), so each carries energy per 1,000 queries; the decode record
also gives energy per generated token, and it holds the prefill record's energy per query
(``case.generation``), so it states the whole query (``pytest_energy.core.figures.query_split``).

With ``concurrency`` (``GenerationCase(concurrency=[1, 8, 32])``) the case is served under load instead:
at each level its requests arrive together and are decoded as a batch of that many sequences that refills
as they finish (continuous batching, :mod:`pytest_energy.cases.generation.serving`), and the test makes one
record per level, labelled ``concurrency=N``: energy per output token over the steady state (from when
the batch first fills until it starts to drain, the ML.ENERGY benchmark's definition), its tokens per
second, and the whole run's energy per output token beside it (``pytest_energy.core.figures.serving_figures``).

Importing this module is cheap; the runner below loads torch and transformers when its test runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..base import DTYPES, Case, Fallback, ModelSource, PackagedModel, check_metrics, describe_model, one_line_failures
from ..data import Dataset
from ..declare import _variants
from ..tasks import get_task


@dataclass(frozen=True)
class GenerationCase(Case):
    """Energy per 1,000 queries and per generated token of a causal LM, prefill and decode apart.

    Each query is a prompt from ``dataset`` (cycled, as an inference case's examples are); the model
    writes exactly ``max_new_tokens`` tokens greedily (``min_new_tokens = max_new_tokens``: end-of-text does
    not stop it), so every run does the same work. Quality is scored on the text up to the first
    end-of-text against the example's ``continuation``.
    """

    model: ModelSource
    dataset: Dataset
    inferences: int = 1000  # queries
    batch_size: int = 1
    max_new_tokens: int = 32  # generated per query, exactly (prefill makes the first, decode the rest)
    device: str = "auto"
    dtype: str = "float32"
    fallback: Fallback | None = None
    quality: Mapping[str, float] = field(default_factory=dict)
    metrics: Sequence[str] | None = None  # default: the text-generation task's
    columns: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""
    max_input_tokens: int = 256
    bertscore_model: str | Path | PackagedModel | None = None
    bertscore_layers: int | None = None
    rounds: int = 5
    warmup: int = 10  # unmeasured calls before each phase's rounds
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Served under load: one record per level, ``inferences`` requests each (see the module docstring).
    concurrency: Sequence[int] = ()
    min_new_tokens: int | None = None  # served: requests ask for min_new_tokens..max_new_tokens, spread evenly

    task = "text-generation"  # not a field: a generation case has one task
    SETTINGS = ("prefix", "max_input_tokens", "max_new_tokens")

    def __post_init__(self) -> None:
        owner = f"GenerationCase({describe_model(self.model)})"
        if self.inferences < 1 or self.batch_size < 1 or self.rounds < 1 or self.warmup < 0:
            raise ValueError(f"{owner}: inferences, batch_size and rounds must be >= 1 and warmup >= 0")
        if self.max_new_tokens < 2:
            raise ValueError(f"{owner}: max_new_tokens must be >= 2 (prefill makes the first token, decode the rest)")
        _check_serving(self, owner)
        if self.dtype not in DTYPES:
            raise ValueError(f"{owner}: dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"{owner}: device {self.device!r}; expected 'auto', 'cpu' or 'cuda[:N]'")
        spec = get_task(self.task, owner)
        check_metrics(owner, spec.metrics, self.chosen_metrics, self.quality)
        if "bertscore" in self.chosen_metrics and not (self.bertscore_model and self.bertscore_layers):
            raise ValueError(f"{owner}: BERTScore needs bertscore_model and bertscore_layers")
        if self.fallback is not None and self.fallback.overrides:
            for name in self.fallback.overrides:
                if name not in ("quality", "inferences", "rounds", "warmup", "max_new_tokens", "batch_size",
                                "concurrency", "min_new_tokens"):
                    raise ValueError(f"{owner}: fallback overrides {name!r}, which is not a field it can change")
            dataclasses.replace(self, fallback=None, **self.fallback.overrides)
        _variants(self, owner)

    @property
    def chosen_metrics(self) -> tuple[str, ...]:
        """The metrics this case computes."""
        return tuple(self.metrics) if self.metrics is not None else get_task(self.task).default_metrics

    def tests(self, name: str) -> list[tuple[str, Callable[[Any], None]]]:
        """One test per variant; each measures prefill, then decode."""
        owner = f"GenerationCase({describe_model(self.model)})"
        return [(f"{name}[{label}]" if label else name, one_line_failures(partial(_run, case)))
                for label, case in _variants(self, owner)]


def _check_serving(case: GenerationCase, owner: str) -> None:
    levels = list(case.concurrency)
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in levels) or len(set(levels)) < len(levels):
        raise ValueError(f"{owner}: concurrency {levels!r}; expected distinct whole numbers >= 1, e.g. [1, 8, 32]")
    if levels and case.inferences < 2 * max(levels):
        raise ValueError(f"{owner}: {case.inferences} requests (inferences) for concurrency {max(levels)}; a level needs "
                         "twice its concurrency at least, so that the batch refills before it drains")
    if case.min_new_tokens is not None and not 1 <= case.min_new_tokens <= case.max_new_tokens:
        raise ValueError(f"{owner}: min_new_tokens {case.min_new_tokens}; expected 1 to max_new_tokens "
                         f"({case.max_new_tokens})")


def _run(case: GenerationCase, energy: Any) -> None:
    from .runner import run_generation, run_served

    (run_served if case.concurrency else run_generation)(case, energy)
