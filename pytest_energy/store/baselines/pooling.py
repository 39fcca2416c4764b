"""Entries combined: a refreshed entry over the stored one (:func:`merged`: other runners' device kinds
and training runs kept) and baselines pooled from the newest runs of a history (:func:`pooled`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Sequence

from ...core.record import Record
from ...measure.fingerprint import DEFAULT_KIND_FIELDS, DeviceKind
from .entries import energy_from_record, from_record, model_changes, model_identity, record_kinds, work_values
from .format import Baseline, QualityRun


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
