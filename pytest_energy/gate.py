"""The regression gate: records against baselines, turned into a judgement the session acts on, and
the stores written after it (baselines on request, history always)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import baselines as store
from .config import Settings, path_setting
from .record import Record, Round, RunInfo
from .verdict import (STATUSES, Tolerance, Verdict, fails_gate, judge_energy, judge_value, most_urgent,
                      parse_tolerance)

#: pytest's exit code for an interrupted session (Ctrl-C); such a run never refreshes baselines.
INTERRUPTED = 2


@dataclass
class Judgement:
    """Everything the gate decided for one session, computed once and read by stores and reports."""

    verdicts: list[Verdict] = field(default_factory=list)  # per record name and metric
    baseline_set: str = "default"
    fingerprint_id: str = ""
    new: list[str] = field(default_factory=list)  # record names with no baseline yet
    errors: list[str] = field(default_factory=list)  # one line per unreadable baseline file
    unreadable: list[str] = field(default_factory=list)  # those files: their tests are not compared
    gate_failed: bool = False
    summary: list[str] = field(default_factory=list)  # lines naming each regression and its size
    rootdir: str = ""  # where relative baseline and history paths resolve (pytest's rootdir)
    incomplete: list[str] = field(default_factory=list)  # records lost (a crashed worker): see fail_incomplete


def _note(errors: list[str], line: str) -> None:
    """Add an error line once (the same marker problem shows for every metric and set)."""
    if line not in errors:
        errors.append(line)


def _tolerance(record: Record, metric: str, default: float, errors: list[str]) -> Tolerance:
    """Marker ``thresholds[metric]`` > marker ``threshold`` > ``--energy-min-effect``."""
    per_metric = record.budget.get("thresholds") or {}
    if not isinstance(per_metric, dict):
        _note(errors, f"pytest-energy: {record.nodeid}: energy marker thresholds must be a dict "
                      "such as {'energy': 0.1} (ignored)")
        per_metric = {}
    candidates = ((f"thresholds[{metric!r}]", per_metric.get(metric)), ("threshold", record.budget.get("threshold")))
    for where, raw in candidates:
        if raw is None:
            continue
        try:
            return parse_tolerance(raw, f"{record.nodeid}: energy marker {where}")
        except ValueError as error:
            _note(errors, f"pytest-energy: {error} (ignored: the next of thresholds, threshold, "
                          "--energy-min-effect applies)")
    return Tolerance(relative=default)


#: More iterations than any round can count (a float's exact integers): a hand-edited baseline's
#: 10**400 would otherwise overflow the division, or divide its joules down to nothing.
MAX_ITERATIONS = 2**53


class ImplausibleValue(ValueError):
    """A number no measurement can have; the message says which and what to do."""


def energy_values(rounds: list[Round], devices: list[str] | None, scale: float = 1.0) -> list[float] | None:
    """Per-iteration net joules of each valid round, over ``devices`` (all when None), times ``scale``.

    None when a round lacks one of the devices (the two sides measured different things). Raises
    :class:`ImplausibleValue` for a round of more than :data:`MAX_ITERATIONS` iterations.
    """
    values = []
    for round_ in rounds:
        if not round_.valid or round_.iterations <= 0:
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


def _refresh(settings: Settings, set_name: str) -> str:
    """The command that records this set's baselines (the compared set is not the one updated)."""
    if set_name == settings.baseline_set:
        return "--energy-update-baselines"
    return f"--energy-update-baselines --energy-baseline-set {set_name}"


def _energy_verdict(record: Record, baseline: store.Baseline, settings: Settings, set_name: str,
                    tolerance: Tolerance, gate: bool) -> Verdict:
    """Energy of the measured (non-modelled) devices where there are any, else of the modelled ones."""
    modelled_only = all(c.method == "modelled" for c in record.components)
    devices = None if modelled_only else record.judged_devices
    gating = gate and (settings.gate_modelled or not modelled_only)
    note = ""
    if modelled_only and gate and not gating:
        note = "modelled energy: not gating (--energy-gate-modelled gates it)"
    what = "energy" if devices is None else f"energy ({', '.join(devices)})"
    threshold = tolerance.value
    current_scale = baseline_scale = 1.0
    if settings.normalise:
        judged = record.judged_devices
        missing = [side for side, joules in (("this run", record.reference_joules),
                                             ("the baseline", baseline.reference_joules))
                   if not judged or not all(joules.get(d, 0.0) > 0 for d in judged)]
        if missing:
            return Verdict(record.name, "energy", "incomparable", None, None, None, threshold, set_name,
                           f"normalised energy: {missing[0]} has no reference-workload joules for "
                           f"{', '.join(judged)}; refresh the baseline with --energy-update-baselines "
                           "--energy-normalise", False)
        # Each side's judged devices divided by the same devices' reference joules of its own session.
        current_scale = 1 / sum(record.reference_joules[d] for d in judged)
        baseline_scale = 1 / sum(baseline.reference_joules[d] for d in judged)
        what = "normalised " + what
    current = energy_values(record.rounds, devices, current_scale)
    previous = energy_values(baseline.rounds, devices, baseline_scale)
    if current is None or previous is None:
        return Verdict(record.name, "energy", "incomparable", None, None, None, threshold, set_name,
                       f"energy: the baseline measured other devices ({', '.join(sorted(baseline.devices))}); "
                       "refresh it with --energy-update-baselines", False)
    return judge_energy(record.name, current, previous, threshold, set_name, gating=gating, what=what, note=note,
                        refresh=_refresh(settings, set_name),
                        reading_error=_reading_error(record, devices or record.judged_devices, current_scale))


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


def _value_verdicts(record: Record, baseline: store.Baseline | None, settings: Settings, set_name: str,
                    gate: bool, errors: list[str], incomparable: str) -> list[Verdict]:
    """Verdicts of the one-number metrics: each quality metric, then the work proxy (lower is better)."""
    metrics: list[tuple[str, float, float | None, bool, float | None]] = []  # metric, value, previous, higher, budget
    for metric, value in sorted(store.quality_values(record).items()):
        entry = record.quality.get(metric)
        entry = entry if isinstance(entry, dict) else {}
        budget = entry.get("budget")
        budget = float(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None
        previous = baseline.quality.get(metric) if baseline is not None else None
        metrics.append((metric, value, previous, bool(entry.get("higher_is_better", True)), budget))
    counted = store.work_values(record)
    for proxy, value in counted.items():
        metrics.append((proxy, value, baseline.work.get(proxy) if baseline is not None else None, False, None))
    verdicts = []
    for metric, value, previous, higher_is_better, budget in metrics:
        tolerance = _tolerance(record, metric, settings.min_effect, errors)
        verdict = judge_value(record.name, metric, value, previous, tolerance, set_name,
                              higher_is_better=higher_is_better, budget=budget, gating=gate,
                              refresh=_refresh(settings, set_name))
        if verdict.status == "new" and incomparable:
            verdict.status, verdict.gating = "incomparable", False
            verdict.message = f"{metric} {value:.4g}: {incomparable}"
        verdicts.append(verdict)
    for proxy, previous in sorted((baseline.work if baseline is not None else {}).items()):
        if proxy not in counted:  # the count is gone: say so rather than let a refresh drop it unseen
            verdicts.append(Verdict(record.name, proxy, "inconclusive", None, None, None, settings.min_effect,
                                    set_name, f"{proxy}: this run counted none (the baseline holds {previous:.4g}); "
                                    "a refresh with --energy-update-baselines stores what it counts now", False))
    return verdicts


def _energy_tolerance(record: Record, settings: Settings, errors: list[str]) -> Tolerance:
    tolerance = _tolerance(record, "energy", settings.min_effect, errors)
    if tolerance.absolute is not None:  # joules differ per machine; only a fraction travels
        _note(errors, f"pytest-energy: {record.nodeid}: an energy threshold must be a fraction such as 0.1 "
                      "(using the default)")
        return Tolerance(relative=settings.min_effect)
    return tolerance


def _judge_set(records: list[Record], settings: Settings, root: Path, fingerprint_id: str, set_name: str,
               judgement: Judgement) -> None:
    folder = store.set_folder(root, fingerprint_id, set_name)
    loaded = store.load_set(folder)
    judgement.errors += [e for e in loaded.errors if e not in judgement.errors]
    judgement.unreadable += [str(p) for p in loaded.broken if str(p) not in judgement.unreadable]
    elsewhere: dict[str, list[str]] | None = None

    def other_hardware() -> dict[str, list[str]]:
        nonlocal elsewhere
        if elsewhere is None:  # read other hardware's folders only when something is missing
            elsewhere = store.other_hardware(root, fingerprint_id, set_name)
        return elsewhere

    for record in records:
        if not record.judgeable:  # skipped, xfailed, failed...: recorded with its outcome, never judged
            continue
        try:
            verdicts, new = _judge_record(record, settings, folder, loaded, set_name, other_hardware, judgement.errors)
        except Exception as error:  # one record that cannot be judged must not silence the others
            reason = _describe(error)
            _note(judgement.errors, f"pytest-energy: {record.name}: could not be judged against {set_name!r} "
                                    f"({reason}); its verdict is inconclusive")
            verdicts = [Verdict(record.name, "energy", "inconclusive", None, None, None, settings.min_effect,
                                set_name, f"energy: could not be judged ({reason})")]
            new = False
        judgement.verdicts += verdicts
        if new and set_name == judgement.baseline_set:
            judgement.new.append(record.name)


def _judge_record(record: Record, settings: Settings, folder: Path, loaded: store.LoadedSet, set_name: str,
                  other_hardware: Callable[[], dict[str, list[str]]], errors: list[str]) -> tuple[list[Verdict], bool]:
    """One record's verdicts against one set, and whether it is new there."""
    gate = record.budget.get("gate", True) is not False
    tolerance = _energy_tolerance(record, settings, errors)
    baseline = loaded.baselines.get(record.name)
    incomparable = ""
    status = ""
    if baseline is None:
        path = store.file_for(folder, record.nodeid)
        if path in loaded.broken:
            incomparable = f"baseline file {path} is unreadable (see the error above)"
        elif record.name in other_hardware():
            incomparable = (f"no comparable baseline: {set_name!r} was recorded on other hardware "
                            f"({', '.join(other_hardware()[record.name])})")
        status = "incomparable" if incomparable else "new"
        message = incomparable or f"energy: no baseline in {set_name!r} yet (--energy-update-baselines records one)"
        verdict = Verdict(record.name, "energy", status, None, None, None, tolerance.value, set_name, message, False)
    elif not record.valid:
        verdict = Verdict(record.name, "energy", "inconclusive", None, None, None, tolerance.value, set_name,
                          "energy: every window of this run was invalid", False)
    else:
        verdict = _energy_verdict(record, baseline, settings, set_name, tolerance, gate)
    verdicts = [verdict, *_value_verdicts(record, baseline, settings, set_name, gate, errors, incomparable)]
    return verdicts, status == "new"


#: Inconclusive verdicts named with their reason under the gate's head line (the rest: -v, HTML report).
SHOWN_INCONCLUSIVE = 10


def _summary(judgement: Judgement, failing: bool) -> list[str]:
    """The head line counts records by their most urgent verdict; then one line per regressed and
    improved metric with the size of its change; then why the gate could not judge the metrics it
    would gate (up to :data:`SHOWN_INCONCLUSIVE`), so an unguarded test is seen without -v."""
    by_record: dict[str, list[Verdict]] = {}
    for verdict in judgement.verdicts:
        by_record.setdefault(verdict.name, []).append(verdict)
    worst = {name: most_urgent(v.status for v in verdicts) for name, verdicts in by_record.items()}
    counts = Counter(worst.values())
    regressions = [v for v in judgement.verdicts if v.status == "regression"]
    improvements = [v for v in judgement.verdicts if v.status == "improvement"]
    quiet = sum(1 for name, status in worst.items() if status == "regression" and not fails_gate(by_record[name]))
    parts = [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
    if quiet:  # e.g. modelled energy: shown, but it cannot fail the gate
        parts[0] += " (not gating)" if quiet == counts["regression"] else f" ({quiet} not gating)"
    head = ", ".join(parts)
    if judgement.unreadable:  # a damaged file must not pass unseen: its tests are not compared at all
        count = len(judgement.unreadable)
        head += f"; {count} baseline file{'s' if count > 1 else ''} unreadable, not compared (see below)"
    outcome = "INCOMPLETE" if judgement.incomplete else "FAILED" if failing else "passed"
    lines = [f"pytest-energy gate {outcome}: {head or 'nothing judged'} "
             f"(set {judgement.baseline_set!r}, hardware {judgement.fingerprint_id})", *judgement.incomplete]
    for verdict in regressions:
        flag = "" if verdict.gating else "  [not gating]"
        lines.append(f"{verdict.name}  {verdict.message}{flag}")
    for verdict in improvements:
        lines.append(f"{verdict.name}  {verdict.message}")
    unsure = [v for v in judgement.verdicts if v.status == "inconclusive" and v.gating]
    lines += [f"{verdict.name}  {verdict.message}" for verdict in unsure[:SHOWN_INCONCLUSIVE]]
    if len(unsure) > SHOWN_INCONCLUSIVE:
        lines.append(f"... and {len(unsure) - SHOWN_INCONCLUSIVE} more inconclusive (pytest -v or the HTML report "
                     "gives each reason)")
    return lines


def _decide(judgement: Judgement, settings: Settings) -> None:
    """The gate's decision and its summary, from the verdicts as they stand (lost records always fail)."""
    judgement.gate_failed = bool(judgement.incomplete) or bool(fails_gate(judgement.verdicts)
                                                               and settings.fail_on_regression)
    judgement.summary = _summary(judgement, judgement.gate_failed)


def judge(records: list[Record], settings: Settings, fingerprint: dict[str, Any], rootdir: Path) -> Judgement:
    """Verdicts of every record and metric against the baseline set (and ``--energy-compare``'s set).

    Never raises for bad baselines: an unreadable file becomes one line in ``errors``.
    """
    fingerprint_id = str(fingerprint.get("id") or "")
    judgement = Judgement(baseline_set=settings.baseline_set, fingerprint_id=fingerprint_id, rootdir=str(rootdir))
    if not fingerprint_id:
        judgement.errors.append("pytest-energy: no hardware fingerprint for this run; baselines not compared")
        return judgement
    root = path_setting(settings.baselines, rootdir)
    if root is None:
        judgement.errors.append("pytest-energy: --energy-baselines is none: no baseline compared")
        return judgement
    sets = [settings.baseline_set]
    if settings.compare and settings.compare != settings.baseline_set:
        sets.append(settings.compare)
    for set_name in sets:
        _judge_set(records, settings, root, fingerprint_id, set_name, judgement)
    _decide(judgement, settings)
    return judgement


def fail_incomplete(judgement: Judgement, lost: list[str]) -> None:
    """Records were lost (an xdist worker crashed, one line each in ``lost``): the gate cannot judge
    those tests, so it fails closed and its head line says INCOMPLETE, followed by ``lost``."""
    judgement.incomplete = list(lost)
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


def _write_baselines(records: list[Record], judgement: Judgement, settings: Settings, run_info: RunInfo) -> list[str]:
    """Refresh the baseline set from this run, the way ``--snapshot-update`` refreshes snapshots."""
    if run_info.exitstatus == INTERRUPTED:
        return ["pytest-energy: the run was interrupted; baselines not updated"]
    fingerprint_id = judgement.fingerprint_id or str(run_info.fingerprint.get("id") or "")
    if not fingerprint_id:
        return ["pytest-energy: no hardware fingerprint for this run; baselines not updated"]
    root = path_setting(settings.baselines, judgement.rootdir)
    if root is None:
        return ["pytest-energy: --energy-baselines is none: baselines not updated"]
    folder = store.set_folder(root, fingerprint_id, settings.baseline_set)
    statuses: dict[str, set[str]] = {}
    for verdict in judgement.verdicts:
        if verdict.baseline_set == settings.baseline_set:
            statuses.setdefault(verdict.name, set()).add(verdict.status)
    chosen, skipped, kept = [], [], 0
    for record in records:
        if not record.judgeable or not record.valid:
            skipped.append(record.name)
        elif statuses.get(record.name) == {"unchanged"}:  # an unchanged baseline is kept: no churn in git
            kept += 1
        else:
            chosen.append(store.from_record(record))
    result = store.update(folder, chosen)
    regressed = _refreshed(judgement, set(result.written), settings)
    lines = [e for e in result.errors if e not in judgement.errors]  # judge() has shown the others
    lines.append(f"pytest-energy: baselines {folder}: {len(result.written)} written, {kept} unchanged kept"
                 + (f", {len(skipped)} not written (test not passed, or no valid round)" if skipped else "")
                 + (f", {len(result.refused)} refused (their file is unreadable, see above)" if result.refused else ""))
    lines += [f"  {how:9} {name}" for name, how in sorted(result.written.items())]
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
    return lines


def _refreshed(judgement: Judgement, written: set[str], settings: Settings) -> set[str]:
    """An update run passes for the baselines it rewrote, as syrupy's ``--snapshot-update`` does: their
    regressions against the set it updated stop gating (a budget still gates). Returns those records'
    names; the gate's decision and summary are made again when there are any."""
    regressed = set()
    for verdict in judgement.verdicts:
        if (verdict.name in written and verdict.baseline_set == settings.baseline_set and verdict.gating
                and verdict.status == "regression" and not verdict.by_budget):
            verdict.gating = False
            verdict.message += "; its baseline was rewritten by this run"
            regressed.add(verdict.name)
    if regressed:
        _decide(judgement, settings)
    return regressed


def _describe(error: Exception) -> str:
    """An expected store error is its own one-line message (its "pytest-energy: " dropped, as the line
    already says it); anything else also names its type."""
    from .history import HistoryError

    if isinstance(error, (OSError, store.BaselineError, HistoryError, ImplausibleValue)):
        return str(error).removeprefix("pytest-energy: ")
    return f"{type(error).__name__}: {error}"


def persist(records: list[Record], judgement: Judgement, settings: Settings, run_info: RunInfo) -> list[str]:
    """Write baselines (with ``--energy-update-baselines``) and append the run to history.

    Returns lines for the terminal. Each store fails on its own, in one line, without stopping the other.
    """
    return update_baselines(records, judgement, settings, run_info) + append_history(records, judgement, settings,
                                                                                     run_info)


def update_baselines(records: list[Record], judgement: Judgement, settings: Settings, run_info: RunInfo) -> list[str]:
    """With ``--energy-update-baselines``, refresh the set from this run; the gate is decided again for
    the regressions it rewrote, so the exit status is read from the judgement after this. Never raises."""
    if not settings.update_baselines:
        return []
    try:
        return _write_baselines(records, judgement, settings, run_info)
    except Exception as error:  # never at the cost of the history row
        return [f"pytest-energy: could not update baselines: {_describe(error)}"]


def append_history(records: list[Record], judgement: Judgement, settings: Settings, run_info: RunInfo) -> list[str]:
    """Append the run to the history store; a store that cannot take it is one line. Never raises."""
    from .history import History, HistoryError  # sqlite3 only when a run is stored

    path = path_setting(settings.history, judgement.rootdir)
    if path is None:
        return []
    try:
        History(path).append(run_info, records, judgement)
        return [f"pytest-energy: run {run_info.run_id} appended to history {path}"]
    except HistoryError as error:  # names the file, the cause (locked, read-only...) and the fix
        return [f"{error} (run {run_info.run_id} not appended)"]
    except Exception as error:
        return [f"pytest-energy: could not append to history {path}: {_describe(error)}"]
