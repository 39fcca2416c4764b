"""Running a :class:`GenerationCase` in its test: prefill measured, then decode measured, then quality.

Prefill is one call per batch of prompts: encoding them (tokenizing, as the other cases do inside the
measured call) and their forward pass to the first token. Decode is the remaining
``max_new_tokens - 1`` forward passes over the cache that batch's prefill left. Every distinct batch is
prefilled once before the decode rounds (unmeasured); each decode crops its cache back to the prompt,
so a round's decodes repeat without repeating prefill work inside the window. Without ``--energy``
each distinct batch is generated once and the quality budget is checked.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import unittest
from typing import Any, Callable

import torch

from ...core.facts import CaseFacts, GenerationFacts, ModelFacts, RecordFacts, ServingFacts
from ...core.profiles import DEFAULT
from ..base import DTYPES
from ..data import example_keys, examples
from ..gpus import hold
from ..models import pick_device
from ..predictor import Predictor, tokens_in
from ..proxies import count_flops, parameters
from ..runner import (case_quality, check_quality, cycle_batches, distinct_batches, keep_fallback_runs, load_case,
                      measure_inferences, own_batches, profile_precision)
from ..tasks import get_task
from .causal import Prefilled, decode, generate_fixed, prefill, text_until_eos
from .serving import BATCHING, CacheBatch, Request, Unrun, requests_for, serve
from .tasks import ready

# The case arrives as an argument (a GenerationCase): its declaration imports this module when it runs.

PHASES = ("prefill", "decode")


def run_generation(case: Any, energy: Any) -> None:
    """Run a generation case in its test (see the module docstring)."""
    spec = get_task(case.task, "GenerationCase")
    device = pick_device(case.device)
    held = hold(1, device)  # the one GPU it runs on: its record keeps that one, as an inference case's
    profile = energy.profile
    dtype, profile_note = profile_precision(profile, spec, device, DTYPES[case.dtype])
    declared = case
    case, loaded = load_case(case, spec, device, dtype)
    if profile is not None:  # after the fallback's overrides: the protocol's counts win
        case = dataclasses.replace(case, **profile.case_fields())
    model = loaded.model
    rows = examples(case.dataset, spec, case.columns)
    keys = example_keys(case.dataset, spec, case.columns)
    predictor = Predictor(model, loaded.processor, spec, device=device, case=case)
    distinct = distinct_batches(len(rows), case.batch_size)
    batches = cycle_batches(len(rows), case.batch_size, distinct)

    def encode(batch: int) -> dict[str, Any]:
        return dict(predictor.encode([rows[i] for i in batches[batch]]))

    predictions: dict[int, Any] = {}

    def keep(tokens: torch.Tensor, indices: list[int]) -> None:  # a cut batch keeps its first texts only
        for index, text in zip(indices, text_until_eos(loaded.processor, tokens)):
            predictions[index] = text

    if not energy.enabled:
        with torch.inference_mode():
            for number, indices in enumerate(own_batches(len(rows), case.batch_size,
                                                         min(case.inferences, distinct * case.batch_size))):
                keep(decode(model, prefill(model, encode(number)), case.max_new_tokens), indices)
        check_quality(case_quality(case, spec, rows, predictions, keys), dict(case.quality))
        return

    # The case's own queries follow the warm-up, exactly its inferences (as an inference case's).
    own = own_batches(len(rows), case.batch_size, case.inferences, first=case.warmup)
    per_round = math.ceil(len(own) / case.rounds)
    calls = case.warmup + len(own)
    cycle = min(calls, distinct)  # the batches the measured calls go round (each prefilled once, below)
    with torch.inference_mode():
        states, work = _count(model, encode, cycle, case.max_new_tokens)
        cut = own[-1] if len(own[-1]) < case.batch_size else None  # a cut last batch: its own queries' work
        last = _count(model, lambda _: dict(predictor.encode([rows[i] for i in cut])), 1,
                      case.max_new_tokens)[1][0] if cut else None
    params = parameters(model)
    model_facts = ModelFacts.of(loaded.facts, dtype=DTYPES[case.dtype], device=device, settings=case.settings())

    def stepper(phase: str) -> Callable[[], None]:
        calls_made = itertools.count()

        def step() -> None:
            number = next(calls_made)
            batch = number % cycle
            with torch.inference_mode():
                if phase == "prefill":
                    prefill(model, encode(batch))
                else:
                    tokens = decode(model, states[batch], case.max_new_tokens)  # a whole batch, as every call
                    if number < calls:  # the warm-up's and the case's own: extra ones filling a window score nothing
                        keep(tokens, own[number - case.warmup] if number >= case.warmup else batches[batch])
        return step

    records: list[Any] = []
    for index, phase in enumerate(PHASES):
        planned = [work[i % cycle][index] for i in range(case.warmup, calls)]
        if last is not None:
            planned[-1] = last[index]
        # The decode record holds the prefill record's energy per query too: it states the whole query.
        prefill_joules = records[0].per_iteration_gross_joules if records else None
        records.append(measure_inferences(energy, stepper(phase), case, spec, per_round, planned, params, model_facts,
                                          generation=GenerationFacts(phase, case.max_new_tokens, prefill_joules),
                                          label=phase, held=held,
                                          profile=(profile.name if profile is not None else DEFAULT, profile_note)))
    quality = case_quality(case, spec, rows, predictions, keys)

    # The examples the case's calls decoded (every one where they went round the dataset).
    scored = batches if calls > distinct else batches[:case.warmup] + own

    def retrained(variant: Any) -> dict[str, dict[str, Any]]:  # the same case on a fallback from another seed
        variant, other = load_case(variant, spec, device, DTYPES[case.dtype])
        generator = Predictor(other.model, other.processor, spec, device=device, case=variant)
        texts: dict[int, Any] = {}
        with torch.inference_mode():
            for indices in scored:
                state = prefill(other.model, dict(generator.encode([rows[i] for i in indices])))
                texts.update(zip(indices, text_until_eos(other.processor, decode(other.model, state,
                                                                                  case.max_new_tokens))))
        return case_quality(variant, spec, rows, texts, keys)

    keep_fallback_runs(quality, declared, loaded, energy, retrained)
    for record in records:
        record.quality = {name: dict(entry) for name, entry in quality.items()}
        record.criteria["quality"] = dict(case.quality)
    check_quality(records[-1].quality, dict(case.quality))


def _count(model: Any, encode: Callable[[int], dict[str, Any]], distinct: int,
           new_tokens: int) -> tuple[list[Prefilled], list[tuple[tuple[int, int, int], tuple[int, int, int]]]]:
    """Each distinct batch's prefilled state (what decode starts from) and each phase's (FLOPs, tokens in,
    tokens out), counted before the measured runs: prefill reads the prompt and makes the first token,
    decode reads nothing new and makes the rest."""
    states, work = [], []
    for number in range(distinct):
        inputs = encode(number)
        state, prefill_flops = count_flops(lambda: prefill(model, inputs))
        _, decode_flops = count_flops(lambda: decode(model, state, new_tokens))
        queries = int(inputs["input_ids"].shape[0])
        states.append(state)
        work.append(((prefill_flops, tokens_in(inputs), queries), (decode_flops, 0, queries * (new_tokens - 1))))
    return states, work


def run_served(case: Any, energy: Any) -> None:
    """Run a generation case served under load (``concurrency``): at each level its ``inferences`` requests
    arrive together and are served in a batch that refills (:func:`serve`), one marked block per level whose
    rounds are the steady state, its warm-up window the ramp before the batch fills and its drain window
    the tail (``energy.measure(marked=True)``). The schedule is known before the run (each request asks for
    a fixed number of tokens), so the steady state's tokens are too. Quality is scored on the first level's
    texts (every level writes the same greedy tokens)."""
    if energy.profile is not None:
        raise unittest.SkipTest(f"--energy-profile {energy.profile.name} measures one query at a time; a case "
                                "served under load is measured with the default profile")
    spec = get_task(case.task, "GenerationCase")
    device = pick_device(case.device)
    declared = case
    case, loaded = load_case(case, spec, device, DTYPES[case.dtype])
    model, tokenizer = loaded.model, ready(loaded.processor)
    rows = examples(case.dataset, spec, case.columns)
    keys = example_keys(case.dataset, spec, case.columns)
    predictor = Predictor(model, tokenizer, spec, device=device, case=case)
    prompts = [predictor.encode([row])["input_ids"][0].tolist() for row in rows]
    fewest = case.min_new_tokens or case.max_new_tokens
    requests = requests_for(case.inferences, len(rows), fewest, case.max_new_tokens)

    def texts(batch: CacheBatch) -> dict[int, Any]:  # each example's text (the last request of it wins)
        return {request.index: text_until_eos(tokenizer, torch.tensor([batch.tokens[request.number]]))[0]
                for request in requests}

    def served(concurrency: int, **hooks: Any) -> CacheBatch:
        batch = CacheBatch(model, lambda request: prompts[request.index], tokenizer.pad_token_id)
        with torch.inference_mode():
            serve(batch, requests, concurrency, **hooks)
        return batch

    if not energy.enabled:
        check_quality(case_quality(case, spec, rows, texts(served(max(case.concurrency))), keys), dict(case.quality))
        return

    if case.warmup:  # unmeasured: a full batch of the first requests, prefilled and decoding
        first = requests[:max(case.concurrency)]
        with torch.inference_mode():
            serve(CacheBatch(model, lambda request: prompts[request.index], tokenizer.pad_token_id),
                  [Request(r.number, r.index, case.warmup + 1) for r in first], len(first))
    params = parameters(model)
    model_facts = ModelFacts.of(loaded.facts, dtype=DTYPES[case.dtype], device=device, settings=case.settings())
    tokens_in = sum(len(prompts[request.index]) for request in requests)
    records, predictions = [], None
    for concurrency in case.concurrency:
        plan = serve(Unrun(), requests, concurrency)
        facts = ServingFacts(concurrency, len(requests), (fewest, case.max_new_tokens), plan.output_tokens,
                             len(plan.passes), plan.fill or 0, plan.drain or 0, BATCHING)
        proxies = {"parameters": float(params[0]), "parameters_nonzero": float(params[1]),
                   "tokens_in": float(tokens_in), "tokens_out": float(plan.output_tokens)}
        with energy.measure(label=f"concurrency={concurrency}", unit="output token", iterations=plan.output_tokens,
                            rounds=case.rounds, marked=True) as block:
            block.facts = RecordFacts(model_facts, proxies, CaseFacts(
                "generation", spec.name, concurrency, case.rounds, len(requests), True, serving=facts))
            batch = served(concurrency, on_pass=lambda step: block.step(step.tokens),
                           on_fill=lambda: block.open_rounds(plan.steady_tokens), on_drain=block.close_rounds)
        predictions = predictions or texts(batch)
        records.append(block.record)
    quality = case_quality(case, spec, rows, predictions, keys)

    def retrained(variant: Any) -> dict[str, dict[str, Any]]:  # the same case on a fallback from another seed
        variant, other = load_case(variant, spec, device, DTYPES[case.dtype])
        generator = Predictor(other.model, ready(other.processor), spec, device=device, case=variant)
        found: dict[int, Any] = {}
        with torch.inference_mode():
            for request in {request.index: request for request in requests}.values():
                tokens = generate_fixed(other.model, dict(generator.encode([rows[request.index]])), request.new_tokens)
                found[request.index] = text_until_eos(other.processor, tokens)[0]
        return case_quality(variant, spec, rows, found, keys)

    keep_fallback_runs(quality, declared, loaded, energy, retrained)
    for record in records:
        if record is not None:
            record.quality = {name: dict(entry) for name, entry in quality.items()}
            record.criteria["quality"] = dict(case.quality)
    check_quality(quality, dict(case.quality))
