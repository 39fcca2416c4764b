"""Deterministic proxies of the work a case does: FLOPs, parameters, tokens in and out (energy per unit
of work is :func:`pytest_energy.core.figures.per_work`).

They carry no noise, so a CPU-only CI can catch a change that makes a model do more work even where
its energy is modelled. FLOPs come from torch's own counter (``torch.utils.flop_counter``), which
counts matrix multiplications and convolutions (2 per multiply-add); elementwise work is not counted.
:func:`count_flops` is :mod:`pytest_energy.measure.work`'s, which plain tests' measurements count with too.
"""

from __future__ import annotations

from typing import Any

import torch

from ..measure.work import count_flops

__all__ = ["count_flops", "parameters"]


def parameters(model: Any) -> tuple[int, int]:
    """(all parameters, non-zero parameters) of a torch model."""
    total = nonzero = 0
    for tensor in model.parameters():
        total += tensor.numel()
        nonzero += int(torch.count_nonzero(tensor.detach())) if not tensor.is_meta else 0
    return total, nonzero
