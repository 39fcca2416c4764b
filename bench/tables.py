"""The benchmark's results as JSON and as markdown tables, written to bench/results/."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pytest_energy.core.record import finite

from . import changepoint, nightly
from .noise import METHOD_LABELS, PLUGIN


def _pct(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:.{digits}f} %"


def _signed(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:+.{digits}f} %"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _spread(row: dict[str, Any], mean: str, sd: str) -> str:
    return f"{_signed(row[mean])} ± {_pct(row[sd])}"


def _cv_cell(row: dict[str, Any], key: str = "cv") -> str:
    if row["absent"]:
        return "n/a"
    return f"{_pct(row[key])} ({row['windows']})"


def _noise(results: dict[str, Any]) -> list[str]:
    lines = ["## 1. Noise: CV of per-iteration energy, steady load", "",
             "Coefficient of variation of per-iteration gross joules over every window measured (count in "
             "brackets), each window repeating the load until it is filled, after 3 warm-up iterations. "
             "\"after the first\" leaves out the first window of each measurement (the one after the warm-up); "
             "\"net\" is what the verdict compares (gross minus idle power x window).", ""]
    series = results["noise"]
    for rig, meta in results["meta"]["rigs"].items():
        rows_of = [s for s in series if s["rig"] == rig]
        if not rows_of:
            continue
        windows = sorted({s["window_seconds"] for s in rows_of})
        lines += [f"**{meta['label']}**", ""]
        body = []
        for method in dict.fromkeys(s["method"] for s in rows_of):
            cells = {s["window_seconds"]: s for s in rows_of if s["method"] == method}
            absent = next((s["absent"] for s in cells.values() if s["absent"]), "")
            label = METHOD_LABELS.get(method, method)
            if absent and all(s["absent"] for s in cells.values()):
                body.append([label, *(["n/a"] * (len(windows) - 1)), f"n/a: {absent}"])
                continue
            body.append([label, *(_cv_cell(cells[w]) if w in cells else "" for w in windows)])
            if method == PLUGIN:
                body.append(["&nbsp;&nbsp;windows after the first",
                             *(_pct(cells[w]["cv_later_windows"]) if w in cells else "" for w in windows)])
                body.append(["&nbsp;&nbsp;net (what the verdict compares)",
                             *(_pct(cells[w]["cv_net"]) if w in cells else "" for w in windows)])
        lines += _table(["method", *(_seconds(w) for w in windows)], body) + [""]
        if any(s["error_mean"] is not None for s in rows_of):
            lines += ["Error against the true energy of each window (simulation only): mean ± sd", ""]
            body = []
            for method in dict.fromkeys(s["method"] for s in rows_of):
                cells = {s["window_seconds"]: s for s in rows_of if s["method"] == method and not s["absent"]}
                if not cells:
                    continue
                if method == PLUGIN:
                    body.append([f"{METHOD_LABELS[method]}: first window",
                                 *(_signed(cells[w]["error_mean_first_window"]) if w in cells else ""
                                   for w in windows)])
                    body.append(["&nbsp;&nbsp;windows after the first",
                                 *(_spread(cells[w], "error_mean_later_windows", "error_sd_later_windows")
                                   if w in cells else "" for w in windows)])
                else:
                    body.append([METHOD_LABELS.get(method, method),
                                 *(_spread(cells[w], "error_mean", "error_sd") if w in cells else "" for w in windows)])
            lines += _table(["method", *(_seconds(w) for w in windows)], body) + [""]
    return lines


def _rates(rule: dict[str, Any]) -> list[str]:
    cells = []
    for effect in ("0", "0.01", "0.03", "0.05"):
        rates = rule["effects"].get(effect)
        cells.append(_pct(rates["regression_rate"], 1) if rates else "")
    return cells


def _rule_label(rule: dict[str, Any]) -> str:
    if rule["rule"] == "verdict":
        return (f"pytest-energy verdict, min effect {rule['threshold'] * 100:g} %, {rule['rounds']} rounds a side"
                + (f" ({rule['noise_from']})" if rule["mode"] == "simulated" else ""))
    return f"bare 5 % threshold on one number ({rule['noise_from']})"


def _detection(results: dict[str, Any], show_windows: list[float]) -> list[str]:
    detection = results["detection"]
    lines = ["## 2. Detection: false alarms (A/A) and detection (A/B)", "",
             "Share of trials flagged as a regression. A/A: identical work (false alarms); +1/+3/+5 %: B does "
             "that much more work.", ""]
    simulated = detection.get("simulated", [])
    if simulated:
        lines += [f"Simulated ({detection['trials']} trials per cell), no drift between runs. The verdict's rounds "
                  "are drawn as measured above at that window (net joules; the first round after the warm-up "
                  "with its own offset and spread, the later ones with theirs: \"rounds as measured\"), and "
                  "again with every round like the later ones (\"first round like the rest\", what a meter "
                  "without a first-window error would give). One number: one window with the CV above. "
                  "CV column: the later rounds' net CV for the verdict, the window's gross CV for one number.", ""]
    for rig in results["meta"]["rigs"]:
        for window in show_windows:
            rules = [r for r in simulated if r["rig"] == rig and r["window_seconds"] == window
                     and (r["rule"] == "bare" or r["rounds"] == 5)]
            if not rules:
                continue
            lines += [f"**{results['meta']['rigs'][rig]['label']}, {window:g} s windows (simulated)**", ""]
            lines += _table(["rule", "CV", "A/A", "+1 %", "+3 %", "+5 %"],
                            [[_rule_label(r), _pct(r["cv"]), *_rates(r)] for r in rules]) + [""]
    measured = detection.get("measured", [])
    if measured:
        first = measured[0]
        trials = next(iter(first["effects"].values()))["trials"]
        lines += [f"**Measured ({results['meta']['rigs'][first['rig']]['label']}, {first['window_seconds']:g} s "
                  f"windows, {trials} trials per cell, A and B measured in turn by the plugin's meter)**", ""]
        lines += _table(["rule", "A/A", "+1 %", "+3 %", "+5 %"], [[_rule_label(r), *_rates(r)] for r in measured])
        lines.append("")
    if detection.get("absent"):
        lines += [f"Measured mode: n/a: {detection['absent']}", ""]
    return lines


def _overhead(results: dict[str, Any]) -> list[str]:
    overhead = results["overhead"]
    lines = ["## 3. Overhead", ""]
    rows = []
    for run in overhead.get("tests", []):
        if run.get("absent"):
            rows.append([run["rig"], "n/a", "", "", "", f"n/a: {run['absent']}"])
            continue
        for test, figures in run["tests"].items():
            rows.append([results["meta"]["rigs"][run["rig"]]["label"], test, f"{figures['plain_seconds']:.3f} s",
                         f"{figures['measured_seconds']:.3f} s", f"{figures['overhead_seconds'] * 1000:+.1f} ms",
                         _signed(figures["overhead_fraction"])])
    if rows:
        first = overhead["tests"][0]
        lines += ["Wall time of a 1 s test, plain pytest (plugin loaded, --energy off) against measured with "
                  "`--energy --energy-rounds 1 --energy-warmup 0 --energy-idle-seconds 0.05` (median of "
                  f"{first.get('copies', '?')} copies x {first.get('repetitions', '?')} runs each; setup + call + "
                  "teardown of the test):", ""]
        lines += _table(["device", "test", "plain", "measured", "overhead", "share"], rows) + [""]
        for run in overhead["tests"]:
            if not run.get("absent"):
                lines.append(f"- {run['rig']}: once per session, the meter's start costs "
                             f"{run['session_start_seconds']:.2f} s (idle window, tick calibration, reference "
                             f"workload) and the end stages {run['session_end_seconds']:.2f} s (JSON, baselines, "
                             "history, HTML report).")
        lines.append("")
    top_rows = []
    for run in overhead.get("top", []):
        label = results["meta"]["rigs"].get(run["rig"], {}).get("label", run["rig"])
        if run.get("absent"):
            top_rows.append([label, "n/a", "", "", "", f"n/a: {run['absent']}", ""])
            continue
        top_rows.append([label, f"{run['tests']} x {run['test_seconds'] * 1000:.0f} ms",
                         f"{run['tests_plain_seconds']:.2f} s", f"{run['tests_measured_seconds']:.2f} s",
                         f"{run['per_test_overhead_seconds'] * 1000:+.2f} ms", _signed(run["overhead_fraction"]),
                         f"{run['session_stages_seconds']:.1f} s"])
    if top_rows:
        lines += ["`--energy-top`: every test's call a window of its own; the tests' own times (setup + call + "
                  "teardown, summed) plain against `--energy --energy-top 10 --energy-idle-seconds 0.05` "
                  "(target: at most +2 %); the session's start and end stages apart:", ""]
        lines += _table(["device", "tests", "plain", "with --energy-top", "per test", "share", "start + end"],
                        top_rows) + [""]
    for edge in overhead.get("edges", []):
        if edge.get("absent"):
            lines.append(f"- Edge cost on {edge['rig']}: n/a: {edge['absent']}")
        elif edge["ticking"]:
            projected = edge.get("projected_h100_cpu_seconds_per_edge")
            tail = (f"; {edge['counter_reads_per_edge']:.1f} counter reads per edge, which on an H100 "
                    f"(~3.9 ms of busy CPU per read) is ~{projected * 1000:.0f} ms of CPU per edge on the poller "
                    "thread") if projected is not None else ""
            lines.append(f"- Poller thread on {edge['rig']}: {edge['background_cpu_seconds_per_edge'] * 1000:.2f} ms "
                         f"of CPU per edge measured; the measured thread spends "
                         f"{edge['measured_thread_seconds_per_edge'] * 1e6:.0f} µs per edge{tail}.")
        else:
            lines.append(f"- {edge['rig']}: no background thread (the sources do not tick); an edge costs the "
                         f"measured thread {edge['measured_thread_seconds_per_edge'] * 1e6:.0f} µs of CPU.")
    load = overhead.get("load")
    if load and not load.get("absent"):
        heavy = ", ".join(load["heavy_modules_imported"]) or "none"
        lines.append(
            f"- Plugin load with --energy off: {load['plugin_load_seconds'] * 1000:+.0f} ms on `pytest --collect-only` "
            f"(fastest of {load['repetitions']}: {load['collect_only_with_plugin_seconds']:.3f} s with, "
            f"{load['collect_only_without_plugin_seconds']:.3f} s with `-p no:energy`); the package's own import time "
            f"{load['pytest_energy_import_self_seconds'] * 1000:.1f} ms; heavy modules imported by loading it: "
            f"{heavy}.")
    elif load:
        lines.append(f"- Plugin load: n/a: {load['absent']}")
    return lines + [""]


def _validity(results: dict[str, Any]) -> list[str]:
    lines = ["## 4. Validity: per-test joules plus idle gaps against one reading around the whole sequence", ""]
    rows = []
    for run in results["validity"]:
        if run.get("absent"):
            rows.append([run["rig"], "", "", "", "", f"n/a: {run['absent']}"])
            continue
        truth = (f"sum {_signed(run['sum_vs_truth'], 3)}, one reading {_signed(run['whole_reading_vs_truth'], 3)}"
                 if "sum_vs_truth" in run else "unknown")
        rows.append([results["meta"]["rigs"][run["rig"]]["label"], str(run["tests"]),
                     f"{run['sum_joules']:.1f} J", f"{run['whole_session_joules']:.1f} J ({run['outer_reading']})",
                     _signed(run["relative_difference"], 3), truth])
    lines += _table(["device", "tests", "sum of tests + idle gaps", "one reading around all", "difference",
                     "against the true energy"], rows)
    return lines + [""]


def _render(results: dict[str, Any]) -> list[str]:
    render = results["render"]
    if not render:  # the section was not run (--sections)
        return []
    lines = ["## 5. Report rendering", ""]
    if render.get("absent"):
        return lines + [f"{render.get('records', '')} records: n/a: {render['absent']}", ""]
    return lines + [f"{render['output']}", ""]


def _changepoint(results: dict[str, Any]) -> list[str]:
    found = results.get("changepoint") or {}
    lines = ["## 6. Change points of nightly series", ""]
    if not found:
        return []
    if found.get("absent"):
        return lines + [f"n/a: {found['absent']}", ""]
    return lines + [f"{found['trials']} synthetic series per noise model, length and step (bench/changepoint.py).",
                    "", *changepoint.markdown(found["cells"]), ""]


def _nightly(results: dict[str, Any]) -> list[str]:
    found = results.get("nightly") or {}
    if not found:
        return []
    lines = ["## 7. Nightly report of a fleet", ""]
    if found.get("absent"):
        return lines + [f"n/a: {found['absent']}", ""]
    return lines + [nightly.text(found), ""]


def _recommendation(results: dict[str, Any]) -> list[str]:
    advices = results.get("recommendation") or {}
    lines = ["## Recommended defaults", ""]
    if not advices:
        return lines + ["n/a: the detection section did not run.", ""]
    for model, advice in advices.items():
        where = results["meta"]["rigs"][advice["rig"]]["label"]
        if not advice.get("found"):
            lines.append(f"- {model} ({where}): none: {advice['reason']}.")
            continue
        lines.append(
            f"- {model} ({where}): minimum window {advice['min_window_seconds']:g} s, {advice['rounds']} rounds, "
            f"minimum effect {advice['min_effect'] * 100:g} % (false alarms {_pct(advice['false_alarm_rate'], 1)}, "
            f"+3 % detected {_pct(advice['detection_rate_3pct'], 1)}): {advice['reason']}.")
    return lines + [""]


def markdown(results: dict[str, Any]) -> str:
    """The whole report as markdown."""
    meta = results["meta"]
    lines = [f"# pytest-energy measurement benchmark ({meta['mode']})", "",
             f"- Device: {meta['device']}", f"- Date: {meta['date']}", f"- Command: `{meta['command']}`",
             f"- Commit: {meta['git_commit'] or 'unknown'}; took {meta['seconds']:.0f} s",
             f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items() if v)}",
             f"- Network connection attempts during the run: {len(meta['network_attempts'])}"]
    if any(rig.get("simulated") for rig in meta["rigs"].values()):
        lines.append("- Rows marked **simulated NVML** come from a simulated GPU counter (100 ms ticks, 3.9 ms "
                     "reads, as measured on an H100), not from a GPU.")
    lines += [f"- Note: {note}" for note in meta.get("notes", [])] + [""]
    simulated = results["detection"].get("simulated", [])
    windows = [w for w in (1.0, 0.2) if any(r["window_seconds"] == w for r in simulated)]
    for part in (_noise(results), _detection(results, windows), _overhead(results), _validity(results),
                 _render(results), _changepoint(results), _nightly(results), _recommendation(results)):
        lines += part
    return "\n".join(lines).rstrip() + "\n"


def write(results: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``<date>-<device>[-quick].json`` and ``.md`` into ``folder``; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = results["meta"]
    stem = f"{meta['date'][:10]}-{meta['device_slug']}{'-quick' if meta['mode'] == 'quick' else ''}"
    data, table = folder / f"{stem}.json", folder / f"{stem}.md"
    data.write_text(json.dumps(finite(results), indent=1, allow_nan=False) + "\n")
    table.write_text(markdown(results))
    return data, table
