"""Synthetic records, judgements and run facts for tests and benchmarks that need realistic data
without measuring (this project's tests/ and bench/ share them from here).

Records are built by :meth:`Record.from_rounds`, the session's one constructor, so a test can check a
rendered number against the record it came from.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.facts import CaseFacts, GenerationFacts, ModelFacts, Pruned
from ..core.record import Carbon, Component, Record, Round, RunInfo
from ..judge.verdict import Judgement, Verdict

CARBON = Carbon(intensity_g_per_kwh=56.0, source="codecarbon global_energy_mix.json: France (2022)",
                pue=1.2, country_iso_code="FRA")

FINGERPRINT: dict[str, Any] = {
    "id": "nvidia-h100-80gb-hbm3-x1-1a2b3c4d",
    "gpus": [{"device": "gpu:0", "name": "NVIDIA H100 80GB HBM3", "driver": "580.159.04",
              "power_limit_w": 700.0}],
    "cpu_model": "Intel(R) Xeon(R) Platinum 8480C",
    "logical_cpus": 16,
    "memory_gib": 125.8,
    "methods": ["gpu:counter"],
    "os": "Linux-6.1-x86_64",
    "python": "3.11.7",
    "torch": "2.13.0",
    "torch_cuda": "13.0",
    "transformers": "5.23.0",
    "pytest_energy": "0.1.0",
}


def make_record(
    name: str = "tests/test_model.py::test_infer",
    joules: float = 10.0,
    *,
    rounds: int = 5,
    iterations: int = 20,
    spread: float = 0.02,
    idle_watts: float = 77.0,
    seconds_per_iteration: float = 0.05,
    method: str = "counter",
    device: str = "gpu:0",
    kind: str = "gpu",
    unit: str = "iteration",
    label: str = "",
    quality: dict[str, float] | None = None,
    timeline: list[tuple[float, float]] | None = None,
    extra: dict[str, Any] | None = None,
    model: ModelFacts | None = None,
    case: CaseFacts | None = None,
    notes: list[str] | None = None,
    iterations_per_call: int = 1,
    proxies: dict[str, float] | None = None,
    outcome: str = "passed",
    carbon: Carbon = CARBON,
    values: list[float] | None = None,
    devices: dict[str, str] | None = None,
    reference: dict[str, float] | None = None,
    criteria: dict[str, Any] | None = None,
) -> Record:
    """A record whose rounds average ``joules`` net per iteration, alternating by ``spread``; or whose
    rounds give ``values`` net joules per iteration. Its energy is split evenly over ``devices``
    (device -> method, each device's kind the part of its name before ":"; default: ``device``
    measured by ``method`` as ``kind``). ``reference``: the session's reference joules per device.
    ``iterations_per_call``: how many iterations one call counts as (``iterations`` are calls then)."""
    if values is None:
        values = [joules * (1 + spread * (1 if index % 2 else -1) * (index % 3) / 2) for index in range(rounds)]
    kinds = {d: d.split(":")[0] for d in devices} if devices else {device: kind}
    devices = devices or {device: method}
    seconds = seconds_per_iteration * iterations
    round_list = []
    for net_per in values:
        net = net_per * iterations
        gross = net + idle_watts * seconds
        round_list.append(Round(iterations, seconds, gross, net, True, {d: net / len(devices) for d in devices}))
    window = seconds * len(round_list)
    share = 1 / len(devices)
    components = [Component(d, kinds[d], m, share * sum(r.gross_joules for r in round_list),
                            share * sum(r.net_joules for r in round_list), share * idle_watts, window,
                            ticks=int(window * 10), uncertainty_joules=0.07) for d, m in devices.items()]
    return Record.from_rounds(
        round_list, components,
        carbon=carbon,
        reference_joules=reference,
        criteria=dict(criteria or {}),
        name=name + (f"::{label}" if label else ""),
        nodeid=name,
        form="case" if unit != "iteration" else "call",
        warmup_iterations=3,
        fingerprint=FINGERPRINT,
        timestamp="2026-11-23T12:00:00+00:00",
        git_commit="0123456789abcdef",
        label=label,
        unit=unit,
        quality={m: {"value": v, "computed_by": "rouge-score 0.1.2"} for m, v in (quality or {}).items()},
        proxies=dict(proxies or {}),
        timeline=list(timeline or []),
        outcome=outcome,
        model=model,
        case=case,
        notes=list(notes or []),
        iterations_per_call=iterations_per_call,
        extra=dict(extra or {}),
    )


def make_verdict(name: str, status: str, ratio: float | None = None, low: float | None = None,
                 high: float | None = None, metric: str = "energy", gating: bool = True) -> Verdict:
    """A verdict as the gate would give it, with its one-line message."""
    change = "" if ratio is None else f" {100 * (ratio - 1):+.1f} %"
    return Verdict(name, metric, status, ratio, low, high, 0.05, "default",
                   f"{name}: {metric} {status}{change}", gating)


def make_judgement(verdicts: list[Verdict], errors: list[str] | None = None) -> Judgement:
    """A judgement that fails the gate exactly when a gating regression or model change is among ``verdicts``."""
    regressions = [v for v in verdicts if v.status.fails and v.gating]
    return Judgement(
        verdicts=verdicts,
        baseline_set="default",
        fingerprint_id=FINGERPRINT["id"],
        new=[v.name for v in verdicts if v.status == "new"],
        errors=list(errors or []),
        gate_failed=bool(regressions),
        summary=[f"energy regression: {v.name} {100 * (v.ratio - 1):+.1f} %" for v in regressions
                 if v.ratio is not None],
    )


def make_run_info(run_id: str = "20261123T120000Z-ab12", carbon: Carbon = CARBON) -> RunInfo:
    """Run facts of a session on the H100 fingerprint above."""
    return RunInfo(
        run_id=run_id,
        started="2026-11-23T12:00:00+00:00",
        finished="2026-11-23T12:05:00+00:00",
        fingerprint=FINGERPRINT,
        git_commit="0123456789abcdef",
        settings={"rounds": 5, "min_window": 1.0},
        carbon=carbon,
        idle_watts={"gpu:0": 77.0},
        reference_joules={"gpu:0": 350.0},
        notes=["NVML counter ticks every 100 ms; edges interpolated"],
    )


class SeriesHistory:
    """A history store as the report reads it (``series()``): the given series of (date, value, status)."""

    def __init__(self, series: dict[str, list[tuple[str, float, str]]]) -> None:
        self._series = series

    def series(self, fingerprint_id: str | None = None) -> dict[str, list[tuple[str, float, str]]]:
        return self._series


def make_suite_run(failing: bool = True) -> tuple[list[Record], Judgement, RunInfo, SeriesHistory]:
    """Records, judgement and run facts shaped like a ``pytest --energy suites/`` run on this H100
    fingerprint: sentiment classification at two precisions, a magnitude-pruning sweep, zero-shot and
    image classification, summarisation with five metrics, generation's prefill and decode, a question
    answering case, two fine-tune arms, long parametrised names, and two records whose baseline was
    measured on another device kind (one note they share), and a history of 14 runs for the first two
    records with a step in the eighth. ``failing``: the summarisation case misses its quality budget and the
    similarity test fails, so the run exits 1 (the reports' failing example)."""
    outcome = "failed" if failing else "passed"

    def case(name: str, joules: float, quality: dict[str, float], model: str, task: str, **more: Any) -> Record:
        return make_record(f"suites/{name}", joules, unit=more.pop("unit", "inference"), quality=quality,
                           model=ModelFacts(model, dtype=more.pop("dtype", "float32"), device="cuda:0"),
                           case=CaseFacts(more.pop("kind", "inference"), task, batch_size=8, rounds=5,
                                          inferences=100, **more.pop("facts", {})), **more)

    sweep = [case(f"test_pruning.py::test_sentiment_pruning[sentiment_pruning[{level}%]]", 0.081 - level / 5000,
                  {"accuracy": accuracy, "f1": accuracy - 0.01}, "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
                  "text-classification", facts={"pruned": Pruned(f"global L1 magnitude, {level}% of weights", 38,
                                                                  level / 100)})
             for level, accuracy in ((0, 0.91), (50, 0.89), (90, 0.52))]
    records = [
        case("test_classification.py::sst2_classification[fp32]", 0.0794, {"accuracy": 0.91, "f1": 0.9},
             "distilbert/distilbert-base-uncased-finetuned-sst-2-english", "text-classification",
             timeline=[(i / 10, 80 + 220 * (3 <= i <= 12)) for i in range(16)]),
        case("test_classification.py::sst2_classification[bf16]", 0.115, {"accuracy": 0.905, "f1": 0.899},
             "distilbert/distilbert-base-uncased-finetuned-sst-2-english", "text-classification", dtype="bfloat16"),
        *sweep,
        case("test_zero_shot.py::sentiment_zero_shot", 1.42, {"accuracy": 0.78}, "facebook/bart-large-mnli",
             "zero-shot-classification"),
        case("test_image_classification.py::shape_classification", 0.35, {"accuracy": 0.97},
             "google/vit-base-patch16-224", "image-classification"),
        case("test_summarisation.py::highlights_summarisation", 7.25, {"rouge1": 0.41, "rouge2": 0.19,
             "rougeL": 0.29, "meteor": 0.33, "bertscore": 0.87}, "google-t5/t5-small", "summarization",
             outcome=outcome),
        case("test_question_answering.py::news_questions", 0.234, {"exact_match": 0.205, "f1": 0.41},
             "distilbert/distilbert-base-cased-distilled-squad", "question-answering"),
        *(case("test_generation.py::prompts_generation", joules, {}, "openai-community/gpt2", "text-generation",
               label=phase, kind="generation", facts={"generates": True, "generation": GenerationFacts(
                   phase, 32, 0.9 if phase == "decode" else None)}) for phase, joules in (("prefill", 0.9),
                                                                                      ("decode", 6.1))),
        *(case(f"test_finetune_arms.py::highlights_finetune_{arm}", joules, {"rouge1": rouge}, model, "summarization",
               unit="step", kind="fine-tune") for arm, joules, rouge, model in (
            ("t5", 6.91, 0.75, "google-t5/t5-small"), ("llama", 2.84, 0.62, "meta-llama/Llama-3.2-1B"))),
        make_record("suites/test_similarity.py::minilm_similarity", 0.585, unit="inference",
                    quality={"spearman": 0.915}, outcome=outcome),
    ]
    if failing:
        records[7].quality["rougeL"].update(budget=0.35, budget_met=False)
    verdicts = [make_verdict(records[0].name, "regression", 1.148, 1.11, 1.23),
                make_verdict(records[1].name, "unchanged", 1.01, 0.98, 1.04),
                *(make_verdict(r.name, "inconclusive", 1.04, 0.97, 1.12) for r in sweep),
                make_verdict(records[5].name, "improvement", 0.81, 0.77, 0.86),
                make_verdict(records[6].name, "unchanged", 0.99, 0.96, 1.02),
                make_verdict(records[8].name, "new")]
    elsewhere = ("energy: no baseline measured on gpu: NVIDIA A100-SXM4-40GB x1 in 'default' yet (it holds "
                 "gpu: NVIDIA H100 80GB HBM3 x1); --energy-update-baselines records one here")
    verdicts += [dataclasses.replace(make_verdict(r.name, "incomparable"), message=elsewhere) for r in records[9:11]]
    judgement = make_judgement(verdicts)
    run = make_run_info()
    run.exitstatus = 1 if failing or judgement.gate_failed else 0
    steps = [0.069] * 8 + [0.079] * 6
    history = SeriesHistory({r.name: [(f"2026-11-{day + 1:02d}", value, "unchanged") for day, value in enumerate(steps)]
                             for r in records[:2]})
    return records, judgement, run, history
