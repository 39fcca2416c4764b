"""The baselines store: ``<baselines>/<set>/<test module path>.json`` (``<set>@<profile>/`` for the records
of a measurement profile other than the default, ``--energy-profile``: they never meet the default's).

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

Every file a user can have is of this layout (schema 2); the fields added to it since are optional, so
an older file is read as it is. A file of another schema version is refused in one line naming it
(docs/baselines.md, "Files this version reads").

The parts, each with one job: ``format.py`` (the entries' types, their JSON written byte-stable and
checked when read back), ``entries.py`` (what a record is stored as: its model identity, work, quality
and energy per device kind), ``files.py`` (paths, safe reading of a set, locked atomic updates) and
``pooling.py`` (a refreshed entry merged over the stored one; baselines pooled from history runs).
The names callers use are importable from here.
"""

from __future__ import annotations

from .entries import (IDENTITY_KEYS, MODEL_KEYS, WORK_PROXIES, component_kinds, describe_change, describe_model,
                      energy_from_record, from_record, measurement, model_changes, model_identity, quality_examples,
                      quality_runs, quality_values, record_kinds, start_conditions, trained_in_run, trained_weights,
                      work_values)
from .files import LoadedSet, Update, check_sets, file_for, load_set, orphaned, read_file, set_folder, set_names, update
from .format import (SCHEMA_VERSION, Baseline, BaselineError, EnergyBaseline, EnergyRound, Measurement, QualityExamples,
                     QualityRun, render_file)
from .pooling import Pooled, lacks, merged, model_changed, pooled, pooled_runs

__all__ = [
    "IDENTITY_KEYS", "MODEL_KEYS", "SCHEMA_VERSION", "WORK_PROXIES", "Baseline", "BaselineError", "EnergyBaseline",
    "EnergyRound", "LoadedSet", "Measurement", "Pooled", "QualityExamples", "QualityRun", "Update", "check_sets",
    "component_kinds", "describe_change", "describe_model", "energy_from_record", "file_for", "from_record", "lacks",
    "load_set", "measurement", "merged", "model_changed", "model_changes", "model_identity", "orphaned", "pooled",
    "pooled_runs", "quality_examples", "quality_runs", "quality_values", "read_file", "record_kinds", "render_file",
    "set_folder", "set_names", "start_conditions", "trained_in_run", "trained_weights", "update", "work_values",
]
