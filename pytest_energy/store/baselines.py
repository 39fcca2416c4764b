"""The baselines store: ``<baselines>/<set>/<test module path>.json``.

One JSON file per test module, mirroring the test tree, so a reviewer sees a model change's energy
next to its test in a diff. A record's entry is split by what its numbers depend on:

* once per record, what no hardware changes: the counted work (FLOPs) the gate judges, the quality
  values, the model that ran (requested, what ran, its digest, dtype, device), how the energy was
  measured (its unit, the record's form, how many iterations one call counts as) and the runner that
  recorded them (``hardware``, a fingerprint id). Any runner judges these. With the quality values
  go what a verdict needs to know how far they move by chance: each example's score
  (``quality_examples``, keyed by example so a later run is compared on the same examples) and, for a
  model trained in the run, the figures of several training runs (``quality_runs``: seeds and thread
  counts, on every runner that recorded some with ``--energy-quality-seeds``). Files without them
  (written before they existed) are read; their quality is then judged by the tolerance alone, with a
  note;
* ``energy``, keyed by device kind (:func:`pytest_energy.measure.fingerprint.device_kinds`, e.g.
  ``"gpu: NVIDIA H100 80GB HBM3 x1"``): per kind the rounds a verdict needs (iterations, seconds,
  net joules, net joules per device), which method measured each device, the reference-workload
  joules for normalised verdicts, the devices' facts (power limit, driver, clocks), the GPUs'
  conditions at the start (temperature, SM clock, power limit, throttle reasons) and the runner.
  Only a runner with devices of the same kind judges them.

Keys are sorted, measured numbers rounded to 6 significant digits (counts kept exact), indentation
fixed: the same run writes the same bytes. Files of the first layout
(``<baselines>/<fingerprint id>/<set>/...``, schema 1) are refused with one line naming
``pytest-energy baselines migrate``, which rewrites them (:func:`migrate`).

Writes are read-modify-write under a lock, then an atomic rename (:mod:`pytest_energy.store.locking`), so
parallel writers lose nothing and a reader never sees half a file. A file that cannot be read (bad
JSON, hand-edited into a wrong shape, another schema version) is reported in one line naming it and
is never overwritten: the records in it may be someone's only baseline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..core.config import Settings, SettingError, named
from ..measure.fingerprint import DEFAULT_KIND_FIELDS, DeviceKind, device_kinds
from .locking import LockTimeout, atomic_write_text, locked
from ..core.figures import pooled_net_per_iteration
from ..core.record import Collection, Record, judged_devices

#: Version of the baseline file layout. Files of another version are refused with what to do.
SCHEMA_VERSION = 2
#: The first layout: one folder per hardware fingerprint, energy and work in one entry.
FIRST_LAYOUT = 1

_SIGNIFICANT = 6
_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]+")
MIGRATE = "pytest-energy baselines migrate"


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


def measurement(record: Record) -> Measurement:
    """How a record's energy was measured (see :class:`Measurement`)."""
    return Measurement(record.unit, record.form, record.iterations_per_call)


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


def quality_values(record: Record) -> dict[str, float]:
    """Metric -> value of a record's quality results (entries are ``{"value": ...}`` or bare numbers)."""
    values = {}
    for metric, entry in record.quality.items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if _number(value):
            values[metric] = float(value)
    return values


def quality_examples(record: Record) -> QualityExamples | None:
    """Each example's scores of a record's quality figures that kept them, under the examples' keys
    (None where no figure kept any, or they were scored on different examples)."""
    keys: list[str] | None = None
    scores: dict[str, list[Any]] = {}
    for metric, entry in sorted(record.quality.items()):
        if not isinstance(entry, dict) or not _number(entry.get("value")):
            continue
        items, found = entry.get("per_example"), entry.get("example_keys")
        if not (isinstance(items, list) and isinstance(found, list) and len(items) == len(found) and items):
            continue
        if keys is None:
            keys = [str(k) for k in found]
        if [str(k) for k in found] == keys:
            scores[metric] = list(items)
    return QualityExamples(keys, scores) if keys is not None and scores else None


def quality_runs(record: Record) -> list[QualityRun]:
    """The training runs a record's quality figures were measured over (``--energy-quality-seeds``):
    the runs' entries are kept in the same order under every metric."""
    hardware = str(record.fingerprint.get("id") or "")
    runs: list[QualityRun] = []
    for metric, entry in sorted(record.quality.items()):
        listed = entry.get("runs") if isinstance(entry, dict) else None
        if not isinstance(listed, list):
            continue
        for index, run in enumerate(listed):
            if not (isinstance(run, dict) and _number(run.get("value"))):
                continue
            while len(runs) <= index:
                runs.append(QualityRun({}, run.get("seed"), run.get("threads"), hardware))
            runs[index].values[metric] = float(run["value"])
    return [run for run in runs if run.values]


def trained_in_run(record: Record) -> bool:
    """Whether the record's model was trained in its run (its quality entries say so)."""
    return any(isinstance(entry, dict) and entry.get("trained_in_run") for entry in record.quality.values())


def trained_weights(record: Record) -> str:
    """The digest of the weights the record's model trained to in its run ("" where it trained none)."""
    return next((str(entry["trained_weights"]) for entry in record.quality.values()
                 if isinstance(entry, dict) and entry.get("trained_weights")), "")


#: The proxies the gate judges, by preference: FLOPs per inference where a record has them (its unit
#: is one inference), else the whole run's FLOPs (a fine-tune of fixed steps, a block given its work:
#: more steps are more energy even where each step's holds), else FLOPs per iteration (a call measured
#: in rounds, whose iterations per round vary with the window; :mod:`pytest_energy.measure.work`). Counted, not
#: measured, so they move only when the work does: a CPU-only CI catches a model doing more work with
#: no noise.
WORK_PROXIES = ("flops_per_inference", "flops", "flops_per_iteration")

#: The model facts a baseline keeps.
MODEL_KEYS = ("requested", "ran", "source", "digest", "dtype", "device", "settings")
#: Those that say which model ran and how, each compared where both sides name it; only equal digests
#: prove the weights the same. ``device`` is the runner's, not the model's: a CPU runner judges a GPU's
#: baseline. ``settings`` is how a case runs its model (``Case.settings``: new tokens, the fine-tune's recipe).
IDENTITY_KEYS = ("requested", "ran", "source", "digest", "dtype", "settings")


def work_values(record: Record) -> dict[str, float]:
    """The one FLOP proxy of a record the gate judges (empty where the record counted none)."""
    for key in WORK_PROXIES:
        value = record.proxies.get(key)
        if _number(value) and value > 0:
            return {key: float(value)}
    return {}


def model_identity(record: Record) -> dict[str, Any]:
    """The model a case ran, from its record (:meth:`ModelFacts.identity`): {} for a test that declares none."""
    return record.model.identity() if record.model is not None else {}


def _comparable(value: Any) -> str:
    """One identity field as compared: settings by their JSON (key order aside), the rest as text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def model_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The identity fields (:data:`IDENTITY_KEYS`) that both model identities name and that differ."""
    return [key for key in IDENTITY_KEYS
            if old.get(key) and new.get(key) and _comparable(old[key]) != _comparable(new[key])]


def describe_change(key: str, old: Any, new: Any) -> str:
    """One changed identity field, as the gate says it: "dtype float32 -> bfloat16"; settings name only
    those that changed ("max_new_tokens 40 -> 12")."""
    if key == "settings" and isinstance(old, dict) and isinstance(new, dict):
        return ", ".join(f"{name} {old.get(name, 'unset')} -> {new.get(name, 'unset')}"
                         for name in dict.fromkeys([*old, *new])
                         if _comparable(old.get(name)) != _comparable(new.get(name)))
    return f"{key} {old} -> {new}"


def describe_model(model: dict[str, Any]) -> str:
    """A model identity in one phrase: the request, and what ran where that differs."""
    requested, ran = str(model.get("requested", "?")), str(model.get("ran", ""))
    return requested if not ran or ran == requested else f"{requested} (ran {ran})"


def energy_from_record(record: Record, kind: DeviceKind) -> EnergyBaseline:
    """The energy entry a record's devices of one kind would be stored as (its valid rounds only, and of
    those the plausible ones: above zero net)."""
    methods = {c.device: c.method for c in record.components}
    rounds = [EnergyRound(r.iterations, r.seconds, {d: r.by_device[d] for d in kind.devices if d in r.by_device})
              for r in record.rounds if r.valid and r.iterations > 0]
    # A round at or below zero net (the device dipped below its idle power) is no energy figure: stored,
    # every later verdict would have to leave it out.
    rounds = [r for r in rounds if math.isfinite(r.net_joules) and r.net_joules > 0]
    return EnergyBaseline(
        kind=kind.id,
        devices={d: methods[d] for d in kind.devices if d in methods},
        rounds=rounds,
        reference_joules={d: j for d, j in record.reference_joules.items() if d in kind.devices},
        facts=dict(kind.facts),
        hardware=str(record.fingerprint.get("id") or ""),
        recorded=record.timestamp,
        git_commit=record.git_commit,
        conditions=start_conditions(record, kind.devices),
    )


def start_conditions(record: Record, devices: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Device -> its conditions at the start of the record's measurement, for those of ``devices``
    that report them (GPUs)."""
    wanted = set(devices)
    return {c.device: dict(c.conditions["start"]) for c in record.components
            if c.device in wanted and c.conditions.get("start")}


def record_kinds(record: Record, fields: Sequence[str] = DEFAULT_KIND_FIELDS) -> list[DeviceKind]:
    """The device kinds of the devices a record's energy verdicts judge (see ``Record.judged_devices``)."""
    return component_kinds(record.components, record.fingerprint, fields)


def component_kinds(components: Sequence[Any], fingerprint: dict[str, Any],
                    fields: Sequence[str] = DEFAULT_KIND_FIELDS) -> list[DeviceKind]:
    """:func:`record_kinds` from a record's components and fingerprint alone (what a history can
    give without rebuilding the whole record)."""
    judged = set(judged_devices(components))
    return device_kinds([c for c in components if c.device in judged], fingerprint, fields)


def from_record(record: Record, kinds: Iterable[DeviceKind] | None = None) -> Baseline:
    """The baseline a record would be stored as, with the energy of each of ``kinds`` (None: all of
    the record's, by the default kind fields)."""
    kinds = record_kinds(record) if kinds is None else kinds
    return Baseline(
        name=record.name,
        nodeid=record.nodeid,
        unit=record.unit,
        quality=quality_values(record),
        work=work_values(record),
        model=model_identity(record),
        hardware=str(record.fingerprint.get("id") or ""),
        recorded=record.timestamp,
        git_commit=record.git_commit,
        energy={kind.id: energy_from_record(record, kind) for kind in kinds},
        examples=quality_examples(record),
        runs=quality_runs(record),
        trained_in_run=trained_in_run(record),
        trained_weights=trained_weights(record),
        form=record.form,
        iterations_per_call=record.iterations_per_call,
    )


# -- files ------------------------------------------------------------------------------------------
def set_folder(root: Path, set_name: str) -> Path:
    """Folder of one baseline set (every runner's baselines of that set live in it)."""
    return Path(root) / _safe(set_name)


def _safe(part: str) -> str:
    cleaned = _SAFE_PART.sub("_", part).strip(".")
    return cleaned or "_"


def file_for(folder: Path, nodeid: str) -> Path:
    """The file holding a record's baseline: its test module's path under the set folder."""
    module = nodeid.split("::", 1)[0].replace("\\", "/")
    parts = [_safe(p) for p in module.split("/") if p not in ("", ".")]
    return folder.joinpath(*(parts or ["_"])).with_name((parts or ["_"])[-1] + ".json")


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


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"


def _read_regular(path: Path) -> str:
    """The text of a regular file; anything else (a FIFO would block the run forever) is refused.

    Opened without blocking and checked on the open descriptor, so nothing can swap the file between
    the check and the read.
    """
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(handle, "rb") as stream:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise BaselineError(f"pytest-energy: skipped {path}: a {_kind(mode)}, not a regular file; baselines "
                                "are read from regular files only (move it aside)")
        return stream.read().decode("utf-8")


def _document(path: Path) -> dict[str, Any]:
    """The JSON object of a baseline file; :class:`BaselineError` (one line) when it is not one."""
    try:
        text = _read_regular(path)
    except OSError as error:
        raise _fix(path, f"cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise _fix(path, f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise _fix(path, f"is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _fix(path, "is not a JSON object")
    return data


def read_file(path: Path) -> dict[str, Baseline]:
    """Every baseline in one file; raises :class:`BaselineError` (one line) when it cannot be used."""
    data = _document(path)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise BaselineError(
                f"pytest-energy: baseline file {path} has schema_version {version}, newer than this "
                f"pytest-energy reads ({SCHEMA_VERSION}); upgrade pytest-energy (the file is left as it is)"
            )
        if version == FIRST_LAYOUT:
            raise BaselineError(f"pytest-energy: baseline file {path} is in the first layout (schema_version 1); "
                                f"run `{MIGRATE}` once to rewrite it (the file is left as it is)")
        raise _fix(path, f"has schema_version {version!r}, not {SCHEMA_VERSION}")
    records = data.get("records")
    if not isinstance(records, dict):
        raise _fix(path, "has no 'records' object")
    return {name: _entry(path, name, entry) for name, entry in records.items()}


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


@dataclass
class LoadedSet:
    """One set's baselines as read, and a line per file that could not be used."""

    folder: Path
    baselines: dict[str, Baseline] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    broken: list[Path] = field(default_factory=list)


def _file_in_the_way(folder: Path) -> Path | None:
    """The file that stands where ``folder`` or one of its parents should be (``--energy-baselines``
    pointing at a file), if any."""
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            return None if path.is_dir() else path
    return None


def _not_a_folder(path: Path) -> str:
    return (f"pytest-energy: the baselines path {path} is a file, not a folder: no baseline can be read or "
            "written there; point --energy-baselines at a folder, or move the file aside")


def load_set(folder: Path) -> LoadedSet:
    """Read every baseline file of a set folder; a missing folder is an empty set.

    A file where the folder should be is one line in ``errors`` (and in ``broken``), not a silent
    empty set that reads every test as new.
    """
    loaded = LoadedSet(Path(folder))
    if not loaded.folder.is_dir():
        in_the_way = _file_in_the_way(loaded.folder)
        if in_the_way is not None:
            loaded.errors.append(_not_a_folder(in_the_way))
            loaded.broken.append(in_the_way)
        return loaded
    for path in sorted(loaded.folder.rglob("*.json")):
        try:
            loaded.baselines.update(read_file(path))
        except BaselineError as error:
            loaded.errors.append(str(error))
            loaded.broken.append(path)
    return loaded


def set_names(root: Path) -> list[str]:
    """The baseline sets under ``root``: its folders that hold baseline files, the first layout's aside."""
    root = Path(root)
    if not root.is_dir():
        return []
    old = set(first_layout(root))
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p not in old and next(p.rglob("*.json"), None))


def orphaned(loaded: LoadedSet, records: Sequence[Record], collection: Collection) -> list[Baseline]:
    """The baselines of a set that no collected test matched (see :class:`Collection`)."""
    names = {r.name for r in records}
    passed = {r.nodeid for r in records if r.judgeable}
    return [b for name, b in sorted(loaded.baselines.items()) if name not in names and (
        b.nodeid in passed or (b.nodeid not in collection.tests and collection.covers(b.nodeid)))]


def first_layout(root: Path) -> list[Path]:
    """The folders under ``root`` that hold baselines of the first layout (one per fingerprint id)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.rglob("*.json")):
            try:
                version = _document(path).get("schema_version")
            except BaselineError:
                continue
            if version == FIRST_LAYOUT:
                found.append(folder)
            break  # one file tells the layout of its folder
    return found


@dataclass
class Update:
    """What :func:`update` did."""

    written: dict[str, str] = field(default_factory=dict)  # record name -> "new" or "refreshed"
    refused: list[str] = field(default_factory=list)  # record names whose file cannot be read
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def lacks(existing: Baseline, entry: Baseline) -> bool:
    """Whether a stored entry lacks a hardware-independent fact this run's entry carries (a model identity
    field, the trained weights' digest, per-example scores, training runs): it was recorded before that
    fact was kept, or a run of --energy-quality-seeds measured training runs it does not hold, so an
    update rewrites it even where every verdict read unchanged."""
    return bool(set(entry.model) - set(existing.model) or (entry.trained_weights and not existing.trained_weights)
                or (entry.examples is not None and existing.examples is None)
                or any(run.to_json() not in [kept.to_json() for kept in existing.runs] for run in entry.runs))


def merged(existing: Baseline | None, entry: Baseline) -> Baseline:
    """``entry`` over ``existing``: its hardware-independent part, and its energy kinds beside the
    kinds it does not hold (another runner's GPU baseline survives this runner's refresh); the
    training runs of other runners beside this one's (:func:`pooled_runs`)."""
    if existing is None:
        return entry
    return Baseline(**{**entry.__dict__, "energy": {**existing.energy, **entry.energy},
                       "runs": pooled_runs(existing, entry)})


def pooled_runs(existing: Baseline, entry: Baseline) -> list[QualityRun]:
    """The training runs a refreshed entry keeps: its own, and the other runners' of the same model on
    the same examples (a spread between runs that pools every CPU model of a fleet that recorded one)."""
    same_model = existing.model == entry.model and (
        existing.examples is None or entry.examples is None or existing.examples.keys == entry.examples.keys)
    if not same_model:
        return list(entry.runs)
    if not entry.runs:
        return list(existing.runs)
    return [run for run in existing.runs if run.hardware != entry.hardware and run not in entry.runs] + list(entry.runs)


def update(folder: Path, baselines: Iterable[Baseline], replace: Iterable[str] = ()) -> Update:
    """Write or refresh these baselines in a set folder, keeping every other entry of each file and
    every other device kind of each entry (except for the record names in ``replace``: a changed
    model's old energy on other device kinds measured another model).

    Each file is re-read under its lock just before the write, so a concurrent writer's entries
    survive; a file that cannot be read is reported and left untouched.
    """
    result = Update()
    by_file: dict[Path, list[Baseline]] = {}
    for baseline in baselines:
        by_file.setdefault(file_for(folder, baseline.nodeid), []).append(baseline)
    in_the_way = _file_in_the_way(Path(folder)) if by_file else None
    if in_the_way is not None:
        result.errors.append(_not_a_folder(in_the_way))
        result.refused += [entry.name for entries in by_file.values() for entry in entries]
        return result
    for path, entries in sorted(by_file.items()):
        try:
            with locked(path):
                existing = read_file(path) if path.exists() or path.is_symlink() else {}
                replaced = set(replace)
                for entry in entries:
                    result.written[entry.name] = "refreshed" if entry.name in existing else "new"
                    existing[entry.name] = entry if entry.name in replaced else merged(existing.get(entry.name), entry)
                text = render_file(existing.values())
                if not path.exists() or _read_regular(path) != text:
                    atomic_write_text(path, text)
                    result.files.append(path)
        except (BaselineError, LockTimeout) as error:  # this file is left as it is; the others are written
            result.errors.append(str(error))
            result.refused += [entry.name for entry in entries]
    return result


# -- migration from the first layout -----------------------------------------------------------------
def _first_layout_id(gpu_names: Sequence[str], cpu: str, logical_cpus: int, methods: Sequence[str]) -> str:
    """The digest part of a first-layout fingerprint id (as fingerprint.py computed it then and now)."""
    key = "|".join([*sorted(gpu_names), cpu, str(logical_cpus), *methods])
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _cpu_candidates(slug: str, given: Sequence[str]) -> list[str]:
    words = slug.split("-")
    return list(dict.fromkeys([*given, " ".join(words).upper(), " ".join(w.capitalize() for w in words),
                               " ".join(w.upper() if len(w) <= 4 else w.capitalize() for w in words)]))


def resolve_hardware(fingerprint_id: str, methods: Sequence[str], cpu_models: Sequence[str],
                     gpu_names: Sequence[str]) -> dict[str, Any] | None:
    """The CPU model, logical CPUs and GPU names a first-layout fingerprint id was made of, where one
    of the candidates hashes to it (so a guess is never taken for the truth); None otherwise."""
    match = re.fullmatch(r"(.+?)-(?:(\d+)c|x(\d+))-([0-9a-f]{8})", fingerprint_id)
    if not match:
        return None
    label, cores, gpu_count, digest = match.groups()
    gpu_sets = [[]] if cores else [[name] * int(gpu_count) for name in gpu_names]
    cpus = _cpu_candidates(label, cpu_models) if cores else list(cpu_models)
    counts = [int(cores)] if cores else range(1, 1025)
    for gpus in gpu_sets:
        for cpu in cpus:
            for count in counts:
                if _first_layout_id(gpus, cpu, count, methods) == digest:
                    return {"id": fingerprint_id, "cpu_model": cpu, "logical_cpus": count,
                            "gpus": [{"device": f"gpu:{i}", "name": n} for i, n in enumerate(gpus)]}
    return None


@dataclass
class Migration:
    """What :func:`migrate` did: lines for the terminal, files written, old folders removed."""

    lines: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    failed: bool = False


def _first_layout_entry(path: Path, name: str, data: Any, fingerprint_id: str, hardware: dict[str, Any] | None,
                        fields: Sequence[str]) -> Baseline:
    """A first-layout record as the new layout stores it; its energy only where the hardware is known."""
    if not (isinstance(data, dict) and isinstance(data.get("rounds"), list) and isinstance(data.get("devices"), dict)):
        raise _fix(path, f"has record {name!r} without 'rounds' and 'devices' (first layout)")
    quality, work = data.get("quality", {}), data.get("work", {})
    if not (isinstance(quality, dict) and all(_number(v) for v in quality.values())
            and isinstance(work, dict) and all(_number(v) for v in work.values())):
        raise _fix(path, f"has record {name!r} whose 'quality' or 'work' is not name -> number")
    baseline = Baseline(name=name, nodeid=str(data.get("nodeid", name)), unit=str(data.get("unit", "iteration")),
                        quality={k: float(v) for k, v in quality.items()},
                        work={k: float(v) for k, v in work.items()}, model={},
                        hardware=fingerprint_id,
                        recorded=str(data.get("recorded", "")), git_commit=data.get("git_commit"))
    if hardware is None:
        return baseline
    reference = data.get("reference_joules")
    reference = reference if isinstance(reference, dict) else {}
    components = [_Device(d, "gpu" if d.startswith("gpu") else d.split(":")[0], str(m))
                  for d, m in sorted(data["devices"].items())]
    for kind in device_kinds(components, hardware, fields):
        rounds = []
        for item in data["rounds"]:
            by_device = item.get("by_device") if isinstance(item, dict) else None
            if not (isinstance(by_device, dict) and isinstance(item.get("iterations"), int) and item["iterations"] > 0
                    and _number(item.get("seconds")) and all(_number(by_device.get(d)) for d in kind.devices)):
                raise _fix(path, f"has record {name!r} with a round that is not {{iterations, seconds, by_device}}")
            rounds.append(EnergyRound(item["iterations"], float(item["seconds"]),
                                      {d: float(by_device[d]) for d in kind.devices}))
        baseline.energy[kind.id] = EnergyBaseline(
            kind.id, {d: str(data["devices"][d]) for d in kind.devices}, rounds,
            {d: float(v) for d, v in reference.items() if d in kind.devices and _number(v)},
            dict(kind.facts), fingerprint_id, baseline.recorded, baseline.git_commit)
    return baseline


@dataclass(frozen=True)
class _Device:
    device: str
    kind: str
    method: str


def migrate(root: Path, *, cpu_models: Sequence[str] = (), gpu_names: Sequence[str] = (),
            fields: Sequence[str] = ("product", "count")) -> Migration:
    """Rewrite first-layout baselines (``<root>/<fingerprint id>/<set>/...``) as ``<root>/<set>/...``.

    Quality, work and model facts always move; energy moves where the fingerprint id is matched by
    this machine's or a given CPU model / GPU name (the id's digest is checked, never guessed). A
    folder whose energy cannot be placed is left where it is, with one line saying what to give.
    Entries already in the new layout win over migrated ones (they are newer). Files are written
    with :func:`update`, so a migration run twice changes nothing.
    """
    result = Migration()
    root = Path(root)
    for folder in first_layout(root):
        entries: dict[str, list[Baseline]] = {}
        problems: list[str] = []
        documents: list[tuple[Path, dict[str, Any]]] = []
        for path in sorted(folder.rglob("*.json")):
            try:
                data = _document(path)
                if data.get("schema_version") != FIRST_LAYOUT or not isinstance(data.get("records"), dict):
                    raise _fix(path, "is not a first-layout baseline file")
                documents.append((path, data))
            except BaselineError as error:
                problems.append(str(error))
        # The id hashed every method the session had: the union of the devices its records measured.
        methods = sorted({f"{'gpu' if d.startswith('gpu') else d.split(':')[0]}:{m}"
                          for _, data in documents for entry in data["records"].values()
                          if isinstance(entry, dict) and isinstance(entry.get("devices"), dict)
                          for d, m in entry["devices"].items()})
        hardware = resolve_hardware(folder.name, methods, cpu_models, gpu_names)
        for path, data in documents:
            set_name = path.relative_to(folder).parts[0]
            for name, entry in data["records"].items():
                try:
                    migrated = _first_layout_entry(path, name, entry, folder.name, hardware, fields)
                except BaselineError as error:
                    problems.append(str(error))
                    continue
                entries.setdefault(set_name, []).append(migrated)
        if problems:
            result.failed = True
            result.lines += problems + [f"pytest-energy: {folder} not migrated (fix the files above, then run "
                                        f"`{MIGRATE}` again)"]
            continue
        for set_name, baselines in sorted(entries.items()):
            target = set_folder(root, set_name)
            newer = load_set(target).baselines
            fresh = [b for b in baselines if b.name not in newer]
            done = update(target, fresh)
            result.written += done.files
            result.lines += done.errors
            result.failed |= bool(done.errors)
            result.lines.append(f"pytest-energy: {folder.name}/{set_name}: {len(done.written)} baselines migrated "
                                f"to {target}" + (f", {len(baselines) - len(fresh)} kept from the new layout"
                                                  if len(fresh) < len(baselines) else ""))
        if not hardware:
            result.failed = True
            result.lines.append(
                f"pytest-energy: {folder}: quality and work migrated; its energy is not, as no CPU model or GPU "
                f"name given matches the fingerprint id {folder.name!r}: run `{MIGRATE} --cpu-model TEXT` "
                "(or --gpu-name TEXT) with the recording machine's model, as its runs' JSON shows it "
                "(session fingerprint), and the folder is migrated and removed")
            continue
        kinds = sorted({k for bs in entries.values() for b in bs for k in b.energy})
        result.lines.append(f"pytest-energy: {folder.name}: energy placed under device kind "
                            f"{', '.join(kinds) or '(none)'}; {folder} removed")
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
        result.removed.append(folder)
    if not result.lines:
        result.lines.append(f"pytest-energy: no first-layout baselines under {root}; nothing to migrate")
    return result


#: How close a run's work must be to a baseline's for :func:`adopt_models` to take it for the same
#: model: the gate's default tolerance of work verdicts (--energy-min-effect). Generated text can
#: differ by a few tokens between CPUs (a summary's FLOPs moved 0.03 % from an AMD to an Intel runner).
SAME_WORK = 0.05


def adopt_models(root: Path, run: dict[str, Any]) -> list[str]:
    """Name the model of baselines that name none (migrated ones), from a run's ``--energy-json``
    document: only where that run counted the baseline's work (within :data:`SAME_WORK`), so the
    model named is the one that ran when the baseline was recorded. Nothing else of an entry changes."""
    records = {str(r.get("name")): r for r in run.get("records", []) if isinstance(r, dict)}
    lines = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []:
        loaded = load_set(folder)
        lines += loaded.errors
        adopted, skipped = [], []
        for name, baseline in sorted(loaded.baselines.items()):
            data = records.get(name)
            if baseline.model or data is None:
                continue
            record = Record.from_dict(data)
            model = model_identity(record)
            counted = work_values(record)
            if model and baseline.work and counted.keys() == baseline.work.keys() and all(
                    abs(counted[k] - v) <= SAME_WORK * abs(v) for k, v in baseline.work.items()):
                adopted.append(dataclasses.replace(baseline, model=model))
            elif model:
                skipped.append(name)
        if adopted:
            update(folder, adopted)
        if adopted or skipped:
            lines.append(f"pytest-energy: {folder}: model named for {len(adopted)} baselines"
                         + (f"; {len(skipped)} left without (that run counted other work: " + ", ".join(skipped) + ")"
                            if skipped else ""))
    return lines or [f"pytest-energy: no baseline under {root} lacks a model the run names"]


# -- baselines from history ---------------------------------------------------------------------------
@dataclass
class Pooled:
    """Baselines pooled from several runs (:func:`pooled`), with how many runs fed each device kind."""

    baselines: list[Baseline] = field(default_factory=list)
    runs_per_kind: dict[str, int] = field(default_factory=dict)  # device kind id -> runs pooled


def model_changed(old: Baseline, new: Baseline) -> bool:
    """Whether two entries of one record measured different models: an identity field both name differs
    (:func:`model_changes`; the energy of the old model on other device kinds is then no baseline)."""
    return bool(model_changes(old.model, new.model))


def _same_work(record: Record, newest: Record) -> bool:
    """Whether an older record measured what the newest did: the same model and the same counted work."""
    return model_identity(record) == model_identity(newest) and work_values(record) == work_values(newest)


def pooled(runs: Sequence[Sequence[Record]], last: int, fields: Sequence[str] = DEFAULT_KIND_FIELDS) -> Pooled:
    """Baselines from the records of the newest ``last`` runs of each device kind, their rounds pooled.

    ``runs`` holds each run's records, newest run first. For each device kind, the ``last`` newest runs
    that measured a record on it are taken; a record's energy on that kind is the rounds of all of them
    that measured the same model and work as the newest (an older run of other work is not its steady
    state), with their reference-workload joules averaged. The hardware-independent part (work,
    quality, model) is the newest record's. Only passed tests' valid records count, as on update.
    """
    chosen: dict[str, list[int]] = {}  # kind id -> indexes of the runs pooled for it
    for index, records in enumerate(runs):
        for kind in {k.id for r in records if r.judgeable and r.valid for k in record_kinds(r, fields)}:
            if len(chosen.setdefault(kind, [])) < last:
                chosen[kind].append(index)
    newest: dict[str, Record] = {}
    measured: dict[str, dict[str, list[tuple[Record, DeviceKind]]]] = {}  # name -> kind id -> newest first
    for index, records in enumerate(runs):
        for record in records:
            if not record.judgeable or not record.valid:
                continue
            for kind in record_kinds(record, fields):
                if index in chosen.get(kind.id, ()):
                    newest.setdefault(record.name, record)
                    measured.setdefault(record.name, {}).setdefault(kind.id, []).append((record, kind))
    result = Pooled(runs_per_kind={kind: len(indexes) for kind, indexes in chosen.items()})
    for name, record in sorted(newest.items()):
        energy = {}
        for kind_id, found in measured[name].items():
            same = [(r, k) for r, k in found if _same_work(r, record)]
            if not same:
                continue
            entries = [energy_from_record(r, k) for r, k in same]
            first = entries[0]  # the newest run's: its devices, facts and runner
            references: dict[str, list[float]] = {}
            for entry in entries:
                for device, joules in entry.reference_joules.items():
                    references.setdefault(device, []).append(joules)
            energy[kind_id] = dataclasses.replace(
                first, rounds=[rnd for entry in reversed(entries) for rnd in entry.rounds],
                reference_joules={d: math.fsum(v) / len(v) for d, v in references.items()})
        if energy:
            result.baselines.append(dataclasses.replace(from_record(record, []), energy=energy))
    return result


def check_sets(settings: Settings, folder: Path) -> None:
    """A baseline set (compared and updated, or ``--energy-compare``'s) that does not exist while the
    baselines ``folder`` holds others is a typo: every test would read as new, and pass. Raises
    :class:`SettingError` naming those there."""
    held = set_names(folder)
    for name in ("baseline_set", "compare"):
        wanted = settings.values.get(name)
        if held and wanted and not set_folder(folder, wanted).is_dir():
            raise SettingError(f"pytest-energy: {named(settings, name)} has {wanted!r}, but {folder} holds no such "
                               f"baseline set (it holds {', '.join(held)}); give one of those, or record the set "
                               "with --energy-update-baselines")
