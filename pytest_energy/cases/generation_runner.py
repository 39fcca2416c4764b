"""Running a :class:`GenerationCase` in its test: prefill measured, then decode measured, then quality.

Prefill is one call per batch of prompts: tokenizing them and their forward pass to the first token.
Decode is the remaining ``new_tokens - 1`` forward passes over the cache that batch's prefill left.
Every distinct batch is prefilled once before the decode rounds (unmeasured); each decode crops its
cache back to the prompt, so a round's decodes repeat without repeating prefill work inside the window.
Without ``--energy`` each distinct batch is generated once and the quality budget is checked.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from .causal import Prefilled, decode, prefill, text_until_eos
from .data import examples, task
from .declare import DTYPES
from .generation import GenerationCase
from .models import load, pick_device, place
from .proxies import count_flops, parameters
from .runner import _batches, _check_quality, _distinct, _fill_inference_record, _per_inference, _quality
from .tasks import Predictor


def _ready(tokenizer: Any) -> Any:
    """A hub tokenizer made fit for batched generation: left padding, a pad token (GPT-2 has none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def run_generation(case: GenerationCase, energy: Any) -> None:
    """Run a generation case in its test (see the module docstring)."""
    spec = task(case.task, "GenerationCase")
    device = pick_device(case.device)
    dtype = DTYPES[case.dtype]
    loaded = load(case.model, spec, fallback=case.fallback, prefix=case.prefix, columns=dict(case.columns),
                  max_input_tokens=case.max_input_tokens)
    model = place(loaded.model, device, dtype).eval()
    if loaded.facts["source"] == "fallback" and case.fallback is not None and case.fallback.overrides:
        loaded.facts["overrides"] = dict(case.fallback.overrides)
        case = dataclasses.replace(case, **case.fallback.overrides)
    tokenizer = _ready(loaded.tokenizer)
    rows = examples(case.dataset, spec, case.columns)
    encoder = Predictor(model, tokenizer, spec, device=device, prefix=case.prefix,
                        max_input_tokens=case.max_input_tokens)
    distinct = _distinct(len(rows), case.batch_size)
    batches = _batches(len(rows), case.batch_size, distinct)

    def encode(number: int) -> dict[str, Any]:
        return encoder.encode([str(rows[i]["prompt"]) for i in batches[number % distinct]])

    def generated(tokens: torch.Tensor, number: int, into: dict[int, Any]) -> None:
        for index, text in zip(batches[number % distinct], text_until_eos(tokenizer, tokens)):
            into[index] = text

    predictions: dict[int, Any] = {}
    if not energy.enabled:
        with torch.inference_mode():
            for number in range(min(distinct, math.ceil(case.inferences / case.batch_size))):
                generated(decode(model, prefill(model, encode(number)), case.new_tokens), number, predictions)
        _check_quality(_quality(case, spec, rows, predictions), dict(case.quality))
        return

    per_round = math.ceil(math.ceil(case.inferences / case.batch_size) / case.rounds)
    calls = case.warmup + per_round * case.rounds
    with torch.inference_mode():
        states, work = _count(model, encode, min(calls, distinct), case.new_tokens)
    measured = [work[i % distinct] for i in range(case.warmup, calls)]
    params = parameters(model)
    shared = {"model": loaded.facts, "device": device, "dtype": dtype, "new_tokens": case.new_tokens}

    prefill_calls = iter(range(calls))

    def prefill_step() -> None:
        with torch.inference_mode():
            prefill(model, encode(next(prefill_calls)))

    decode_calls = iter(range(calls))

    def decode_step() -> None:
        number = next(decode_calls)
        with torch.inference_mode():
            generated(decode(model, states[number % distinct], case.new_tokens), number, predictions)

    records = []
    for phase, step, index in (("prefill", prefill_step, 0), ("decode", decode_step, 1)):
        energy.run(step, iterations=per_round, rounds=case.rounds, warmup=case.warmup, unit="inference", label=phase)
        record = energy.last
        _per_inference(record, case.batch_size)
        _fill_inference_record(record, case, spec, [w[index] for w in measured], params, per_round,
                               {**shared, "case": "generation", "phase": phase})
        records.append(record)
    _summarise(records, case)
    quality = _quality(case, spec, rows, predictions)
    for record in records:
        record.quality = {name: dict(entry) for name, entry in quality.items()}
        record.budget["quality"] = dict(case.quality)
        _check_quality(record.quality, dict(case.quality))


def _count(model: Any, encode: Any, distinct: int, new_tokens: int) -> tuple[list[Prefilled], list[tuple[tuple, tuple]]]:
    """Each distinct batch's prefilled state (what decode starts from) and each phase's (FLOPs, tokens in,
    tokens out), counted before the measured runs. Prefill reads the prompt and makes the first token;
    decode reads nothing new and makes the rest."""
    states, work = [], []
    for number in range(distinct):
        inputs = encode(number)
        state, prefill_flops = count_flops(lambda: prefill(model, inputs))
        _, decode_flops = count_flops(lambda: decode(model, state, new_tokens))
        rows = int(inputs["input_ids"].shape[0])
        states.append(state)
        work.append(((prefill_flops, int(inputs["attention_mask"].sum()), rows),
                     (decode_flops, 0, rows * (new_tokens - 1))))
    return states, work


def _summarise(records: list[Any], case: GenerationCase) -> None:
    """The whole query on both records: prefill + decode per query and per generated token (gross)."""
    prefill_j, decode_j = (r.per_iteration_gross_joules for r in records)
    query = prefill_j + decode_j
    summary = {
        "prefill_joules_per_query": prefill_j, "decode_joules_per_query": decode_j,
        "joules_per_1000_queries": query * 1000, "wh_per_1000_queries": query * 1000 / 3600,
        "joules_per_generated_token": query / case.new_tokens,
        "decode_joules_per_token": decode_j / (case.new_tokens - 1),
        "prefill_share": prefill_j / query if query > 0 else None, "new_tokens": case.new_tokens,
    }
    records[0].extra.pop("joules_per_output_token", None)  # prefill's one token is time-to-first-token work
    for record in records:
        record.extra["generation"] = dict(summary)
