"""The GPUs a case holds (``gpus=N``) and its model's replicas on them (data-parallel inference).

A case holds the first ``gpus`` GPUs CUDA shows its process, counted from its ``cuda:K`` device where it
names one: under ``--energy-gpus-per-worker`` that is its xdist worker's block, since the controller sets
each worker's ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs). Its record keeps those GPUs alone, each its own
component. Fewer GPUs than it asks for skips its test with the counts and what to do; a case of one GPU
on a runner without any runs on the CPU, as every case can.

The GPUs are listed through NVML, which sees them even where torch has no CUDA: the tests' fake NVML
shows GPUs that the replicas, on the CPU there, never touch, while the meter measures the held ones.
"""

from __future__ import annotations

import copy
import os
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from ..core.facts import HeldGpu
from ..measure.sources import SourceUnavailable
from ..measure.sources.nvml import visible_gpu_products
from .predictor import Predictor
from .tasks import Output


def visible() -> tuple[list[HeldGpu], str]:
    """Every GPU CUDA shows this process, in CUDA's order, and why there is none where there is none."""
    try:
        return [HeldGpu(index, uuid, product) for index, (uuid, product) in enumerate(visible_gpu_products())], ""
    except SourceUnavailable as error:
        reason = str(error)
    import torch  # no NVML (nvidia-ml-py not installed): CUDA's own list, where torch has one

    if not torch.cuda.is_available():
        return [], reason
    return [HeldGpu(index, str(getattr(torch.cuda.get_device_properties(index), "uuid", "")),
                    torch.cuda.get_device_name(index)) for index in range(torch.cuda.device_count())], ""


def hold(count: int, device: str) -> list[HeldGpu]:
    """The GPUs a case of ``count`` GPUs on ``device`` (as :func:`~pytest_energy.cases.models.pick_device`
    gave it) holds; ``unittest.SkipTest`` (a skip, with the counts and what to do) where its process sees
    fewer. A case of one GPU on a runner without any holds none and runs on the CPU."""
    gpus, reason = visible()
    first = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
    if len(gpus) >= first + count:
        return gpus[first:first + count]
    if count == 1 and not device.startswith("cuda"):
        return []
    asked = f"needs {count} GPU{'s' if count > 1 else ''}" + (f" from cuda:{first} on" if first else "")
    if not gpus:
        raise unittest.SkipTest(f"{asked} and this machine shows none ({reason or 'torch sees no CUDA GPU'}): run it "
                                f"on a runner with {first + count}")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        raise unittest.SkipTest(f"{asked}, this worker sees {len(gpus)}: run with --energy-gpus-per-worker "
                                f"{first + count} or on a runner with {first + count}")
    shown = os.environ.get("CUDA_VISIBLE_DEVICES")
    raise unittest.SkipTest(f"{asked}, this process sees {len(gpus)} (CUDA_VISIBLE_DEVICES="
                            f"{shown if shown is not None else 'unset'}): run on a runner with {first + count}")


def replica_devices(held: Sequence[HeldGpu], device: str) -> list[str]:
    """Where each replica runs: its held GPU (``cuda:N``) where the case runs on CUDA, else the CPU (torch
    without CUDA beside GPUs NVML shows: the tests' fake GPUs); one replica, on ``device``, for a case
    holding one GPU or none."""
    if len(held) < 2:
        return [device]
    return [f"cuda:{gpu.index}" if device.startswith("cuda") else "cpu" for gpu in held]


class Replicas:
    """One predictor per device, the first the case's own: :meth:`__call__` runs one batch on each at once
    (a thread each: torch releases the GIL while it computes) and gives their outputs in order. Each
    replica has its own copy of the model and of the processor (a fast tokenizer is not safe to share
    between threads)."""

    def __init__(self, first: Predictor, devices: Sequence[str]) -> None:
        self.predictors = [first] + [
            Predictor(copy.deepcopy(first.model).to(device), copy.deepcopy(first.processor), first.task,
                      device=device, case=first.case)
            for device in devices[1:]]
        self._pool = ThreadPoolExecutor(len(self.predictors)) if len(self.predictors) > 1 else None

    def __len__(self) -> int:
        return len(self.predictors)

    def __call__(self, batches: Sequence[Sequence[dict[str, Any]]]) -> list[Output]:
        """Each replica's output for its batch (``batches[i]`` on replica ``i``), in order."""
        if self._pool is None:
            return [self.predictors[0](batches[0])]
        running = [self._pool.submit(predictor, batch) for predictor, batch in zip(self.predictors, batches)]
        return [future.result() for future in running]

    def close(self) -> None:
        """Stop the replicas' threads."""
        if self._pool is not None:
            self._pool.shutdown()
