"""Pruning a case's model: global magnitude pruning, or 2:4 semi-structured sparsity on a GPU.

Only the linear layers of the base model are pruned (``model.base_model``); heads stay dense, as in
the usual pruning studies, so the classifier or language-model head is not what breaks first.
"""

from __future__ import annotations

import unittest
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils import prune

from ..core.facts import Pruned

#: Compute capability from which GPUs have sparse tensor cores (Ampere).
SPARSE_CAPABILITY = (8, 0)


def _linears(model: Any) -> list[tuple[str, torch.nn.Linear]]:
    base = getattr(model, "base_model", model)
    return [(name, module) for name, module in base.named_modules() if isinstance(module, torch.nn.Linear)]


def _sparsity(layers: list[tuple[str, torch.nn.Linear]]) -> float:
    total = sum(m.weight.numel() for _, m in layers)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    return zeros / total if total else 0.0


@dataclass(frozen=True)
class Pruning:
    """One level of a pruning sweep: a fraction of weights to zero, or ``"2:4"``."""

    level: float | str

    @property
    def semi_structured(self) -> bool:
        return self.level == "2:4"

    def prepare(self, device: str, dtype: str) -> str:
        """The dtype to run at; skips (``unittest.SkipTest``) where 2:4 sparsity has no kernels."""
        if not self.semi_structured:
            return dtype
        if not device.startswith("cuda"):
            raise unittest.SkipTest("2:4 semi-structured sparsity needs a CUDA GPU with sparse tensor cores "
                                    "(compute capability 8.0+), and this case's device is the CPU")
        capability = torch.cuda.get_device_capability(torch.device(device))
        if capability < SPARSE_CAPABILITY:
            raise unittest.SkipTest(f"2:4 semi-structured sparsity needs compute capability 8.0+; "
                                    f"this GPU has {capability[0]}.{capability[1]}")
        return "float16" if dtype == "float32" else dtype  # the sparse kernels take half precision only

    def apply(self, model: Any) -> Pruned:
        """Zero weights in place (dense tensors still); what was pruned, for the record."""
        layers = _linears(model)
        if self.semi_structured:
            with torch.no_grad():
                for _, module in layers:
                    weight = module.weight
                    if weight.shape[1] % 4:
                        continue
                    groups = weight.reshape(-1, 4)
                    keep = groups.abs().topk(2, dim=1).indices
                    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True)
                    weight.mul_(mask.reshape(weight.shape))
            return Pruned("2:4 semi-structured (2 largest of every 4 weights kept)", len(layers), _sparsity(layers))
        amount = float(self.level)
        if amount > 0:
            prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                                      amount=amount)
            for _, module in layers:
                prune.remove(module, "weight")  # bake the zeros in: no mask hook left in the measured run
        return Pruned(f"global L1 magnitude, {amount:.0%} of base-model linear weights", len(layers), _sparsity(layers))

    def compress(self, model: Any) -> dict[str, Any]:
        """For 2:4: swap the masked weights for sparse semi-structured tensors the GPU's kernels use.

        Layers whose shape the kernels refuse stay dense; the record says how many were converted.
        """
        if not self.semi_structured:
            return {}
        from torch.sparse import to_sparse_semi_structured

        converted = kept_dense = 0
        for _, module in _linears(model):
            try:
                module.weight = torch.nn.Parameter(to_sparse_semi_structured(module.weight.detach()),
                                                   requires_grad=False)
                converted += 1
            except RuntimeError:  # shape or dtype outside the kernels' constraints
                kept_dense += 1
        if not converted:
            raise unittest.SkipTest("no linear layer of this model fits the 2:4 sparse kernels' shape limits")
        return {"semi_structured_layers": converted, "dense_layers": kept_dense}
