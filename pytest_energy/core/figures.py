"""The one home of every figure derived from a record's energy: per iteration of some rounds or devices,
per 1,000 (joules and Wh), per unit of work (GFLOP, token, output token), a fine-tune's whole energy and
per epoch, a generation case's query split, a served run's steady state; and :func:`case_figures`, the figures a case record's JSON
states beside its facts. The gate, the baselines, the fleet and trend views, the ratings, the report
model and the cases call these; none computes its own.

Per-iteration means and totals of a record are :meth:`pytest_energy.core.record.Record.from_rounds`'
(its fields), a round's own is :attr:`pytest_energy.core.record.Round.net_per_iteration`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .units import JOULES_PER_WH

# Records arrive as ``Any``: record.py imports this module (its JSON states these figures), so this one
# names no type of it, not even for annotations (tests/test_imports.py: no circle).

#: More iterations than any round can count (a float's exact integers): a hand-edited baseline's
#: 10**400 would otherwise overflow the division, or divide its joules down to nothing.
MAX_ITERATIONS = 2**53


class ImplausibleValue(ValueError):
    """A number no measurement can have; the message says which and what to do."""


def wh_per_1000(joules_per_iteration: float) -> float:
    """Joules per iteration as Wh per 1,000 iterations, the AI Energy Score's and the budgets' basis."""
    return joules_per_iteration * 1000 / JOULES_PER_WH


def per_1000(amount: float, count: float) -> float:
    """``amount`` per 1,000 of ``count`` things (grams per 1,000 training examples)."""
    return amount / count * 1000


def round_values(rounds: Iterable[Any], devices: Sequence[str] | None, scale: float = 1.0) -> list[float] | None:
    """Per-iteration net joules of each valid round, over ``devices`` (all when None), times ``scale``:
    what a verdict compares.

    ``rounds`` are a record's :class:`~pytest_energy.core.record.Round` or a baseline's ``EnergyRound``
    (both have ``iterations`` and ``by_device``). None when a round lacks one of the devices. Raises
    :class:`ImplausibleValue` for a round of more than :data:`MAX_ITERATIONS` iterations.
    """
    values = []
    for round_ in rounds:
        if not getattr(round_, "valid", True) or round_.iterations <= 0:
            continue
        if round_.iterations > MAX_ITERATIONS:
            raise ImplausibleValue(f"a round holds more than 2**53 iterations (about 2**"
                                   f"{round_.iterations.bit_length()}), more than any run counts; fix the baseline "
                                   "file or re-record it with --energy-update-baselines")
        if devices is None:
            joules = round_.net_joules
        elif all(d in round_.by_device for d in devices):
            joules = sum(round_.by_device[d] for d in devices)
        else:
            return None
        values.append(joules / round_.iterations * scale)
    return values


def pooled_net_per_iteration(rounds: Sequence[Any]) -> float | None:
    """Net joules per iteration of rounds pooled (their joules over their iterations); None without any."""
    iterations = sum(r.iterations for r in rounds)
    return math.fsum(r.net_joules for r in rounds) / iterations if iterations else None


def devices_net_per_iteration(components: Sequence[Any], devices: Sequence[str], iterations: int) -> float:
    """Net joules per iteration of a record's ``devices`` (one device kind), from its ``components``
    and its ``iterations`` over valid rounds; NaN without iterations."""
    if not iterations:
        return math.nan
    return sum(c.net_joules for c in components if c.device in devices) / iterations


def devices_gross_wh_per_1000(components: Sequence[Any], iterations: int) -> float:
    """Gross Wh per 1,000 iterations of ``components`` (some of a record's devices)."""
    return wh_per_1000(math.fsum(c.gross_joules for c in components) / iterations)


def per_work(joules: float, flops: float, tokens_in: float, tokens_out: float, *, generates: bool) -> dict[str, float]:
    """Energy per unit of work: joules per GFLOP, per token (in + out), per output token where text is made."""
    out: dict[str, float] = {}
    if flops > 0:
        out["joules_per_gflop"] = joules / (flops / 1e9)
    if tokens_in + tokens_out > 0:
        out["joules_per_token"] = joules / (tokens_in + tokens_out)
    if generates and tokens_out > 0:
        out["joules_per_output_token"] = joules / tokens_out
    return out


@dataclass(frozen=True)
class FineTuneEnergy:
    """A fine-tune's whole gross energy, warm-up steps included: what the warm-up window and the valid
    rounds measured, plus the steps of any invalid window at the rounds' mean per step
    (``steps_estimated`` says how many; 0 where every window was valid)."""

    joules: float
    warmup_joules: float | None  # the measured warm-up window's, where it is valid
    steps_estimated: int


def fine_tune_energy(record: Any) -> FineTuneEnergy:
    warmup = record.warmup_round
    measured_warmup = warmup is not None and warmup.valid
    counted = record.iterations + (record.warmup_iterations if measured_warmup else 0)
    missing = sum(round_.iterations for round_ in record.rounds) + record.warmup_iterations - counted
    estimate = record.per_iteration_gross_joules * missing if missing else 0.0
    return FineTuneEnergy(record.total_gross_joules + estimate, warmup.gross_joules if measured_warmup else None,
                          missing)


@dataclass(frozen=True)
class QuerySplit:
    """A generated query's whole energy (gross): prefill + decode per query, per 1,000 queries and per
    generated token."""

    prefill_joules_per_query: float
    decode_joules_per_query: float
    joules_per_1000_queries: float
    wh_per_1000_queries: float
    joules_per_generated_token: float
    decode_joules_per_token: float | None
    prefill_share: float | None


def query_split(record: Any) -> QuerySplit | None:
    """The whole query of a generation case's decode record, which holds its prefill record's joules
    per query; None for any other record."""
    generation = record.case.generation if record.case is not None else None
    if generation is None or generation.prefill_joules_per_query is None:
        return None
    prefill_j, decode_j = generation.prefill_joules_per_query, record.per_iteration_gross_joules
    query = prefill_j + decode_j
    tokens = generation.max_new_tokens
    return QuerySplit(prefill_j, decode_j, per_1000(query, 1), wh_per_1000(query), query / tokens,
                      decode_j / (tokens - 1) if tokens > 1 else None, prefill_j / query if query > 0 else None)


@dataclass(frozen=True)
class ServingFigures:
    """A served generation run at one concurrency level (gross): energy per output token over the steady
    state (the record's rounds), its length, tokens and throughput; and the whole run's beside it (the
    ramp before the batch fills and the drain after it included), None where a window of it is invalid."""

    concurrency: int
    steady_seconds: float
    steady_tokens: int
    steady_tokens_per_second: float | None
    steady_joules_per_output_token: float
    whole_run_seconds: float
    whole_run_tokens: int
    whole_run_joules_per_output_token: float | None


def serving_figures(record: Any) -> ServingFigures | None:
    """The figures of a served generation record (:class:`~pytest_energy.core.facts.ServingFacts`);
    None for any other record."""
    serving = record.case.serving if record.case is not None else None
    if serving is None:
        return None
    steady = [r for r in record.rounds if r.valid]
    seconds = math.fsum(r.seconds for r in steady)
    tokens = sum(r.iterations for r in steady)
    outside = [w for w in (record.warmup_round, record.drain_round) if w is not None]
    whole = None
    if steady and len(steady) == len(record.rounds) and all(w.valid for w in outside) and serving.output_tokens:
        whole = record.total_gross_joules / serving.output_tokens
    return ServingFigures(serving.concurrency, seconds, tokens, tokens / seconds if seconds > 0 else None,
                          record.per_iteration_gross_joules, record.duration_seconds, serving.output_tokens, whole)


def case_figures(record: Any) -> dict[str, Any]:
    """The figures a case record states in its JSON (``figures``), all gross: per 1,000 inferences, per
    unit of work, the rounds' inferences or steps; a fine-tune's whole energy, per step and per epoch;
    a decode record's query split. {} for a record of no case."""
    case = record.case
    if case is None:
        return {}
    gross, proxies = record.per_iteration_gross_joules, record.proxies
    per_round = [round_.iterations for round_ in record.rounds]
    if case.fine_tune is not None:
        recipe, whole = case.fine_tune, fine_tune_energy(record)
        return {
            "energy_basis": "gross", "examples_seen": case.examples_seen,
            "epochs": recipe.steps / recipe.steps_per_epoch if recipe.steps_per_epoch else None,
            "steps_per_round": per_round, "steps_warmup": record.warmup_iterations,
            "joules_fine_tune": whole.joules, "joules_warmup": whole.warmup_joules,
            "steps_estimated": whole.steps_estimated, "joules_per_step": gross,
            "joules_per_epoch_estimate": gross * recipe.steps_per_epoch,
            **per_work(whole.joules, proxies.get("flops", 0.0), proxies.get("tokens_in", 0.0),
                       proxies.get("tokens_out", 0.0), generates=False),
        }
    served = serving_figures(record)
    if served is not None:  # iterations are output tokens of the steady state
        return {"energy_basis": "gross", "serving": dataclasses.asdict(served)}
    prefill = case.generation is not None and case.generation.phase == "prefill"
    figures: dict[str, Any] = {
        "energy_basis": "gross", "inferences_measured": sum(per_round), "inferences_per_round": per_round,
        "warmup_inferences": record.warmup_iterations, "joules_per_1000_inferences": per_1000(gross, 1),
        "wh_per_1000_inferences": wh_per_1000(gross),
        # prefill's one token per query is time-to-first-token work: no energy per output token
        **per_work(gross, proxies.get("flops_per_inference", 0.0), proxies.get("tokens_in_per_inference", 0.0),
                   proxies.get("tokens_out_per_inference", 0.0), generates=case.generates and not prefill),
    }
    split = query_split(record)
    if split is not None:
        figures["generation"] = dataclasses.asdict(split)
    profiled = profile_figure(record, split)
    if profiled is not None:
        figures["profile"] = profiled
    return figures


def profile_figure(record: Any, split: QuerySplit | None) -> dict[str, Any] | None:
    """What a measurement profile reports (``--energy-profile``; None under the default, and for a prefill
    record, whose query the decode record states whole): gross Wh per 1,000 queries with the phases summed
    in it. An inference case's query is one measured call (preprocess and the model's forward pass, or its
    generate: prefill and decode); a generation case's is its prefill record's and its decode record's."""
    case = record.case
    if case is None or case.profile == "default" or (case.generation is not None and split is None):
        return None
    phases = ["preprocess", "prefill", "decode"] if case.generates else ["preprocess", "forward"]
    if split is not None:
        wh, how = split.wh_per_1000_queries, "prefill (with its preprocess) and decode measured apart, summed"
    else:
        wh, how = wh_per_1000(record.per_iteration_gross_joules), "measured together, one call per query"
    return {"name": case.profile, "wh_per_1000_queries": wh, "phases": phases, "phases_measured": how,
            "note": case.profile_note}
