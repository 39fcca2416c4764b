"""The regression gate: records against baselines, turned into a judgement the session acts on, and
the stores written after it (baselines on request, history always)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..core.budget import (MODELLED_OVER, SHARED_OVER, EnergyBudget, failed_budgets, missed_quality, not_checked,
                           over_modelled)
from ..core.config import Settings, path_setting, store_setting
from ..core.figures import ImplausibleValue, round_values
from ..core.profiles import DEFAULT
from ..core.record import Collection, Record, RunInfo
from ..core.units import percent, percent_change
from ..measure.conditions import difference
from ..measure.fingerprint import DEFAULT_KIND_FIELDS, DeviceKind
from ..stats.resampling import Difference, examples_difference, runs_difference, seed_for
from ..store import baselines as store
from .verdict import CONFIDENCE, STATUSES, Judgement, Status, Tolerance, Verdict, fails_gate, judge_energy, judge_quality, judge_value, minimum_rounds, most_urgent, parse_tolerance

#: pytest's exit code for an interrupted session (Ctrl-C); such a run never refreshes baselines.
INTERRUPTED = 2


def _note(errors: list[str], line: str) -> None:
    """Add an error line once (the same marker problem shows for every metric and set)."""
    if line not in errors:
        errors.append(line)


def _tolerance(record: Record, metric: str, default: float, errors: list[str]) -> Tolerance:
    """Marker ``thresholds[metric]`` > marker ``threshold`` > ``--energy-min-effect``."""
    per_metric = record.criteria.get("thresholds") or {}
    if not isinstance(per_metric, dict):
        _note(errors, f"pytest-energy: {record.nodeid}: energy marker thresholds must be a dict "
                      "such as {'energy': 0.1} (ignored)")
        per_metric = {}
    candidates = ((f"thresholds[{metric!r}]", per_metric.get(metric)), ("threshold", record.criteria.get("threshold")))
    for where, raw in candidates:
        if raw is None:
            continue
        try:
            return parse_tolerance(raw, f"{record.nodeid}: energy marker {where}")
        except ValueError as error:
            _note(errors, f"pytest-energy: {error} (ignored: the next of thresholds, threshold, "
                          "--energy-min-effect applies)")
    return Tolerance(relative=default)


def _refresh(settings: Settings, set_name: str) -> str:
    """The command that records this set's baselines (the compared set is not the one updated)."""
    if set_name == settings.baseline_set:
        return "--energy-update-baselines"
    return f"--energy-update-baselines --energy-baseline-set {set_name}"


def _profile(settings: Settings) -> str:
    """The run's measurement profile: its baselines are kept apart from other profiles' (``set_folder``)."""
    return str(settings.values.get("profile") or DEFAULT)


def device_kinds(record: Record, settings: Settings) -> list[DeviceKind]:
    """The device kinds a record's energy verdicts judge, by ``--energy-device-kind-fields``."""
    fields = getattr(settings, "device_kind_fields", None)
    return store.record_kinds(record, tuple(fields.split(",")) if fields else DEFAULT_KIND_FIELDS)


def energy_metric(index: int, kind: DeviceKind) -> str:
    """The first device kind's verdict is "energy"; a second group of the same record (the host's
    RAPL beside a GPU) gets its own, "energy:rapl"."""
    return "energy" if index == 0 else f"energy:{kind.group}"


def _hardware_note(baseline_hardware: str, fingerprint_id: str) -> str:
    return "" if not baseline_hardware or baseline_hardware == fingerprint_id else \
        f"baseline from other hardware ({baseline_hardware})"


def _facts_note(kind: DeviceKind, stored: store.EnergyBaseline) -> str:
    """What differs between this run's devices and the baseline's though they are one kind."""
    labels = (("power_limit_watts", "power limit", " W"), ("driver_version", "driver", ""),
              ("applications_sm_clock_mhz", "clocks", " MHz"))
    notes = [f"{label} {kind.facts[key]}{unit} here, {stored.facts[key]}{unit} in the baseline"
             for key, label, unit in labels
             if kind.facts.get(key) and stored.facts.get(key) and str(kind.facts[key]) != str(stored.facts[key])]
    return "; ".join(notes)


def _conditions_note(record: Record, kind: DeviceKind, stored: store.EnergyBaseline, *, power_limit: bool) -> str:
    """How the devices' starting conditions differ from the baseline's: "conditions differ from the
    baseline's: +9 degC, power limit 700 W -> 500 W" ("" where they do not, or are unknown)."""
    differs = difference(store.start_conditions(record, kind.devices), stored.conditions, power_limit=power_limit)
    return f"conditions differ from the baseline's: {differs}" if differs else ""


def _energy_verdict(record: Record, kind: DeviceKind, metric: str, stored: store.EnergyBaseline,
                    settings: Settings, set_name: str, tolerance: Tolerance, gate: bool,
                    fingerprint_id: str) -> Verdict:
    """Energy of one device kind of a record against the baseline measured on that kind."""
    modelled = kind.group == "modelled"
    shared = _shared_note(record, kind)
    gating = gate and (settings.gate_modelled or not modelled) and not shared
    facts = _facts_note(kind, stored)
    notes = [n for n in (_hardware_note(stored.hardware, fingerprint_id), facts,
                         _conditions_note(record, kind, stored, power_limit="power limit" not in facts)) if n]
    if modelled and gate and not settings.gate_modelled:
        notes.append("modelled energy: not gating (--energy-gate-modelled gates it)")
    if shared and gate:
        notes.append(shared)
    what = "energy" if modelled else f"energy ({', '.join(kind.devices)})"
    threshold = tolerance.value

    def verdict(status: Status, message: str) -> Verdict:
        return Verdict.of_status(record.name, metric, status, message, threshold=threshold, baseline_set=set_name,
                                 baseline_hardware=stored.hardware)

    current_scale = baseline_scale = 1.0
    if settings.normalise:
        missing = [side for side, joules, devices in (
            ("this run", record.reference_joules, kind.devices),
            ("the baseline", stored.reference_joules, tuple(stored.devices)))
            if not devices or not all(joules.get(d, 0.0) > 0 for d in devices)]
        if missing:
            return verdict(Status.INCOMPARABLE, f"normalised {what}: {missing[0]} has no reference-workload joules "
                           f"for {', '.join(kind.devices)}; refresh the baseline with --energy-update-baselines "
                           "--energy-normalise")
        # Each side's devices of this kind divided by the same devices' reference joules of its own session.
        current_scale = 1 / sum(record.reference_joules[d] for d in kind.devices)
        baseline_scale = 1 / sum(stored.reference_joules[d] for d in stored.devices)
        what = "normalised " + what
    current = round_values(record.rounds, list(kind.devices), current_scale)
    previous = round_values(stored.rounds, None, baseline_scale)
    if current is None or previous is None:
        return verdict(Status.INCOMPARABLE, f"{what}: the baseline's rounds lack devices of {kind.id}; refresh it "
                       "with --energy-update-baselines")
    judged = judge_energy(record.name, current, previous, threshold, set_name, gating=gating, what=what,
                          note="; ".join(notes), refresh=_refresh(settings, set_name),
                          reading_error=_reading_error(record, list(kind.devices), current_scale),
                          rounds_advice=_rounds_advice(record, settings))
    judged.metric, judged.baseline_hardware = metric, stored.hardware
    return judged


def _shared_note(record: Record, kind: DeviceKind) -> str:
    """Why a device kind's energy does not gate where xdist workers shared its devices (their work is in
    its windows), and what gives a worker its own; "" where the devices were this process's own."""
    shared = [c for c in record.components if c.device in kind.devices and c.shared_with > 1]
    if not shared:
        return ""
    remedy = ("--energy-gpus-per-worker gives each worker GPUs of its own" if all(c.kind == "gpu" for c in shared)
              else "run it without -n to gate it")
    return (f"{', '.join(c.device for c in shared)} shared with {max(c.shared_with for c in shared)} workers: "
            f"not gating ({remedy})")


def _rounds_advice(record: Record, settings: Settings) -> str | None:
    """How the work of a record measured in one window (or too few rounds) gets more rounds, in the words
    of the form it was measured in: a fine-tune case's fields, a block's step marks, a case's rounds;
    None for a call, which energy.run and --energy-rounds measure in rounds."""
    if record.case is not None and record.case.kind == "fine-tune":
        return (f"measure it in rounds (the FineTuneCase's rounds={minimum_rounds()} or more, and steps enough "
                f"for each round to last --energy-min-window, {settings.min_window:g} s)")
    if record.form == "block" and record.unit != "test":  # a marked test's whole call is a block of unit "test"
        return ("measure it in rounds (block.step() after each step inside energy.measure(iterations=steps), "
                f"with steps enough for each round to last --energy-min-window, {settings.min_window:g} s)")
    if record.form == "case":
        return f"measure it in rounds (the case's rounds={minimum_rounds()} or more)"
    return None


def _reading_error(record: Record, devices: list[str], scale: float) -> float:
    """The stated reading uncertainty of one of the record's windows, per iteration, over ``devices``.

    Measured devices state their reading's resolution and edge errors. A modelled device's stated
    uncertainty is the model's scale error against a wall meter: the same on both sides of a comparison
    on the same hardware, so it cancels in their ratio and is left out.
    """
    windows = sum(1 for r in record.rounds if r.valid)
    if not windows or not record.iterations:
        return 0.0
    total = math.sqrt(sum(c.uncertainty_joules**2 for c in record.components
                          if c.device in devices and c.method != "modelled"
                          and isinstance(c.uncertainty_joules, (int, float)) and math.isfinite(c.uncertainty_joules)))
    # The components sum their windows' errors in quadrature: one window's is 1/sqrt(windows) of it.
    return total / math.sqrt(windows) * windows / record.iterations * scale


def _energy_verdicts(record: Record, baseline: store.Baseline, kinds: list[DeviceKind], settings: Settings,
                     set_name: str, tolerance: Tolerance, gate: bool, fingerprint_id: str) -> list[Verdict]:
    """One energy verdict per device kind, each against the baseline measured on that kind only."""
    if not record.valid:
        return _no_figure(record, baseline, kinds, tolerance, set_name, gate)
    verdicts = []
    for index, kind in enumerate(kinds):
        metric = energy_metric(index, kind)
        stored = baseline.energy.get(kind.id)
        if stored is not None:
            verdicts.append(_energy_verdict(record, kind, metric, stored, settings, set_name, tolerance, gate,
                                            fingerprint_id))
            continue
        others = sorted(k for k in baseline.energy if k.split(":")[0] == kind.group) or sorted(baseline.energy)
        held = f" (it holds {'; '.join(others)})" if others else ""
        verdicts.append(Verdict.of_status(
            record.name, metric, Status.INCOMPARABLE if baseline.energy else Status.NEW,
            f"{metric}: no baseline measured on {kind.id} in {set_name!r} yet{held}; "
            f"{_refresh(settings, set_name)} adds it beside the others", threshold=tolerance.value,
            baseline_set=set_name))
    return verdicts


def _no_figure(record: Record, baseline: store.Baseline | None, kinds: list[DeviceKind], tolerance: Tolerance,
               set_name: str, gate: bool) -> list[Verdict]:
    """A record with no valid window has no energy figure: inconclusive on each device kind (one verdict
    where no device was measured), shown under the gate's head line and counted against the baseline it
    had, never "new" (nothing could be recorded) nor a baseline of "none"."""
    reason = ("energy: every window of this run was invalid, so there is no energy figure to judge (the record's "
              "notes say why)")
    stored = {energy_metric(index, kind): baseline.energy.get(kind.id) if baseline is not None else None
              for index, kind in enumerate(kinds)} or {"energy": None}
    return [Verdict.inconclusive(record.name, metric, reason, threshold=tolerance.value, baseline_set=set_name,
                                 gating=gate, baseline_hardware=entry.hardware if entry is not None else "")
            for metric, entry in stored.items()]


def _model_verdict(record: Record, baseline: store.Baseline, settings: Settings, set_name: str, gate: bool,
                   fingerprint_id: str) -> Verdict | None:
    """Whether the model that ran is the baseline's: an identity field both name that differs is a "model
    changed" verdict, which fails the gate, as a snapshot mismatch does, until the new model is recorded,
    and says each field that changed ("dtype float32 -> bfloat16"); where none differs, only a digest on
    each side proves it the same (inconclusive without)."""
    current, previous = store.model_identity(record), baseline.model
    if not current and not previous:
        return None
    origin = _hardware_note(baseline.hardware, fingerprint_id)

    def verdict(status: Status, message: str, gating: bool = False) -> Verdict:
        return Verdict.of_status(record.name, "model", status, message + (f"; {origin}" if origin else ""),
                                 threshold=0.0, baseline_set=set_name, gating=gating,
                                 baseline_hardware=baseline.hardware)

    refresh = _refresh(settings, set_name)
    if not previous:  # judged against nothing: counted with the verdicts that had no baseline
        return Verdict.of_status(record.name, "model", Status.INCOMPARABLE,
                                 f"model {store.describe_model(current)}: the baseline names no model (recorded "
                                 f"before models were named, or migrated); {refresh} records it",
                                 threshold=0.0, baseline_set=set_name)
    if not current:
        return verdict(Status.MODEL_CHANGED, f"model changed: {store.describe_model(previous)} -> none named by this "
                       f"run; the gate fails until {refresh} records it", gate)
    changed = store.model_changes(previous, current)
    if not changed and current.get("digest") and previous.get("digest"):
        return verdict(Status.UNCHANGED, f"model {store.describe_model(current)}: as in the baseline")
    if not changed:  # every field both name agrees, but only a digest on each side proves the same weights
        missing = " and ".join(side for side, model in (("this run", current), ("the baseline", previous))
                               if not model.get("digest"))
        return verdict(Status.INCONCLUSIVE, f"model {store.describe_model(current)}: {missing} names no digest of "
                       f"the model, so it cannot be told the same as the baseline's (a digest in the record's "
                       f"model proves it; {refresh} stores this run's)", gate)
    before, after = store.describe_model(previous), store.describe_model(current)
    ran = current.get("ran", "")
    if changed == ["requested"] and ran and ran == previous.get("ran"):
        what = f"{previous['requested']} -> {current['requested']} (both ran {ran})"
    else:  # a changed request or model that ran shows in the names; every other field is said as it changed
        # ("dtype float32 -> bfloat16"; the digest only where the names agree: other names are other weights)
        fields = ", ".join(store.describe_change(key, previous[key], current[key]) for key in changed
                           if key not in ("requested", "ran") and (key != "digest" or before == after))
        what = f"{after}: {fields}" if before == after else f"{before} -> {after}" + (f"; {fields}" if fields else "")
    return verdict(Status.MODEL_CHANGED, f"model changed: {what}; the gate fails until {refresh} records the new "
                   "model", gate)


def _measurement_verdict(record: Record, baseline: store.Baseline, settings: Settings, set_name: str,
                         gate: bool) -> Verdict | None:
    """Whether this run's energy is measured as the baseline's was (unit, form, iterations per call): where
    it is not, per-iteration joules mean other things on each side, so the gate fails, as on a model
    change, until the new measurement is recorded (None where it is the same)."""
    changes = baseline.measurement.differences(store.measurement(record))
    if not changes:
        return None
    return Verdict.of_status(
        record.name, "measurement", Status.REGRESSION,
        f"measured differently: {', '.join(changes)} (energy per {baseline.unit} in the baseline, per {record.unit} "
        f"here), so the energy is not compared; the gate fails until {_refresh(settings, set_name)} records the "
        "new measurement", threshold=0.0, baseline_set=set_name, gating=gate, baseline_hardware=baseline.hardware)


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _cost(model: Verdict, others: list[Verdict], quality: dict[str, Any]) -> None:
    """Say on a model change what the new model costs against the old, either way, where that was judged:
    "it costs 20.6 % less energy and 48 % more FLOPs than the old model; quality against it: rouge1
    -10.5 %" (``quality``: the record's quality metrics)."""
    compared, same, scores = [], [], []
    for verdict in others:
        if verdict.ratio is None or not math.isfinite(verdict.ratio):
            continue
        if verdict.metric in quality:
            change = percent_change(verdict.ratio)
            scores.append(f"{verdict.metric} {'the same' if change[1:] == '0.0 %' else change}")
            continue
        if verdict.metric.startswith("energy"):  # "energy", or a second device group's "energy:rapl"
            noun, less = " ".join(reversed(verdict.metric.split(":"))), "less"
        elif verdict.metric in store.WORK_PROXIES:
            noun, less = "FLOPs", "fewer"
        else:
            continue
        change = verdict.ratio - 1
        if change == 0:
            same.append(noun)
        else:
            compared.append(f"{percent(abs(change))} {less if change < 0 else 'more'} {noun}")
    if compared:
        model.message += f"; it costs {_and(compared)} than the old model" + (
            f", and the same {_and(same)}" if same else "")
    elif same:
        model.message += f"; it costs the same {_and(same)} as the old model"
    else:
        model.message += "; what it costs against the old model cannot be judged here"
    if scores:
        model.message += f"; quality against it: {', '.join(scores)}"


def _value_verdicts(record: Record, baseline: store.Baseline | None, settings: Settings, set_name: str,
                    gate: bool, errors: list[str], incomparable: str, fingerprint_id: str = "",
                    incomplete: list[str] | None = None) -> list[Verdict]:
    """Verdicts of the one-number metrics: each quality metric (:func:`_quality_verdicts`), then the
    work proxy (lower is better, counted, so judged exactly by its tolerance).

    They depend on no hardware: judged against the baseline whichever runner recorded it (named in
    the line when it is another)."""
    verdicts = _quality_verdicts(record, baseline, settings, set_name, gate, errors, incomparable, fingerprint_id,
                                 incomplete if incomplete is not None else [])
    hardware = baseline.hardware if baseline is not None else ""
    origin = _hardware_note(hardware, fingerprint_id)
    counted = store.work_values(record)
    for proxy, value in counted.items():
        previous = baseline.work.get(proxy) if baseline is not None else None
        tolerance = _tolerance(record, proxy, settings.min_effect, errors)
        verdict = judge_value(record.name, proxy, value, previous, tolerance, set_name, higher_is_better=False,
                              gating=gate, refresh=_refresh(settings, set_name))
        verdicts.append(_placed(verdict, value, previous, hardware, origin, incomparable))
    for proxy, previous in sorted((baseline.work if baseline is not None else {}).items()):
        if proxy not in counted:  # the count is gone: say so rather than let a refresh drop it unseen
            verdicts.append(Verdict.inconclusive(
                record.name, proxy, f"{proxy}: this run counted none (the baseline holds {previous:.4g}); a refresh "
                "with --energy-update-baselines stores what it counts now", threshold=settings.min_effect,
                baseline_set=set_name, baseline_hardware=hardware))
    return verdicts


def _placed(verdict: Verdict, value: float, previous: float | None, hardware: str, origin: str,
            incomparable: str) -> Verdict:
    """A value verdict with where its baseline came from; "incomparable" instead of "new" where the
    baseline exists but could not be read (``incomparable`` says why)."""
    if verdict.status is Status.NEW and incomparable:
        verdict.status, verdict.gating = Status.INCOMPARABLE, False
        verdict.message = f"{verdict.metric} {value:.4g}: {incomparable}"
    elif previous is not None:
        verdict.baseline_hardware = hardware
        verdict.message += f"; {origin}" if origin else ""
    return verdict


def _quality_verdicts(record: Record, baseline: store.Baseline | None, settings: Settings, set_name: str,
                      gate: bool, errors: list[str], incomparable: str, fingerprint_id: str,
                      incomplete: list[str]) -> list[Verdict]:
    """One verdict per quality metric, judged with the spread it has measured (over its examples and,
    for a model trained in the run, between training runs; :func:`verdict.judge_quality`).

    A metric the baseline holds and this run lacks (renamed, not computed, NaN) cannot be judged: its
    verdict says so and the record is added to ``incomplete``, which fails the gate."""
    values = store.quality_values(record)
    hardware = baseline.hardware if baseline is not None else ""
    origin = _hardware_note(hardware, fingerprint_id)
    trained = store.trained_in_run(record) or (baseline is not None and baseline.trained_in_run)
    verdicts = []
    for metric in sorted(set(values) | set(baseline.quality if baseline is not None else {})):
        entry = record.quality.get(metric)
        entry = entry if isinstance(entry, dict) else {}
        tolerance = _tolerance(record, metric, settings.min_effect, errors)
        previous = baseline.quality.get(metric) if baseline is not None else None
        if metric not in values:
            verdicts.append(_missing_metric(record, metric, entry, previous, tolerance, set_name, hardware, incomplete))
            continue
        value = values[metric]
        budget = entry.get("budget")
        budget = float(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None
        spreads, notes, gating = [], [], gate
        if baseline is not None and previous is not None:
            spreads, notes, quiet = _quality_spreads(record, metric, value, baseline, fingerprint_id, trained)
            gating = gate and not quiet
        verdict = judge_quality(record.name, metric, value, previous, tolerance, set_name, spreads=spreads,
                                higher_is_better=bool(entry.get("higher_is_better", True)), budget=budget,
                                gating=gating, refresh=_refresh(settings, set_name), note="; ".join(notes))
        verdicts.append(_placed(verdict, value, previous, hardware, origin, incomparable))
    return verdicts


def _missing_metric(record: Record, metric: str, entry: dict[str, Any], previous: float | None,
                    tolerance: Tolerance, set_name: str, hardware: str, incomplete: list[str]) -> Verdict:
    """The verdict of a quality metric the baseline holds and this run has no finite figure for."""
    if entry and entry.get("value") is None and entry.get("computed_by"):
        # Not computable on this runner (a metric's model not installed), said by the metric itself: the
        # budget is not checked either; a note, not a failure of the run.
        return Verdict.inconclusive(record.name, metric, f"{metric}: not computed here ({entry['computed_by']}); "
                                    f"the baseline holds {previous:.4g}", threshold=tolerance.value,
                                    baseline_set=set_name, baseline_hardware=hardware)
    found = "a value that is not a finite number" if entry else "no figure for it (not computed, or renamed)"
    line = (f"{record.name}: quality metric {metric} cannot be judged: the baseline holds {previous:.4g} and this run "
            f"has {found}; compute it again, or record the change with --energy-update-baselines")
    if line not in incomplete:
        incomplete.append(line)
    return Verdict.inconclusive(record.name, metric, line.split(": ", 1)[1], threshold=tolerance.value,
                                baseline_set=set_name, gating=True, baseline_hardware=hardware)


def _quality_spreads(record: Record, metric: str, value: float, baseline: store.Baseline, fingerprint_id: str,
                     trained: bool) -> tuple[list[Difference], list[str], bool]:
    """The measured intervals of a quality figure's difference to its baseline, the notes its verdict
    carries, and whether that verdict must not gate.

    Over the examples (paired on the examples both scored) where both sides kept per-example scores;
    between training runs where the baseline holds at least :data:`resampling.MIN_RUNS` of them, unless
    this run's model trained to the very weights of the baseline's (a deterministic rerun: the same
    model, judged over its examples alone, so a change of how it is run shows sharply). A model trained
    in the run with no such runs is judged over its examples only, which cannot see how much training
    varies: gating only on the runner and CPU device that recorded it (where training is deterministic),
    said otherwise."""
    from ..cases.metrics import METRICS, mean

    spreads: list[Difference] = []
    notes: list[str] = []
    entry = record.quality.get(metric, {})
    items, keys = entry.get("per_example"), entry.get("example_keys")
    stored = baseline.examples.scores.get(metric) if baseline.examples is not None else None
    aggregate = METRICS[metric].aggregate if metric in METRICS else mean
    if isinstance(items, list) and items and stored:
        difference = examples_difference(items, keys if isinstance(keys, list) else [], stored,
                                         baseline.examples.keys if baseline.examples else [], aggregate,
                                         confidence=CONFIDENCE, seed=seed_for(record.name, metric))
        if difference is not None:
            spreads.append(difference)
    elif not stored:
        notes.append("the baseline keeps no per-example scores (recorded before they were kept): judged by the "
                     "tolerance alone; --energy-update-baselines keeps them")
    weights = store.trained_weights(record)
    if trained and weights and weights == baseline.trained_weights:
        # The same trained bytes as the baseline's model: no other training run is in the comparison.
        notes.append("trained to the same weights as the baseline's model: judged over its examples")
        return spreads, notes, False
    runs = [run for run in baseline.runs if metric in run.values]
    between = runs_difference(value, [run.values[metric] for run in runs], confidence=CONFIDENCE,
                              described=_describe_runs(runs)) if runs else None
    if between is not None:
        spreads.append(between)
    quiet = False
    if trained and between is None:
        here = baseline.hardware == fingerprint_id and store.model_identity(record).get("device", "cpu") == "cpu"
        if not here:
            quiet = True
            notes.append("its model is trained in the run, whose quality varies between runners, seeds and GPU runs "
                         "more than over its examples, and the baseline holds no spread between runs: not gating "
                         "(--energy-update-baselines --energy-quality-seeds 5 records one)")
    return spreads, notes, quiet


def _describe_runs(runs: Sequence[store.QualityRun]) -> str:
    """"7 runs (5 on intel-xeon-2c-25e17dbf: seeds 0-4, 1/2 threads; 2 on amd-epyc-2c-020e00a4: seed 0)"."""
    by_hardware: dict[str, list[store.QualityRun]] = {}
    for run in runs:
        by_hardware.setdefault(run.hardware or "an unnamed runner", []).append(run)
    parts = []
    for hardware, group in by_hardware.items():
        seeds = sorted({run.seed for run in group if run.seed is not None})
        threads = sorted({run.threads for run in group if run.threads is not None})
        facts = ([f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"] if seeds else []) + (
            [f"{'/'.join(str(t) for t in threads)} thread{'s' if threads != [1] else ''}"] if threads else [])
        parts.append(f"{len(group)} on {hardware}" + (f": {', '.join(facts)}" if facts else ""))
    return f"{len(runs)} runs ({'; '.join(parts)})"


def _energy_tolerance(record: Record, settings: Settings, errors: list[str]) -> Tolerance:
    tolerance = _tolerance(record, "energy", settings.min_effect, errors)
    if tolerance.absolute is not None:  # joules differ per machine; only a fraction travels
        _note(errors, f"pytest-energy: {record.nodeid}: an energy threshold must be a fraction such as 0.1 "
                      "(using the default)")
        return Tolerance(relative=settings.min_effect)
    return tolerance


def _judge_set(records: list[Record], settings: Settings, root: Path, fingerprint_id: str, set_name: str,
               judgement: Judgement, collection: Collection) -> None:
    folder = store.set_folder(root, set_name, _profile(settings))
    loaded = store.load_set(folder)
    judgement.errors += [e for e in loaded.errors if e not in judgement.errors]
    judgement.unreadable += [str(p) for p in loaded.broken if str(p) not in judgement.unreadable]
    judgement.orphaned += [{"name": b.name, "baseline_set": set_name, "path": str(b.path)}
                           for b in store.orphaned(loaded, records, collection)]
    for record in records:
        failed = record.outcome in FAILED_OUTCOMES
        if failed and set_name == judgement.baseline_set:
            judgement.failed[record.name] = failure_reason(record)
        if not record.judgeable and not failed:  # skipped, xfailed, xpassed: recorded with its outcome only
            continue
        try:
            verdicts, new = _judge_record(record, settings, folder, loaded, set_name, fingerprint_id,
                                          judgement.errors, judgement.incomplete)
        except Exception as error:  # one record that cannot be judged must not silence the others
            reason = _describe(error)
            _note(judgement.errors, f"pytest-energy: {record.name}: could not be judged against {set_name!r} "
                                    f"({reason}); its verdict is inconclusive")
            # It gates: a record the gate meant to judge and could not must not pass unseen.
            verdicts = [Verdict.inconclusive(record.name, "energy", f"energy: could not be judged ({reason})",
                                             threshold=settings.min_effect, baseline_set=set_name, gating=True)]
            new = False
        if failed:  # what the change did is still shown; the test's failure already fails the run
            for verdict in verdicts:
                verdict.gating = False
            new = False
        judgement.verdicts += verdicts
        if new and set_name == judgement.baseline_set:
            judgement.new.append(record.name)


#: Outcomes of a test that failed (its call, or its set-up or teardown).
FAILED_OUTCOMES = ("failed", "error")


def failure_reason(record: Record) -> str:
    """Why a measured test failed, as far as its record tells: the quality or energy budget it missed."""
    missed = [f"{metric} {entry['value']:.4g} {'<' if entry.get('higher_is_better', True) else '>'} "
              f"{entry['budget']:.4g}" for metric, entry in sorted(missed_quality(record).items())]
    over = failed_budgets(record)
    reasons = []
    if missed:
        reasons.append(f"quality budget missed: {', '.join(missed)}")
    if over:
        reasons.append(f"energy budget missed ({len(over)} of {len(record.criteria['energy'])})")
    if reasons:
        return "; ".join(reasons)
    return "its set-up or teardown failed" if record.outcome == "error" else "the test failed (not on a budget)"


def _judge_record(record: Record, settings: Settings, folder: Path, loaded: store.LoadedSet, set_name: str,
                  fingerprint_id: str, errors: list[str], incomplete: list[str]) -> tuple[list[Verdict], bool]:
    """One record's verdicts against one set, and whether it is new there."""
    gate = record.criteria.get("gate", True) is not False
    tolerance = _energy_tolerance(record, settings, errors)
    baseline = loaded.baselines.get(record.name)
    if baseline is None:
        path = store.file_for(folder, record.nodeid)
        incomparable = f"baseline file {path} is unreadable (see the error above)" if path in loaded.broken else ""
        status = Status.INCOMPARABLE if incomparable else Status.NEW
        message = incomparable or f"energy: no baseline in {set_name!r} yet (--energy-update-baselines records one)"
        verdicts = [Verdict.of_status(record.name, "energy", status, message, threshold=tolerance.value,
                                      baseline_set=set_name)]
        if not incomparable and not record.valid:  # nothing measured: not new, as nothing can be recorded
            verdicts = _no_figure(record, None, device_kinds(record, settings), tolerance, set_name, gate)
            status = Status.INCONCLUSIVE
        verdicts += _value_verdicts(record, None, settings, set_name, gate, errors, incomparable, fingerprint_id,
                                    incomplete)
        return verdicts, status is Status.NEW
    model = _model_verdict(record, baseline, settings, set_name, gate, fingerprint_id)
    measured = _measurement_verdict(record, baseline, settings, set_name, gate)
    kinds = device_kinds(record, settings)
    if measured is None:
        energy = _energy_verdicts(record, baseline, kinds, settings, set_name, tolerance, gate, fingerprint_id)
    else:  # per-iteration joules of another unit or form: no ratio means anything
        energy = [Verdict.of_status(record.name, energy_metric(index, kind), Status.INCOMPARABLE,
                                    f"{energy_metric(index, kind)}: not compared, measured differently (see its "
                                    "measurement verdict)", threshold=tolerance.value, baseline_set=set_name)
                  for index, kind in enumerate(kinds)]
    values = _value_verdicts(record, baseline, settings, set_name, gate, errors, "", fingerprint_id, incomplete)
    if model is not None and model.status is Status.MODEL_CHANGED:
        _cost(model, energy + values, record.quality)
    return [v for v in (model, measured) if v is not None] + energy + values, False


#: Verdicts named with their reason under the gate's head line for each kind (inconclusive or incomparable;
#: orphaned baselines): the rest are in the JSON, pytest -v and the HTML report.
SHOWN_INCONCLUSIVE = 10


def _origins(judgement: Judgement) -> str:
    """How many verdicts were judged against a baseline of this hardware, of other hardware, or none."""
    here = other = none = 0
    for verdict in judgement.verdicts:
        if not verdict.baseline_hardware:
            none += 1
        elif verdict.baseline_hardware == judgement.fingerprint_id:
            here += 1
        else:
            other += 1
    return f"baselines: {here} verdicts from this hardware, {other} from other hardware, {none} with none"


def _missing(judgement: Judgement) -> list[Verdict]:
    """The verdicts without a baseline in the set compared and updated ("new"), which fail the gate
    with --energy-require-baselines."""
    return [v for v in judgement.verdicts if v.status is Status.NEW and v.baseline_set == judgement.baseline_set]


def _required(judgement: Judgement) -> list[str]:
    """What --energy-require-baselines fails on: "new" verdicts and baselines of that set no test matched."""
    if not judgement.baselines_required:
        return []
    return [v.name for v in _missing(judgement)] + [o["name"] for o in judgement.orphaned
                                                    if o["baseline_set"] == judgement.baseline_set]


def _capped(lines: list[str], what: str) -> list[str]:
    if len(lines) <= SHOWN_INCONCLUSIVE:
        return lines
    return lines[:SHOWN_INCONCLUSIVE] + [f"... and {len(lines) - SHOWN_INCONCLUSIVE} more {what} (pytest -v or the "
                                         "HTML report gives each reason)"]


def _profile_said(judgement: Judgement) -> str:
    """", profile ai-energy-score" where a measurement profile judged against its own baselines; "" else."""
    return "" if judgement.profile == DEFAULT else f", profile {judgement.profile}"


def _summary(judgement: Judgement, failing: bool) -> list[str]:
    """The head line says the outcome and what decided it (lost records, failed tests, regressions), then
    counts the passed tests' records by their most urgent verdict, and verdicts by where their baseline
    came from; then why the gate could not judge all it should (lost records, unreadable baselines,
    unchecked budgets, vanished quality metrics); one line per failed test; one per budget only a modelled
    estimate exceeded; one per changed model (what it costs), regressed and improved metric with the size
    of its change; then the reason of every other verdict that made a record's count
    not pass (inconclusive ones that gate, incomparable records; up to :data:`SHOWN_INCONCLUSIVE` each),
    the new ones where baselines are required, and the baselines no collected test matched, so an
    unguarded test is seen without -v."""
    by_record: dict[str, list[Verdict]] = {}
    for verdict in judgement.verdicts:
        by_record.setdefault(verdict.name, []).append(verdict)
    worst = {name: most_urgent(v.status for v in verdicts) for name, verdicts in by_record.items()
             if name not in judgement.failed}
    counts = Counter(worst.values())
    parts = []
    for status in (s for s in STATUSES if counts[s]):
        parts.append(f"{counts[status]} {status}")
        quiet = sum(1 for name, worse in worst.items() if worse is status and status.fails
                    and not fails_gate(by_record[name]))
        if quiet:  # e.g. modelled energy, a test marked gate=False: shown, but it cannot fail the gate
            parts[-1] += " (not gating)" if quiet == counts[status] else f" ({quiet} not gating)"
    if judgement.failed:
        budgets = sum(1 for reason in judgement.failed.values() if "budget missed" in reason)
        count = len(judgement.failed)
        parts.insert(0, f"{count} test{'s' if count > 1 else ''} failed"
                        + (f" ({budgets} on a budget)" if budgets else ""))
    head = ", ".join(parts)
    if judgement.unreadable:  # a damaged file must not pass unseen: its tests are not compared at all
        count = len(judgement.unreadable)
        head += f"; {count} baseline file{'s' if count > 1 else ''} unreadable, not compared (see below)"
    if judgement.orphaned:
        count = len(judgement.orphaned)
        head += f"; {count} baseline{'s' if count > 1 else ''} no collected test matched"
    required = _required(judgement)
    if required:
        head += f"; {len(required)} failing --energy-require-baselines"
    if judgement.over_budget:
        shared = sum(f": {SHARED_OVER}: " in line for line in judgement.over_budget)
        counts = ((len(judgement.over_budget) - shared, MODELLED_OVER), (shared, SHARED_OVER))
        head = (f"{head}; " if head else "") + "; ".join(f"{count} {state}" for count, state in counts if count)
    outcome = "INCOMPLETE" if judgement.incomplete else "FAILED" if failing else "passed"
    lines = [f"pytest-energy gate {outcome}: {head or 'nothing judged'} "
             f"(set {judgement.baseline_set!r}{_profile_said(judgement)}, hardware {judgement.fingerprint_id}; "
             f"{_origins(judgement)})",
             *judgement.incomplete]
    lines += [f"{name}  failed: {reason}" if name else reason for name, reason in judgement.failed.items()]
    lines += judgement.over_budget
    for verdict in judgement.verdicts:
        if not verdict.status.fails and verdict.status is not Status.IMPROVEMENT:
            continue
        flag = ("  [test failed]" if verdict.name in judgement.failed
                else "  [not gating]" if verdict.status.fails and not verdict.gating else "")
        lines.append(f"{verdict.name}  {verdict.message}{flag}")
    unsure = [v for v in judgement.verdicts
              if v.status is Status.INCONCLUSIVE and (v.gating or worst.get(v.name) is Status.INCONCLUSIVE)
              and not any(v.message in line for line in judgement.incomplete)]  # said above already
    lines += _capped([f"{v.name}  {v.message}{'' if v.gating else '  [not gating]'}" for v in unsure],
                     "inconclusive")
    apart = [v for v in judgement.verdicts if v.status is Status.INCOMPARABLE and worst.get(v.name) is Status.INCOMPARABLE]
    lines += _capped([f"{v.name}  {v.message}" for v in apart], "incomparable")
    if required:
        lines += _capped([f"{v.name}  {v.message}  [no baseline: --energy-require-baselines]"
                          for v in _missing(judgement)], "new")
    if judgement.orphaned:
        count = len(judgement.orphaned)
        lines.append(f"pytest-energy: {count} baseline{'s' if count > 1 else ''} no collected test matched (a test "
                     "renamed, parametrised otherwise or removed): re-record under the new name with "
                     "--energy-update-baselines and delete the old entry")
        lines += _capped([f"  orphaned  {o['name']}  (set {o['baseline_set']!r}, {o['path']})"
                          for o in judgement.orphaned], "orphaned")
    return lines


def _decide(judgement: Judgement, settings: Settings) -> None:
    """The gate's decision and its summary, from the verdicts as they stand (what it could not judge,
    such as lost records, and failed tests always fail)."""
    judgement.gate_failed = bool(judgement.incomplete) or bool(judgement.failed) or bool(
        (fails_gate(judgement.verdicts) or _required(judgement)) and settings.fail_on_regression)
    judgement.summary = _summary(judgement, judgement.gate_failed)


#: pytest's exit statuses that mean the run did not pass, and what the gate's head line says of them
#: where no measured test's failure explains them.
_EXIT_REASONS = {1: "tests failed (none of them measured energy)", INTERRUPTED: "the run was interrupted",
                 3: "pytest met an internal error"}


def account_for_exit(judgement: Judgement, exitstatus: int, settings: Settings) -> None:
    """Make the gate's outcome agree with the run's: a run that pytest fails is never reported as passed
    (its head line says FAILED and why, though no verdict gates)."""
    reason = _EXIT_REASONS.get(int(exitstatus))
    if reason and not judgement.failed:
        judgement.failed[""] = f"pytest exits {int(exitstatus)}: {reason}"
    if not judgement.failed:
        return
    if judgement.summary and not judgement.verdicts:  # unjudged(): its head line names the error; keep it
        judgement.gate_failed = True
        head = judgement.summary[0].replace("pytest-energy gate not judged:", "pytest-energy gate FAILED:", 1)
        judgement.summary = [head, *(f"{name}  failed: {why}" if name else why for name, why in judgement.failed.items())]
        return
    _decide(judgement, settings)


def _unchecked_budgets(records: list[Record]) -> list[str]:
    """One line per energy budget a passed test's record could not be checked on (no valid window)."""
    return [f"pytest-energy: {record.name}: energy budget "
            f"{EnergyBudget(entry['limit_joules'], entry['per'], entry['basis']).describe()} {entry['state']}; "
            "the gate cannot pass a budget nobody checked (pytest-energy doctor shows what this runner can measure)"
            for record in records if record.judgeable for entry in not_checked(record)]


def _modelled_over_budget(records: list[Record]) -> list[str]:
    """One line per energy budget that only a modelled estimate, or a device shared with other xdist workers,
    exceeded (a passed test's, once per test for a per-test budget): reported, not gating, with the model's
    TDP and what sets it, or the device shared and what gives a worker its own."""
    lines: dict[str, None] = {}
    for record in records:
        if not record.judgeable:
            continue
        for entry in over_modelled(record):
            name = record.nodeid if entry.get("per") == "test" else record.name
            remedy = ("--energy-gpus-per-worker gives each xdist worker GPUs of its own; a serial run gates the "
                      "host's RAPL energy" if entry.get("state") == SHARED_OVER else "--energy-cpu-tdp sets the CPU's "
                      "TDP, --energy-gate-modelled lets a modelled estimate fail its test")
            lines[f"{name}  energy budget {EnergyBudget(entry['limit_joules'], entry['per'], entry['basis']).describe()}: "
                  f"{entry.get('state', MODELLED_OVER)}: {entry.get('detail', '')}; {remedy}"] = None
    return list(lines)


def _unread(judgement: Judgement) -> list[str]:
    """One line per baseline file or folder the gate could not read: its tests were not compared."""
    return [f"pytest-energy: {path} could not be read, so the baselines it holds were not compared and the gate "
            "cannot pass; the line below says what is wrong and what to do" for path in judgement.unreadable]


def judge(records: list[Record], settings: Settings, fingerprint: dict[str, Any], rootdir: Path,
          collection: Collection | None = None) -> Judgement:
    """Verdicts of every record and metric against the baseline set (and ``--energy-compare``'s set).

    ``collection`` is what the run collected, which tells the baselines no collected test matched (see
    :class:`pytest_energy.core.record.Collection`; without it only those of the tests that passed).
    Never raises for bad baselines: an unreadable file becomes one line in ``errors``, and fails the gate
    as incomplete unless the run updates baselines; so does a budget that could not be checked.
    """
    fingerprint_id = str(fingerprint.get("id") or "")
    judgement = Judgement(baseline_set=settings.baseline_set, profile=_profile(settings),
                          fingerprint_id=fingerprint_id, rootdir=str(rootdir),
                          baselines_required=bool(settings.require_baselines and not settings.update_baselines))
    judgement.incomplete += _unchecked_budgets(records)
    judgement.over_budget = _modelled_over_budget(records)
    if not fingerprint_id:
        judgement.errors.append("pytest-energy: no hardware fingerprint for this run; baselines not compared")
        if judgement.incomplete or judgement.over_budget:
            _decide(judgement, settings)
        return judgement
    root = path_setting(settings.baselines, rootdir)
    if root is None:
        judgement.errors.append("pytest-energy: --energy-baselines is none: no baseline compared")
        if judgement.incomplete or judgement.over_budget:
            _decide(judgement, settings)
        return judgement
    sets = [settings.baseline_set]
    if settings.compare and settings.compare != settings.baseline_set:
        sets.append(settings.compare)
    for set_name in sets:
        _judge_set(records, settings, root, fingerprint_id, set_name, judgement, collection or Collection())
    if not settings.update_baselines:  # an update run refuses the file and says so; it fixes nothing else
        judgement.incomplete += _unread(judgement)
    _decide(judgement, settings)
    return judgement


def fail_incomplete(judgement: Judgement, lost: list[str]) -> None:
    """Records were lost (an xdist worker crashed, one line each in ``lost``): the gate cannot judge
    those tests, so it fails closed and its head line says INCOMPLETE, followed by ``lost``."""
    judgement.incomplete = [*lost, *(line for line in judgement.incomplete if line not in lost)]
    judgement.gate_failed = True
    judgement.summary = _summary(judgement, True)


def unjudged(error: Exception, settings: Settings, rootdir: Path) -> Judgement:
    """The judgement of a session whose records could not be judged at all (:func:`judge` raised).

    The gate fails with one line naming the error, as it cannot pass what it did not judge (unless
    ``--energy-fail-on-regression false`` keeps every gate result out of the exit status); baselines and
    history still resolve under ``rootdir``.
    """
    failing = bool(settings.fail_on_regression)
    line = (f"pytest-energy gate {'FAILED' if failing else 'not judged'}: the records could not be judged "
            f"({_describe(error)})")
    return Judgement(baseline_set=settings.baseline_set, gate_failed=failing, summary=[line], rootdir=str(rootdir))


@dataclasses.dataclass
class BaselineUpdate:
    """What ``--energy-update-baselines`` did: the lines to show, and whether an update it was asked for
    could not be written, in all or in part (the folder not writable, a file refused), which the
    session turns into a failing exit status."""

    lines: list[str] = dataclasses.field(default_factory=list)
    failed: bool = False


def _write_baselines(records: list[Record], judgement: Judgement, settings: Settings,
                     run_info: RunInfo) -> BaselineUpdate:
    """Refresh the baseline set from this run, the way ``--snapshot-update`` refreshes snapshots.

    Each part of an entry is written only where its verdicts are not all unchanged (no churn in git):
    the hardware-independent part (model, work, quality) and each device kind's energy on their own,
    so this runner's refresh keeps another runner's device kinds as they are."""
    if run_info.exitstatus == INTERRUPTED:
        return BaselineUpdate(["pytest-energy: the run was interrupted; baselines not updated"])
    fingerprint_id = judgement.fingerprint_id or str(run_info.fingerprint.get("id") or "")
    if not fingerprint_id:
        return BaselineUpdate(["pytest-energy: no hardware fingerprint for this run; baselines not updated"])
    root = path_setting(settings.baselines, judgement.rootdir)
    if root is None:
        return BaselineUpdate(["pytest-energy: --energy-baselines is none: baselines not updated"])
    folder = store.set_folder(root, settings.baseline_set, _profile(settings))
    statuses: dict[tuple[str, str], set[Status]] = {}
    for verdict in judgement.verdicts:
        if verdict.baseline_set == settings.baseline_set:
            statuses.setdefault((verdict.name, verdict.metric), set()).add(verdict.status)
    stored = store.load_set(folder).baselines
    chosen, skipped, kept, without_energy, without_shared, shared_only = [], [], 0, [], [], []
    replaced: dict[str, str] = {}  # record name -> whose energy on every device kind dropped
    for record in records:
        independent_part = store.quality_values(record) or store.work_values(record) or store.model_identity(record)
        # No valid window (a frozen counter): its quality, work and model are still this run's, so they
        # are recorded and gate the next runs; left out, nothing would ever gate on such a runner. A device
        # kind whose devices xdist workers shared holds their work too: a baseline of it would be
        # inflated, and every later regression up to that much would pass.
        measured = device_kinds(record, settings) if record.valid else []
        kinds = [kind for kind in measured if not _shared_note(record, kind)]
        if not record.judgeable or not (record.valid or independent_part):
            skipped.append(record.name)
            continue
        if not (kinds or independent_part):
            shared_only.append(record.name)  # nothing of it to record but a shared device's energy
            continue
        if not record.valid:
            without_energy.append(record.name)
        elif len(kinds) < len(measured):
            without_shared.append(record.name)
        mine = {metric: found for (name, metric), found in statuses.items() if name == record.name}
        changed = [kind for index, kind in enumerate(measured)
                   if kind in kinds and mine.get(energy_metric(index, kind)) != {Status.UNCHANGED}]
        independent = {m: found for m, found in mine.items() if not m.startswith("energy")}
        existing = stored.get(record.name)
        same = existing is not None and all(found == {Status.UNCHANGED} for found in independent.values()) \
            and (not store.model_identity(record) or "model" in independent) \
            and not store.lacks(existing, store.from_record(record, []))
        if same and not changed:  # an unchanged baseline is kept: no churn in git
            kept += 1
            continue
        entry = store.from_record(record, changed)
        if same and existing is not None:  # only energy moved: the other part stays as recorded
            entry = store.merged(existing, dataclasses.replace(existing, energy=entry.energy))
        elif existing is not None and (existing.model and mine.get("model") == {Status.MODEL_CHANGED}
                                       or mine.get("measurement") == {Status.REGRESSION}):
            # Another model, or energy measured another way: every device kind's energy of the old one
            # goes, this run's kinds are recorded.
            entry = store.from_record(record, kinds)
            replaced[record.name] = ("model changed: the old model's" if mine.get("model") == {Status.MODEL_CHANGED}
                                     else "measured differently: the old measurement's")
        chosen.append(entry)
    result = store.update(folder, chosen, replaced)
    regressed = _refreshed(judgement, set(result.written), settings)
    lines = [e for e in result.errors if e not in judgement.errors]  # judge() has shown the others
    energyless = len(set(without_energy) & set(result.written))
    unshared = len(set(without_shared) & set(result.written))
    lines.append(f"pytest-energy: baselines {folder}: {len(result.written)} written"
                 + (f" ({energyless} without energy: no valid window, so its quality, work and model only)"
                    if energyless else "")
                 + (f" ({unshared} without the energy of devices xdist workers shared)" if unshared else "")
                 + f", {kept} unchanged kept"
                 + (f", {len(skipped)} not written (test not passed, or no valid round)" if skipped else "")
                 + (f", {len(shared_only)} not written (only energy of devices xdist workers shared)"
                    if shared_only else "")
                 + (f", {len(result.refused)} refused (their file is unreadable, see above)" if result.refused else ""))
    lines += [f"  {how:9} {name}" + (f"  ({replaced[name]} energy on every device kind dropped)"
                                      if name in replaced else "") for name, how in sorted(result.written.items())]
    if without_shared or shared_only:
        lines.append("pytest-energy: energy measured on devices xdist workers shared is never a baseline "
                     "(their work is in its windows too): run without -n, or with --energy-gpus-per-worker, "
                     "to record it")
    if regressed:
        lines.append(f"pytest-energy: {len(regressed)} regression{'s' if len(regressed) > 1 else ''} "
                     f"refreshed by this update no longer fail{'' if len(regressed) > 1 else 's'} the gate: "
                     + ", ".join(sorted(regressed)))
    measured = {r.name for r in records}
    loaded = store.load_set(folder)
    unused = sorted(name for name in loaded.baselines if name not in measured)
    if unused:
        lines.append(f"pytest-energy: {len(unused)} baselines in {folder} no test used in this run "
                     "(delete their entries if the tests are gone):")
        lines += [f"  unused    {name}  ({loaded.baselines[name].path})" for name in unused]
    return BaselineUpdate(lines, failed=bool(result.refused))


def _refreshed(judgement: Judgement, written: set[str], settings: Settings) -> set[str]:
    """An update run passes for the baselines it rewrote, as syrupy's ``--snapshot-update`` does: their
    regressions and model changes against the set it updated stop gating (a budget still gates). Returns
    those records' names; the gate's decision and summary are made again when there are any."""
    regressed = set()
    for verdict in judgement.verdicts:
        if (verdict.name in written and verdict.baseline_set == settings.baseline_set and verdict.gating
                and verdict.status.fails and not verdict.by_budget):
            verdict.gating = False
            verdict.message += "; its baseline was rewritten by this run"
            regressed.add(verdict.name)
    if regressed:
        _decide(judgement, settings)
    return regressed


def _describe(error: Exception) -> str:
    """An expected store error is its own one-line message (its "pytest-energy: " dropped, as the line
    already says it); anything else also names its type."""
    from ..store.history import HistoryError

    if isinstance(error, (OSError, store.BaselineError, HistoryError, ImplausibleValue)):
        return str(error).removeprefix("pytest-energy: ")
    return f"{type(error).__name__}: {error}"


def update_baselines(records: list[Record], judgement: Judgement, settings: Settings,
                     run_info: RunInfo) -> BaselineUpdate:
    """With ``--energy-update-baselines``, refresh the set from this run; the gate is decided again for
    the regressions it rewrote, so the exit status is read from the judgement after this. Never raises:
    an update that could not be written is one line and ``failed``."""
    if not settings.update_baselines:
        return BaselineUpdate()
    try:
        return _write_baselines(records, judgement, settings, run_info)
    except Exception as error:  # never at the cost of the history row
        return BaselineUpdate([f"pytest-energy: could not update baselines: {_describe(error)}"], failed=True)


def append_history(records: list[Record], judgement: Judgement, settings: Settings, run_info: RunInfo) -> list[str]:
    """Append the run to the history store (a file, or a server a fleet shares); a store that cannot
    take it, an unreachable server included, is one line. Never raises."""
    from ..store.history import History, HistoryError  # SQLAlchemy only when a run is stored

    location = store_setting(settings.history, judgement.rootdir)
    if location is None:
        return []
    history = History(location)
    path = history.where
    try:
        history.append(run_info, records, judgement)
        return [f"pytest-energy: run {run_info.run_id} appended to history {path}"]
    except HistoryError as error:  # names the file, the cause (locked, read-only...) and the fix
        return [f"{error} (run {run_info.run_id} not appended)"]
    except Exception as error:
        return [f"pytest-energy: could not append to history {path}: {_describe(error)}"]
