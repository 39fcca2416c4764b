"""Quality over several training runs of a case whose model is trained in the run.

Such a model's quality is one draw: another seed, another thread count or another CPU (whose arithmetic
differs in the last bits, which training amplifies) gives another figure. With
``--energy-quality-seeds K`` the case trains K times, unmeasured after its measured run: its own seed,
then the next seeds, alternating one thread and the machine's threads, and keeps each run's figures
under every quality entry (``runs``). The baseline stores them, with other runners', as the spread
between runs that later verdicts respect (:func:`pytest_energy.stats.resampling.runs_difference`).
"""

from __future__ import annotations

from typing import Any, Callable

#: Quality entries: metric -> {value, computed_by, ...} (see :mod:`pytest_energy.cases.evaluate`).
Quality = dict[str, dict[str, Any]]


def plan(seed: int, runs: int, threads: int) -> list[tuple[int, int]]:
    """(seed, threads) of the runs after the first: the next seeds, alternating 1 thread and ``threads``
    (the machine's), so the spread also holds what a change of arithmetic order does."""
    return [(seed + offset, 1 if offset % 2 else threads) for offset in range(1, runs)]


def mark_trained(quality: Quality, weights: str) -> None:
    """Say on each entry that its model was trained in this run, and the digest of the weights it trained
    to (:func:`~pytest_energy.cases.models.weights_digest`): a verdict against a baseline of other
    weights then respects the spread between runs; of the same weights, the model is the baseline's."""
    for entry in quality.values():
        entry["trained_in_run"] = True
        entry["trained_weights"] = weights


def add_runs(quality: Quality, *, runs: int, seed: int, threads: int, trained_with: int,
             retrain: Callable[[int], Quality]) -> None:
    """Train again for each run of :func:`plan` (``retrain(seed)``, run with that many torch threads)
    and keep every run's figure under each entry's ``runs``, this run's (``seed``, ``trained_with``
    threads) first. Nothing happens for one run."""
    if runs <= 1:
        return
    import torch

    figures = [({name: entry.get("value") for name, entry in quality.items()}, seed, trained_with)]
    before = torch.get_num_threads()
    for other_seed, count in plan(seed, runs, threads):
        torch.set_num_threads(count)
        try:
            found = retrain(other_seed)
        finally:
            torch.set_num_threads(before)
        figures.append(({name: entry.get("value") for name, entry in found.items()}, other_seed, count))
    for name, entry in quality.items():
        entry["runs"] = [{"value": values.get(name), "seed": run_seed, "threads": count}
                         for values, run_seed, count in figures]
