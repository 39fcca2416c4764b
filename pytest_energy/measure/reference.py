"""The fixed reference workload each session measures once per device, for normalised verdicts.

Two GPUs of the same model, or one GPU warm and cold, differ by several percent in joules for the
same work. Dividing a test's joules by the joules of a fixed piece of work measured in the same
session cancels most of that, so a baseline recorded on one runner stays comparable on another of
the same kind. The work must never change between versions: its size is fixed here.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .meter import Meter
    from .sources.base import Channel

#: Square matrix sizes of the reference products. Changing either makes old normalised baselines
#: incomparable: don't.
GPU_SIZE = 4096
CPU_SIZE = 48
#: The longest window of one of the reference's three rounds; a session whose own windows are set
#: shorter (``--energy-min-window``) measures its reference in windows that short too: it trusts its
#: counters over them, and a test suite of short windows no longer pays 0.4 s per session for it.
WINDOW_SECONDS = 0.1


def _cuda_index(device: str) -> int | None:
    """The CUDA index for "gpu" / "gpu:N", or None for another device name."""
    kind, _, index = device.partition(":")
    if kind != "gpu":
        return None
    return int(index) if index.isdigit() else 0


def _gpu_workload(index: int) -> Callable[[], None] | None:
    """A bf16 matrix product on CUDA device ``index``, where torch is installed and sees CUDA."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch  # only here: loading the plugin must not import torch

    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    generator = torch.Generator(device=f"cuda:{index}").manual_seed(0)
    a = torch.rand(GPU_SIZE, GPU_SIZE, device=f"cuda:{index}", dtype=torch.bfloat16, generator=generator)
    b = torch.rand(GPU_SIZE, GPU_SIZE, device=f"cuda:{index}", dtype=torch.bfloat16, generator=generator)

    def workload() -> None:
        # Eight products (~1.1 TFLOP) keep one call well above kernel-launch overhead; the meter
        # synchronises CUDA at the window edges.
        for _ in range(8):
            torch.matmul(a, b)

    return workload


def _cpu_workload() -> Callable[[], None]:
    """A pure-Python matrix product: the same instructions on every machine, no BLAS threads."""
    a = [[float((i * CPU_SIZE + j) % 7) for j in range(CPU_SIZE)] for i in range(CPU_SIZE)]
    b = [[float((i + 2 * j) % 5) for j in range(CPU_SIZE)] for i in range(CPU_SIZE)]
    columns = list(zip(*b))

    def workload() -> None:
        for row in a:
            for column in columns:
                sum(x * y for x, y in zip(row, column))

    return workload


def reference_workload(device: str) -> Callable[[], None] | None:
    """The fixed workload for ``device`` ("gpu:N", "cpu", "ram", "cpu:package-0", ...): a matrix
    product of fixed size. A GPU's runs on that GPU (``gpu:N`` is ``cuda:N``: both count the GPUs CUDA
    shows) through torch; None where torch is missing or does not see it, as CPU work would say
    nothing of that GPU. Every other device gets the CPU product.
    """
    index = _cuda_index(device)
    if index is not None:
        return _gpu_workload(index)
    return _cpu_workload()


def products(channels: list[Channel]) -> dict[str, list[Channel]]:
    """The reference product each channel is measured with, as its source says
    (:meth:`~pytest_energy.measure.sources.base.Source.reference_device`): each GPU its own, the other
    devices (CPU package, DRAM, modelled CPU and RAM) one run of the CPU product ("cpu", last)."""
    from .sources import source_of

    planned: dict[str, list[Channel]] = {}
    for channel in channels:
        planned.setdefault(source_of(channel).reference_device(channel), []).append(channel)
    if "cpu" in planned:
        planned["cpu"] = planned.pop("cpu")
    return planned


def measure(meter: Meter, min_window: float = WINDOW_SECONDS) -> dict[str, float]:
    """Gross joules per iteration of the reference workload, per device of ``meter``: each GPU runs its
    own product and keeps its own joules; the other devices (CPU package, DRAM, modelled CPU and RAM)
    share one run of the CPU product (:func:`products`). A GPU torch cannot reach gets no reference.
    Each of the three rounds fills a window of ``min_window`` seconds, at most :data:`WINDOW_SECONDS`."""
    window = min(min_window, WINDOW_SECONDS)
    joules: dict[str, float] = {}
    for device, channels in products(meter.channels).items():
        workload = reference_workload(device)
        if workload is None:
            continue
        kept = {c.device for c in channels}
        measured = meter.account(meter.take_rounds(workload, (), {}, rounds=3, min_window=window, warmup=1))
        iterations = sum(r.iterations for r in measured.rounds if r.valid)
        joules.update({c.device: c.gross_joules / iterations for c in measured.components
                       if c.device in kept and iterations and c.valid})
    return joules
