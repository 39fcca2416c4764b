"""The training loop shared by fine-tune cases (measured) and fallback models (not measured).

A step's batch is the task's (``Task.train_batch``); torch is imported when training starts.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Sequence

from .tasks import Task


def step_plan(examples: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Example indices of every step: epochs of a seeded shuffle, cut into batches (the last one of an
    epoch filled from the next epoch, so every step has ``batch_size`` examples)."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < steps * batch_size:
        epoch = list(range(examples))
        rng.shuffle(epoch)
        order += epoch
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return math.ceil(examples / batch_size)


def training_batch(model: Any, processor: Any, task: Task, rows: Sequence[dict[str, Any]], *, prefix: str,
                   max_input_tokens: int, max_target_tokens: int, pad_to_max: bool, device: str) -> dict[str, Any]:
    """Inputs and labels of one training step on ``device``, as the task makes them.

    With ``pad_to_max`` every batch has the same shape, so every step does the same work.
    """
    if task.train_batch is None:
        raise ValueError(f"task {task.name!r} cannot be trained here (it has no train_batch)")
    batch = task.train_batch(model, processor, task, rows, prefix=prefix, max_input_tokens=max_input_tokens,
                             max_target_tokens=max_target_tokens, pad_to_max=pad_to_max)
    return {k: v.to(device) for k, v in batch.items()}


def optimiser(model: Any, name: str, learning_rate: float, weight_decay: float) -> Any:
    """The named torch optimiser over the model's trainable parameters."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, weight_decay=weight_decay, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)


def train(model: Any, tokenizer: Any, task: Task, rows: Sequence[dict[str, Any]], *, steps: int, batch_size: int,
          learning_rate: float, weight_decay: float = 0.0, optimizer: str = "adamw", schedule: str = "linear",
          warmup_steps: int = 0, seed: int = 0, device: str = "cpu", prefix: str = "", max_input_tokens: int = 128,
          max_target_tokens: int = 48, pad_to_max: bool = True, max_grad_norm: float | None = 1.0,
          on_step: Callable[[], None] | None = None, forward: Any = None,
          shard: tuple[int, int] = (0, 1)) -> list[float]:
    """Train ``model`` in place for ``steps`` steps; returns the loss of every step. ``on_step`` is called
    after each step (a measured fine-tune marks its steps there: the rounds' edges).

    On several GPUs (:mod:`pytest_energy.cases.torchrun`) the batches run through ``forward`` (the model
    wrapped in DistributedDataParallel, which averages the gradients of every process) and this process,
    ``shard`` = (its rank, processes), takes every processes-th example of each step's batch from its rank
    on; the loss is its share's.

    The schedule warms the learning rate up linearly over ``warmup_steps``, then keeps it (constant)
    or decays it linearly to zero at the last step (linear). Gradients are clipped to ``max_grad_norm``
    (None: not clipped), as Hugging Face's Trainer does by default: without it, a model trained from
    scratch at a high learning rate collapsed on some seeds (bench/results/quality-*.md).
    """
    import torch

    torch.manual_seed(seed)
    model.train()
    optim = optimiser(model, optimizer, learning_rate, weight_decay)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        return warm if schedule == "constant" else warm * max(0.0, 1.0 - step / steps)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optim, factor)
    losses = []
    rank, processes = shard
    for indices in step_plan(len(rows), steps, batch_size, seed):
        batch = training_batch(model, tokenizer, task, [rows[i] for i in indices[rank::processes]], prefix=prefix,
                               max_input_tokens=max_input_tokens, max_target_tokens=max_target_tokens,
                               pad_to_max=pad_to_max, device=device)
        loss = (forward or model)(**batch).loss
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
        optim.step()
        scheduler.step()
        optim.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step()
    model.eval()
    return losses
