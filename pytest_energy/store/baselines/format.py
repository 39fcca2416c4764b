"""The baseline file's entries: one record's hardware-independent facts (:class:`Baseline`) and its
energy per device kind (:class:`EnergyBaseline`), how they are written (keys sorted, measured numbers
rounded to 6 significant digits, counts exact: the same run writes the same bytes) and how a file's
entries are checked when read back (files are reviewed and sometimes hand-edited).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ...core.figures import pooled_net_per_iteration

#: Version of the baseline file layout. Files of another version are refused with what to do.
SCHEMA_VERSION = 2


_SIGNIFICANT = 6


class BaselineError(ValueError):
    """A baseline file cannot be used; the message is one line naming the file and what to do."""


@dataclass
class EnergyRound:
    """One stored round of one device kind: its iterations, window and net joules per device."""

    iterations: int
    seconds: float
    by_device: dict[str, float]

    @property
    def net_joules(self) -> float:
        return math.fsum(self.by_device.values())

    @property
    def net_per_iteration(self) -> float:
        return self.net_joules / self.iterations


@dataclass
class EnergyBaseline:
    """The energy of one record measured on one device kind."""

    kind: str  # the device kind id
    devices: dict[str, str]  # device -> method that measured it
    rounds: list[EnergyRound]  # the valid rounds of the run it was recorded from
    reference_joules: dict[str, float]  # device -> the reference workload's joules per iteration on that run
    facts: dict[str, Any]  # the devices' power limit, driver, clocks; the CPU model (see device_kinds)
    hardware: str  # fingerprint id of the runner that measured it
    recorded: str
    git_commit: str | None = None
    # device -> its conditions at the start of the measurement (temperature, clocks, power limit): GPUs
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = _rounded({
            "devices": self.devices,
            "facts": self.facts,
            "hardware": self.hardware,
            "recorded": self.recorded,
            "git_commit": self.git_commit,
            "reference_joules": self.reference_joules,
            "rounds": [{"iterations": r.iterations, "seconds": r.seconds, "by_device": r.by_device}
                       for r in self.rounds],
            "per_iteration_net_joules": pooled_net_per_iteration(self.rounds),  # for reviewers; not read back
        })
        if self.conditions:  # written only where a device reports them: CPU baselines keep their bytes
            data["conditions"] = _rounded(self.conditions)
        return data


@dataclass
class QualityRun:
    """The quality figures of one training run of a model trained in the run."""

    values: dict[str, float]  # metric -> figure
    seed: int | None  # None: not recorded
    threads: int | None  # torch threads the run trained with (None: not recorded)
    hardware: str  # fingerprint id of the runner

    def to_json(self) -> dict[str, Any]:
        return _rounded({"values": self.values, "seed": self.seed, "threads": self.threads,
                         "hardware": self.hardware})


@dataclass
class QualityExamples:
    """Each example's contribution to each quality figure (a metric's ``per_example`` items), and the
    examples' keys (:func:`pytest_energy.cases.data.example_keys`) that pair them with a later run's."""

    keys: list[str]
    scores: dict[str, list[Any]]  # metric -> one item per key


@dataclass
class Baseline:
    """One record's stored baseline: its hardware-independent facts and its energy per device kind."""

    name: str
    nodeid: str
    unit: str
    quality: dict[str, float]
    work: dict[str, float]  # the FLOP proxy the gate judges (see work_values)
    model: dict[str, Any]  # the model that ran (see model_identity); {} for a test without one
    hardware: str  # fingerprint id of the runner that recorded quality, work and model
    recorded: str  # ISO 8601 timestamp of the record
    git_commit: str | None = None
    energy: dict[str, EnergyBaseline] = field(default_factory=dict)  # device kind id -> energy
    path: Path | None = None  # the file it was read from
    # How the energy was measured beside ``unit`` (see Measurement): "" and 0 where the entry predates them.
    form: str = ""
    iterations_per_call: int = 0
    examples: QualityExamples | None = None  # None: not kept (a metric without per-example items, an old file)
    runs: list[QualityRun] = field(default_factory=list)  # training runs' figures (--energy-quality-seeds)
    trained_in_run: bool = False  # its model was trained in the run that recorded it (a fine-tune, a fallback)
    trained_weights: str = ""  # the digest of the weights it trained to (cases.models.weights_digest)

    @property
    def measurement(self) -> Measurement:
        return Measurement(self.unit, self.form, self.iterations_per_call)

    def to_json(self) -> dict[str, Any]:
        data = _rounded({
            "nodeid": self.nodeid,
            "unit": self.unit,
            "quality": self.quality,
            "hardware": self.hardware,
            "recorded": self.recorded,
            "git_commit": self.git_commit,
        })
        if self.model:
            data["model"] = dict(self.model)
        if self.form:
            data["form"] = self.form
        if self.iterations_per_call:
            data["iterations_per_call"] = self.iterations_per_call
        # Counts are exact (zero noise): rounding them would make a threshold of 0 fail identical work.
        data["work"] = {k: int(v) if float(v).is_integer() else v for k, v in self.work.items()}
        data["energy"] = {kind: entry.to_json() for kind, entry in self.energy.items()}
        if self.examples is not None:
            data["quality_examples"] = {"keys": _Inline(self.examples.keys),
                                        "scores": {m: _Inline(_rounded(v)) for m, v in self.examples.scores.items()}}
        if self.runs:
            data["quality_runs"] = [run.to_json() for run in self.runs]
        if self.trained_in_run:
            data["trained_in_run"] = True
        if self.trained_weights:
            data["trained_weights"] = self.trained_weights
        return data


class _Inline(list):  # type: ignore[type-arg]
    """A list written on one line of its file (per-example scores: hundreds of items, one line each
    would bury the figures a reviewer reads)."""


@dataclass(frozen=True)
class Measurement:
    """What one iteration of a record's energy is: its ``unit`` ("inference", "run"...), the record's
    ``form`` (rounds of a call, one block, a case, a whole test) and how many iterations one call of the
    measured function counts as (a case's batch of inferences). Per-iteration joules of two records
    compare only where these match; an empty form or 0 (a baseline that predates them) matches any."""

    unit: str
    form: str = ""
    iterations_per_call: int = 0

    def differences(self, other: Measurement) -> list[str]:
        """The parts that differ between two measurements, as "unit run -> inference" phrases (self first)."""
        found = [f"unit {self.unit} -> {other.unit}"] if self.unit != other.unit else []
        if self.form and other.form and self.form != other.form:
            found.append(f"form {self.form} -> {other.form}")
        mine, theirs = self.iterations_per_call, other.iterations_per_call
        if mine and theirs and mine != theirs:
            found.append(f"iterations per call {mine} -> {theirs}")
        return found


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{_SIGNIFICANT}g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _fix(path: Path, problem: str) -> BaselineError:
    return BaselineError(
        f"pytest-energy: baseline file {path} {problem}; fix it, or delete it and re-record with "
        "--energy-update-baselines (other baselines are still used, this file is left as it is)"
    )


def _number(value: Any) -> bool:
    """A finite JSON number (not a bool; an integer too large for a float is refused too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _refuse_constant(name: str) -> float:
    """``json.loads`` hook: NaN and Infinity are not JSON; written back they would be null."""
    raise ValueError(f"{name} is not a number JSON allows")


def _energy_entry(path: Path, name: str, kind: str, data: Any) -> EnergyBaseline:
    where = f"record {name!r} energy {kind!r}"
    if not isinstance(data, dict):
        raise _fix(path, f"has {where} that is not an object")
    rounds_data = data.get("rounds")
    if not isinstance(rounds_data, list):
        raise _fix(path, f"has {where} without a 'rounds' list")
    rounds = []
    for index, item in enumerate(rounds_data):
        if not (isinstance(item, dict) and isinstance(item.get("iterations"), int) and item["iterations"] > 0
                and _number(item.get("seconds")) and isinstance(item.get("by_device"), dict)
                and item["by_device"] and all(_number(v) for v in item["by_device"].values())):
            raise _fix(path, f"has {where} whose round {index} is not {{iterations > 0, seconds, by_device}}")
        rounds.append(EnergyRound(item["iterations"], float(item["seconds"]),
                                  {str(k): float(v) for k, v in item["by_device"].items()}))
    devices = data.get("devices", {})
    reference = data.get("reference_joules", {})
    facts = data.get("facts", {})
    if not (isinstance(devices, dict) and all(isinstance(v, str) for v in devices.values())):
        raise _fix(path, f"has {where} whose 'devices' is not device -> method")
    if not (isinstance(reference, dict) and all(_number(v) for v in reference.values())):
        raise _fix(path, f"has {where} whose 'reference_joules' is not device -> joules")
    if not isinstance(facts, dict):
        raise _fix(path, f"has {where} whose 'facts' is not an object")
    conditions = data.get("conditions", {})
    if not (isinstance(conditions, dict) and all(isinstance(v, dict) for v in conditions.values())):
        raise _fix(path, f"has {where} whose 'conditions' is not device -> conditions")
    return EnergyBaseline(kind, dict(devices), rounds, {str(k): float(v) for k, v in reference.items()},
                          dict(facts), str(data.get("hardware", "")), str(data.get("recorded", "")),
                          data.get("git_commit"), {str(k): dict(v) for k, v in conditions.items()})


def _entry(path: Path, name: str, data: Any) -> Baseline:
    """Validate one record's entry (files are reviewed and sometimes hand-edited)."""
    if not isinstance(data, dict):
        raise _fix(path, f"has record {name!r} that is not an object")
    quality = data.get("quality", {})
    work = data.get("work", {})
    model = data.get("model", {})
    energy = data.get("energy", {})
    if not (isinstance(quality, dict) and all(_number(v) for v in quality.values())):
        raise _fix(path, f"has record {name!r} whose 'quality' is not metric -> number")
    if not (isinstance(work, dict) and all(_number(v) for v in work.values())):
        raise _fix(path, f"has record {name!r} whose 'work' is not proxy -> number")
    if not (isinstance(model, dict) and all(isinstance(v, dict) if k == "settings" else isinstance(v, str)
                                            for k, v in model.items())):
        raise _fix(path, f"has record {name!r} whose 'model' is not field -> text (its settings: name -> value)")
    if not isinstance(energy, dict):
        raise _fix(path, f"has record {name!r} whose 'energy' is not device kind -> energy")
    trained, weights = data.get("trained_in_run", False), data.get("trained_weights", "")
    if not isinstance(trained, bool) or not isinstance(weights, str):
        raise _fix(path, f"has record {name!r} whose 'trained_in_run' is not true or false, or 'trained_weights' "
                         "not a digest")
    form, per_call = data.get("form", ""), data.get("iterations_per_call", 0)
    if not isinstance(form, str) or isinstance(per_call, bool) or not isinstance(per_call, int) or per_call < 0:
        raise _fix(path, f"has record {name!r} whose 'form' is not text or 'iterations_per_call' not a count")
    return Baseline(
        name=name,
        nodeid=str(data.get("nodeid", name)),
        unit=str(data.get("unit", "iteration")),
        quality={k: float(v) for k, v in quality.items()},
        work={k: float(v) for k, v in work.items()},
        model=dict(model),
        hardware=str(data.get("hardware", "")),
        recorded=str(data.get("recorded", "")),
        git_commit=data.get("git_commit"),
        energy={str(kind): _energy_entry(path, name, str(kind), entry) for kind, entry in energy.items()},
        path=path,
        examples=_examples_entry(path, name, data.get("quality_examples")),
        runs=_runs_entry(path, name, data.get("quality_runs", [])),
        trained_in_run=trained,
        trained_weights=weights,
        form=form,
        iterations_per_call=per_call,
    )


def _examples_entry(path: Path, name: str, data: Any) -> QualityExamples | None:
    if data is None:
        return None
    keys = data.get("keys") if isinstance(data, dict) else None
    scores = data.get("scores") if isinstance(data, dict) else None
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and isinstance(scores, dict)
            and all(isinstance(v, list) and len(v) == len(keys) for v in scores.values())):
        raise _fix(path, f"has record {name!r} whose 'quality_examples' is not {{keys: [...], scores: {{metric: "
                         "[one item per key]}}}")
    return QualityExamples(list(keys), {str(m): list(v) for m, v in scores.items()})


def _runs_entry(path: Path, name: str, data: Any) -> list[QualityRun]:
    problem = _fix(path, f"has record {name!r} whose 'quality_runs' is not a list of {{values: {{metric: number}}, "
                         "seed, threads, hardware}")
    if not isinstance(data, list):
        raise problem
    runs = []
    for run in data:
        if not isinstance(run, dict):
            raise problem
        values, seed, threads = run.get("values"), run.get("seed"), run.get("threads")
        if not (isinstance(values, dict) and values and all(_number(v) for v in values.values())
                and (seed is None or (isinstance(seed, int) and not isinstance(seed, bool)))
                and (threads is None or (isinstance(threads, int) and not isinstance(threads, bool)))):
            raise problem
        runs.append(QualityRun({str(m): float(v) for m, v in values.items()}, seed, threads,
                               str(run.get("hardware", ""))))
    return runs


def render_file(baselines: Iterable[Baseline]) -> str:
    """The text of one baseline file: stable key order, rounded numbers, one trailing newline."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "records": {b.name: b.to_json() for b in sorted(baselines, key=lambda b: b.name)},
    }
    inline: list[str] = []

    def placeholder(value: Any) -> Any:  # each _Inline list becomes a token, replaced by its one-line form
        if isinstance(value, _Inline):
            inline.append(json.dumps(list(value), separators=(",", ":"), allow_nan=False))
            return f"\u0000inline{len(inline) - 1}"
        if isinstance(value, dict):
            return {k: placeholder(v) for k, v in value.items()}
        if isinstance(value, list):
            return [placeholder(v) for v in value]
        return value

    text = json.dumps(placeholder(document), indent=2, sort_keys=True, allow_nan=False)
    text = re.sub(r'"\\u0000inline(\d+)"', lambda match: inline[int(match.group(1))], text)
    return text + "\n"
