"""The work measured code does, counted: the FLOPs of its torch operations and the torch modules it runs.

A count has no noise, so a runner whose energy is modelled (and does not gate) still fails a change that
makes a test's model do more work, and a changed model is named. FLOPs come from torch's own counter
(``torch.utils.flop_counter.FlopCounterMode``): matrix multiplications, convolutions and attention, 2 per
multiply-add. Elementwise work, custom CUDA or Triton kernels and non-torch code count nothing. The
counter sees every torch operation in Python, which slows the call it counts, so it counts one unmeasured
call (a warm-up call, or for a block the call given as its work) and no measured round pays for it.

Torch is never imported here: work is counted only where the measured code has imported it already
(``torch`` in ``sys.modules``), so a test without torch, and the plugin's load, stay torch-free.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

from ..core.facts import ModelFacts

T = TypeVar("T")

#: Where a plain test's model facts say it came from (a case's say "hub cache", "factory", ...).
SOURCE = "measured code"
#: What a failure under the counter adds to its traceback: the counter may be what failed.
COUNTER_NOTE = ("pytest-energy counted this call's FLOPs with torch's FlopCounterMode; where the counter is "
                "what fails, @pytest.mark.energy(count_flops=False) or --energy-no-count-flops measures without it")


def torch_loaded() -> bool:
    """Whether the measured code can have run torch: it is imported (never imported here)."""
    return "torch" in sys.modules


def count_flops(fn: Callable[[], T]) -> tuple[T, int]:
    """``fn()``'s result and the FLOPs it did (torch must be importable: the caller uses it)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        result = fn()
    return result, int(counter.get_total_flops())


def _candidates(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
    """What a call may run: the function itself, a bound method's object, a partial's function and
    arguments, what a closure captured (``lambda: model(x)``), then the arguments."""
    yield fn
    yield getattr(fn, "__self__", None)
    if isinstance(fn, functools.partial):
        yield from _candidates(fn.func, fn.args, fn.keywords)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            yield cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
    yield from args
    yield from kwargs.values()


def modules_in(fn: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> list[Any]:
    """The torch modules (``torch.nn.Module``) a measured call shows: see :func:`_candidates`; each
    once, in that order. Empty where torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found: dict[int, Any] = {}
    for candidate in _candidates(fn, args, kwargs or {}):
        if isinstance(candidate, torch.nn.Module):
            found.setdefault(id(candidate), candidate)
    return list(found.values())


@dataclass
class Model:
    """The torch modules measured code runs, as a record names them (:meth:`Work.model_facts`) for the
    gate's model verdict, and their parameters."""

    requested: str  # the modules' classes, "tests.test_mlp.MLP"
    digest: str  # of their structure, not their weights: retraining keeps it, a wider layer changes it
    dtype: str
    device: str
    parameters: int

    @classmethod
    def of(cls, modules: list[Any]) -> Model:
        """The model facts of ``modules`` (at least one). The digest covers each module's class, its tree
        as printed (layer types and sizes) and every parameter's and buffer's name, shape and dtype."""
        digest = hashlib.sha256()
        parameters: dict[int, Any] = {}
        names = []
        for module in modules:
            name = f"{type(module).__module__}.{type(module).__qualname__}"
            names.append(name)
            digest.update(f"{name}\n{module!r}\n".encode())
            for kind, tensors in (("parameter", module.named_parameters()), ("buffer", module.named_buffers())):
                for key, tensor in tensors:
                    digest.update(f"{kind} {key} {tuple(tensor.shape)} {tensor.dtype}\n".encode())
            parameters.update((id(p), p) for p in module.parameters())
        values = parameters.values()
        return cls(
            requested=" + ".join(names),
            digest=digest.hexdigest()[:16],
            dtype=",".join(sorted({str(p.dtype).removeprefix("torch.") for p in values})),
            device=",".join(sorted({str(p.device) for p in values})),
            parameters=sum(p.numel() for p in values),
        )


@dataclass
class Work:
    """What one call of measured code does: its FLOPs (None where not counted, ``notes`` say why where
    it matters) and the torch modules it runs (None where it shows none)."""

    model: Model | None = None
    flops: int | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of_call(cls, fn: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Work:
        """The work of ``fn(*args, **kwargs)`` before counting: the modules it shows."""
        modules = modules_in(fn, args, kwargs)
        return cls(Model.of(modules) if modules else None)

    def count(self, call: Callable[[], T]) -> T:
        """``call()`` under torch's FLOP counter, its FLOPs kept; an exception raised under the counter
        says, in a note of its traceback, how to measure without it."""
        try:
            result, self.flops = count_flops(call)
        except Exception as error:  # not pytest's outcomes (skip, fail) nor an interrupt: those are no fault
            error.add_note(COUNTER_NOTE)
            raise
        return result

    def proxies(self, block_iterations: int | None = None) -> dict[str, float]:
        """The counted work as its record's proxies: FLOPs per iteration (``flops_per_iteration``), for a
        block of ``block_iterations`` the whole block's too (``flops``: more iterations are more work, as
        a fine-tune's steps); the modules' parameters."""
        proxies: dict[str, float] = {}
        if self.flops:
            proxies["flops_per_iteration"] = float(self.flops)
            if block_iterations:
                proxies["flops"] = float(self.flops * block_iterations)
        if self.model is not None:
            proxies["parameters"] = float(self.model.parameters)
        return proxies

    def model_facts(self) -> ModelFacts | None:
        """The modules' model facts, as its record names them (None where the call showed no modules)."""
        if self.model is None:
            return None
        return ModelFacts(self.model.requested, source=SOURCE, digest=self.model.digest,
                          parameters=self.model.parameters, dtype=self.model.dtype, device=self.model.device)
