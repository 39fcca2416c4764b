"""Measurement profiles (``--energy-profile``): a published protocol the inference cases run under, so their
figures can be set beside that protocol's published ones.

``default`` is this project's own protocol (each case's batches, inferences, rounds and dtype as declared).
``ai-energy-score`` is the AI Energy Score's (Hugging Face and partners, leaderboard of February 2025;
docs/cases.md, "The AI Energy Score profile"): the cases of the tasks it covers run 1,000 queries at batch
size 1, 10 times (each run one measured round), after 10 warm-up queries, in float32, text generation in
float16 where the device supports it; the figure is Wh per 1,000 queries, preprocess, prefill and decode
summed; stars cut a task's published range into five equal bands. A :class:`Profile` is a value: tests
make one with small counts (:meth:`Profile.with_counts`) instead of running 10,000 inferences.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

#: The profile name of records measured as their cases declare.
DEFAULT = "default"


@dataclass(frozen=True)
class Profile:
    """A measurement protocol for inference cases: which tasks it covers, how many queries each run makes,
    how many runs, at which batch size and precision, and the published star bands it rates against."""

    name: str
    tasks: tuple[str, ...]  # the task names (this project's) the protocol covers; other cases are skipped
    queries: int  # per run
    runs: int  # each run is one measured round; the figure is their mean per query
    batch_size: int
    warmup: int  # unmeasured queries before the runs
    dtype: str
    generation_dtype: str  # for ``half_precision_tasks`` where the device supports it
    half_precision_tasks: tuple[str, ...] = ()
    # Published Wh per 1,000 queries (lowest, highest) of a task, cut into five equal star bands; a task
    # missing here has no known band ("unknown"), unless its case states its own ``reference_range``.
    bands: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ""

    def with_counts(self, *, queries: int, runs: int) -> Profile:
        """The same protocol with other counts (tests: a few queries, not 10,000)."""
        if queries < 1 or runs < 1:
            raise ValueError(f"profile {self.name}: queries and runs must be >= 1")
        return dataclasses.replace(self, queries=queries, runs=runs)

    def covers(self, task: str) -> bool:
        """Whether the protocol measures cases of ``task``."""
        return task in self.tasks

    def precision(self, task: str, device: str) -> tuple[str, str]:
        """The dtype a case of ``task`` runs in on ``device`` (``"cpu"``, ``"cuda"``...), and a note where the
        protocol's precision could not be followed there ("" otherwise)."""
        if task not in self.half_precision_tasks or self.generation_dtype == self.dtype:
            return self.dtype, ""
        if device.startswith("cuda"):
            return self.generation_dtype, ""
        return self.dtype, (f"{self.name} runs {task} in {self.generation_dtype} where the device supports it; "
                            f"{device} has no fast {self.generation_dtype} kernels, so it ran in {self.dtype}")

    def case_fields(self) -> dict[str, Any]:
        """The fields of an inference case the protocol sets: every run's queries as the case's inferences,
        one round per run."""
        return {"batch_size": self.batch_size, "inferences": self.queries * self.runs, "rounds": self.runs,
                "warmup": self.warmup}


#: Every profile but the default, by name.
PROFILES: dict[str, Profile] = {
    "ai-energy-score": Profile(
        "ai-energy-score",
        tasks=("text-generation", "summarization", "question-answering", "text-classification",
               "sentence-similarity", "image-classification"),
        queries=1000, runs=10, batch_size=1, warmup=10, dtype="float32", generation_dtype="float16",
        half_precision_tasks=("text-generation",),
        bands={},  # none published in a form checked here: docs/cases.md's table
        source="AI Energy Score (huggingface.github.io/AIEnergyScore), leaderboard of February 2025",
    ),
}


def profile_names() -> tuple[str, ...]:
    """The names ``--energy-profile`` accepts, the default first."""
    return (DEFAULT, *PROFILES)


def get_profile(name: str) -> Profile | None:
    """The profile named ``name``; None for the default (each case as declared). ValueError for another."""
    if name == DEFAULT:
        return None
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(profile_names())}")
    return PROFILES[name]
