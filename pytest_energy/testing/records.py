"""Synthetic records, judgements and run facts for tests and benchmarks that need realistic data
without measuring (this project's tests/ and bench/ share them from here).

Records are built by :meth:`Record.from_rounds`, the session's one constructor, so a test can check a
rendered number against the record it came from.
"""

from __future__ import annotations

from typing import Any

from ..core.facts import CaseFacts, ModelFacts
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
