"""What a record is stored as: its baseline entry (:func:`from_record`), the facts of it that no
hardware changes (quality, counted work, the model that ran) and its energy on each device kind.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Sequence

from ...core.record import Record, judged_devices
from ...measure.fingerprint import DEFAULT_KIND_FIELDS, DeviceKind, device_kinds
from .format import Baseline, EnergyBaseline, EnergyRound, Measurement, QualityExamples, QualityRun, _number


def measurement(record: Record) -> Measurement:
    """How a record's energy was measured (see :class:`Measurement`)."""
    return Measurement(record.unit, record.form, record.iterations_per_call)


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
