"""Synthetic records, judgements and run facts for tests that need realistic data without measuring.

Every derived field is computed from the rounds the way the session does, so a test can check a
rendered number against the record it came from.
"""

from __future__ import annotations

from typing import Any

from pytest_energy.gate import Judgement
from pytest_energy.record import Carbon, Component, Record, Round, RunInfo
from pytest_energy.verdict import Verdict

JOULES_PER_KWH = 3.6e6

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
    proxies: dict[str, float] | None = None,
    outcome: str = "passed",
    carbon: Carbon = CARBON,
) -> Record:
    """A record whose rounds average ``joules`` net per iteration, alternating by ``spread``."""
    round_list = []
    for index in range(rounds):
        net_per = joules * (1 + spread * (1 if index % 2 else -1) * (index % 3) / 2)
        seconds = seconds_per_iteration * iterations
        net = net_per * iterations
        gross = net + idle_watts * seconds
        round_list.append(Round(iterations, seconds, gross, net, True, {device: net}))
    total_iterations = sum(r.iterations for r in round_list)
    total_gross = sum(r.gross_joules for r in round_list)
    total_net = sum(r.net_joules for r in round_list)
    window = sum(r.seconds for r in round_list)
    values = [r.net_per_iteration for r in round_list]
    mean = sum(values) / len(values)
    stderr = (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1) / len(values)) ** 0.5
    component = Component(device, kind, method, total_gross, total_net, idle_watts, window,
                          ticks=int(window * 10), uncertainty_joules=0.07)
    return Record(
        name=name + (f"::{label}" if label else ""),
        nodeid=name,
        form="case" if unit != "iteration" else "call",
        rounds=round_list,
        warmup_iterations=3,
        components=[component],
        per_iteration_gross_joules=total_gross / total_iterations,
        per_iteration_net_joules=total_net / total_iterations,
        per_iteration_uncertainty_joules=stderr,
        total_gross_joules=total_gross,
        total_net_joules=total_net,
        duration_seconds=window,
        co2_grams=total_gross / JOULES_PER_KWH * carbon.pue * carbon.intensity_g_per_kwh,
        carbon=carbon,
        fingerprint=FINGERPRINT,
        timestamp="2026-11-23T12:00:00+00:00",
        git_commit="0123456789abcdef",
        label=label,
        unit=unit,
        quality={m: {"value": v, "computed_by": "rouge-score 0.1.2"} for m, v in (quality or {}).items()},
        proxies=dict(proxies or {}),
        timeline=list(timeline or []),
        outcome=outcome,
        extra=dict(extra or {}),
    )


def make_verdict(name: str, status: str, ratio: float | None = None, low: float | None = None,
                 high: float | None = None, metric: str = "energy", gating: bool = True) -> Verdict:
    """A verdict as the gate would give it, with its one-line message."""
    change = "" if ratio is None else f" {100 * (ratio - 1):+.1f} %"
    return Verdict(name, metric, status, ratio, low, high, 0.05, "default",
                   f"{name}: {metric} {status}{change}", gating)


def make_judgement(verdicts: list[Verdict], errors: list[str] | None = None) -> Judgement:
    """A judgement that fails the gate exactly when a gating regression is among ``verdicts``."""
    regressions = [v for v in verdicts if v.status == "regression" and v.gating]
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
