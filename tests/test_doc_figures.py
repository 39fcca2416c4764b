"""Figures in docs/ come from the bench/results files the docs name, and this module checks each one
against its file: a re-run of the bench that the docs do not take up, or a figure edited by hand, fails
here instead of going stale. The expected text of a figure is built from the file's JSON with the
formats of the bench's own markdown (bench/tables.py), so a doc row reads as the results' .md row.

Also checked against the code: docs/architecture.md's modules, the functions its walk from the counter to
the report names, and its word on which modules import pytest."""

from __future__ import annotations

import ast
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any, Callable

import pytest

# The bench's own number formats and budget rule (the repository's folder, on the path by pytest's `pythonpath`):
# a figure is checked as the bench wrote it, by the rule docs/cases.md states.
from bench.quality import budget as quality_budget
from bench.tables import _pct as pct
from bench.tables import _signed as signed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PACKAGE = ROOT / "pytest_energy"
NAMED = re.compile(r"bench/results/([\w.-]+\.(?:json|md))")
DATED = re.compile(r"^(?:(?P<kind>[a-z]+)-)?(?P<date>\d{4}-\d{2}-\d{2})-")


def _doc(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def _results(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


# -- which files the docs name ----------------------------------------------------------------------
def test_every_results_file_a_doc_names_exists_and_is_the_newest_of_its_kind():
    """A doc names results files by path; each exists, and no results file of the same kind (the full
    bench, ``ordinary``, ``quality``, ``suites``) is newer than the newest the docs name: a new run that
    the docs did not take up fails here."""
    named = {match for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
             for match in NAMED.findall(path.read_text(encoding="utf-8"))}
    assert named, "no doc names a bench/results file"
    assert sorted(n for n in named if not (RESULTS / n).is_file()) == []
    newest: dict[str, str] = {}
    for path in RESULTS.glob("*.json"):
        found = DATED.match(path.name)
        if found:
            kind = found["kind"] or "bench"
            newest[kind] = max(newest.get(kind, ""), found["date"])
    named_dates: dict[str, str] = {}
    for name in named:
        found = DATED.match(name)
        if found and (RESULTS / name).with_suffix(".json").is_file():  # a run's results, not a written story
            kind = found["kind"] or "bench"
            named_dates[kind] = max(named_dates.get(kind, ""), found["date"])
    stale = {kind: (date, newest[kind]) for kind, date in named_dates.items() if date < newest[kind]}
    assert stale == {}


# -- the files the docs take their figures from ------------------------------------------------------
BENCH = "2026-12-07-cpu-intel-r-xeon-r-processor-2c.json"  # the newest full bench run (after the tick-period fix)
BEFORE = "2026-11-23-cpu-amd-epyc-2c.json"  # the full run before it
ORDINARY = "ordinary-2026-12-06-intel-r-xeon-r-processor-2c.json"
QUALITY = "quality-2026-12-06-intel-r-xeon-r-processor-2c.json"
SUITES = "suites-2026-12-02-amd-epyc-2c.json"
SUITES_LIGHT = "suites-2026-12-02-amd-epyc-2c-m-not-heavy.json"
SIM_WINDOWS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
CPU_WINDOWS = (0.1, 0.2, 0.5, 1.0, 2.0)


def _noise(results: dict[str, Any], rig: str, method: str, window: float) -> dict[str, Any]:
    return next(r for r in results["noise"] if (r["rig"], r["method"], r["window_seconds"]) == (rig, method, window))


def _rule(results: dict[str, Any], window: float, noise_from: str, threshold: float = 0.05, rounds: int = 5,
          rig: str = "sim") -> dict[str, Any]:
    """A simulated rule's cell: a verdict's (``threshold``, ``rounds``) or a bare threshold's (one window)."""
    return next(r for r in results["detection"]["simulated"]
                if (r["rig"], r["window_seconds"], r["noise_from"]) == (rig, window, noise_from)
                and (r["rule"] == "bare" or (r["threshold"], r["rounds"]) == (threshold, rounds)))


def rates(rule: dict[str, Any]) -> list[str]:
    """A/A, +1 %, +3 %, +5 %: the share of trials flagged as a regression."""
    return [pct(rule["effects"][effect]["regression_rate"], 1) for effect in ("0", "0.01", "0.03", "0.05")]


def _spread(cell: dict[str, Any], mean: str, sd: str) -> str:
    return f"{signed(cell[mean])} ± {pct(cell[sd])}"


def noise_rows(results: dict[str, Any]) -> list[str]:
    """The simulated GPU's noise and error table (docs/accuracy.md)."""
    def cells(method: str, figure: Callable[[dict[str, Any]], str]) -> list[str]:
        return [figure(_noise(results, "sim", method, w)) for w in SIM_WINDOWS]

    return [
        row("pytest-energy, every window", *cells("plugin", lambda c: pct(c["cv"]))),
        row("pytest-energy, windows after the first", *cells("plugin", lambda c: pct(c["cv_later_windows"]))),
        row("pytest-energy, net, windows after the first (what the verdict compares)",
            *cells("plugin", lambda c: pct(c["cv_net_later"]))),
        row("naive reads at the edges", *cells("naive", lambda c: pct(c["cv"]))),
        row("CodeCarbon, measure_power_secs=15", *cells("codecarbon-15", lambda c: pct(c["cv"]))),
        row("CodeCarbon, measure_power_secs=1", *cells("codecarbon-1", lambda c: pct(c["cv"]))),
        row("*error:* pytest-energy, first window", *cells("plugin", lambda c: signed(c["error_mean_first_window"]))),
        row("*error:* pytest-energy, later windows",
            *cells("plugin", lambda c: _spread(c, "error_mean_later_windows", "error_sd_later_windows"))),
        row("*error:* naive reads", *cells("naive", lambda c: _spread(c, "error_mean", "error_sd"))),
        row("*error:* CodeCarbon (15)", *cells("codecarbon-15", lambda c: _spread(c, "error_mean", "error_sd"))),
        row("*error:* CodeCarbon (1)", *cells("codecarbon-1", lambda c: _spread(c, "error_mean", "error_sd"))),
    ]


def cpu_noise_rows(results: dict[str, Any]) -> list[str]:
    """The modelled CPU's noise table (docs/accuracy.md)."""
    def cells(method: str, key: str) -> list[str]:
        return [pct(_noise(results, "cpu", method, w)[key]) for w in CPU_WINDOWS]

    return [row("pytest-energy, every window (gross)", *cells("plugin", "cv")),
            row("pytest-energy, net, windows after the first", *cells("plugin", "cv_net_later")),
            row("CodeCarbon, measure_power_secs=15", *cells("codecarbon-15", "cv")),
            row("CodeCarbon, measure_power_secs=1", *cells("codecarbon-1", "cv"))]


AS_MEASURED, LIKE_REST = "rounds as measured", "first round like the rest"


def detection_rows(results: dict[str, Any]) -> list[str]:
    """The simulated detection table (docs/accuracy.md): 5 rounds a side, the CV the rule drew from."""
    def verdict(threshold: float, window: float, noise_from: str = AS_MEASURED) -> str:
        rule = _rule(results, window, noise_from, threshold)
        return row(f"verdict, min effect {threshold * 100:g} % ({noise_from})", f"{window:g} s", pct(rule["cv"]),
                   *rates(rule))

    def bare(what: str, window: float) -> str:
        rule = _rule(results, window, f"{what}, one {window:g} s window")
        return row(f"bare 5 % threshold, {what}", f"{window:g} s", pct(rule["cv"]), *rates(rule))

    return [verdict(0.01, 1.0), verdict(0.02, 1.0), verdict(0.05, 1.0), verdict(0.01, 1.0, LIKE_REST),
            verdict(0.01, 0.5), verdict(0.02, 0.5), verdict(0.01, 0.2), verdict(0.02, 5.0),
            bare("naive reads", 1.0), bare("CodeCarbon, 15 s", 1.0),
            bare("pytest-energy, a window after the first", 1.0), bare("naive reads", 0.2),
            bare("CodeCarbon, 15 s", 0.2)]


def measured_rows(results: dict[str, Any]) -> list[str]:
    """The measured detection table (docs/accuracy.md): A and B by the meter."""
    return [row(f"verdict, min effect {r['threshold'] * 100:g} %" if r["rule"] == "verdict"
                else f"bare 5 % threshold ({r['noise_from']})", *rates(r))
            for r in results["detection"]["measured"]]


def before_after_rows(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The 1 s figures of the full run before the tick-period fix against the newest one."""
    def both(figure: Callable[[dict[str, Any]], str]) -> list[str]:
        return [figure(results) for results in (before, after)]

    def plugin(results: dict[str, Any]) -> dict[str, Any]:
        return _noise(results, "sim", "plugin", 1.0)

    def flagged(noise_from: str, threshold: float) -> Callable[[dict[str, Any]], str]:
        return lambda results: ", ".join(rates(_rule(results, 1.0, noise_from, threshold)))

    return [
        row("CV of per-iteration net joules, every window", *both(lambda r: pct(plugin(r)["cv_net"]))),
        row("CV of per-iteration net joules, windows after the first", *both(lambda r: pct(plugin(r)["cv_net_later"]))),
        row("error against the true energy, later windows (mean ± SD)",
            *both(lambda r: _spread(plugin(r), "error_mean_later_windows", "error_sd_later_windows"))),
        row("first window's net offset from the later ones (mean ± SD)",
            *both(lambda r: _spread(plugin(r), "first_offset_net", "first_sd_net"))),
        row("verdict at min effect 1 %: A/A, +1 %, +3 %, +5 % flagged (rounds as measured)",
            *both(flagged(AS_MEASURED, 0.01))),
        row("verdict at min effect 2 %: A/A, +1 %, +3 %, +5 % flagged (rounds as measured)",
            *both(flagged(AS_MEASURED, 0.02))),
    ]


def overhead_rows(results: dict[str, Any]) -> list[str]:
    """The 1 s tests' overhead table (docs/accuracy.md)."""
    labels = {"cpu": "CPU (modelled)", "sim": "simulated NVML"}
    tests = {"test_1_marked": "marked, measured whole", "test_2_fixture": "`energy.run(fn)`"}
    return [row(labels[run["rig"]], tests[test], f"{figures['plain_seconds']:.3f} s",
                f"{figures['measured_seconds']:.3f} s", f"{figures['overhead_seconds'] * 1000:+.1f} ms",
                signed(figures["overhead_fraction"]))
            for run in results["overhead"]["tests"] for test, figures in run["tests"].items()]


def top_rows(results: dict[str, Any]) -> list[str]:
    """The ``--energy-top`` overhead table (docs/accuracy.md)."""
    return [row("simulated NVML + modelled CPU and RAM", f"{run['tests']} x {run['test_seconds'] * 1000:.0f} ms",
                f"{run['tests_plain_seconds']:.2f} s", f"{run['tests_measured_seconds']:.2f} s",
                f"{run['per_test_overhead_seconds'] * 1000:+.2f} ms", signed(run["overhead_fraction"]),
                f"{run['session_stages_seconds']:.2f} s")
            for run in results["overhead"]["top"]]


def _whole_range(results: dict[str, Any], window: float) -> str:
    """The whole-percent range of the naive reads' and CodeCarbon's mean error at ``window``: "-2 to -5"."""
    means = sorted((_noise(results, "sim", method, window)["error_mean"] * 100
                    for method in ("naive", "codecarbon-15", "codecarbon-1")), reverse=True)
    return f"{means[0]:.0f} to {means[-1]:.0f}"


def accuracy_figures() -> list[str]:
    """Every figure docs/accuracy.md states, as it states it."""
    bench, before, ordinary = _results(BENCH), _results(BEFORE), _results(ORDINARY)
    meta = bench["meta"]
    sim_1s, sim_01 = _noise(bench, "sim", "plugin", 1.0), _noise(bench, "sim", "plugin", 0.1)
    errors = sorted(((s["joules"] - s["true_joules"]) / s["true_joules"] for s in sim_01["samples"]), key=abs)
    rest = errors[:-2]  # all but the pair one edge put wrong
    edges = {edge["rig"]: edge for edge in bench["overhead"]["edges"]}
    runs = {run["rig"]: run for run in bench["overhead"]["tests"]}
    load, render = bench["overhead"]["load"], bench["render"]
    sim_valid, cpu_valid = (next(v for v in bench["validity"] if v["rig"] == rig) for rig in ("sim", "cpu"))
    now, then = (ordinary["figures"]["packages"][p] for p in ("this tree", ordinary["figures"]["against"]))
    ms = lambda seconds: f"{seconds * 1000:+.0f} ms"  # noqa: E731
    advice = bench["recommendation"][AS_MEASURED]
    # the run before the fix: each measurement's first 1 s window against its later ones
    old = _noise(before, "sim", "plugin", 1.0)["samples"]
    firsts = [(old[i], old[i + 1:i + 5]) for i in range(0, len(old), 5)]
    read_high = max((first["joules"] - first["true_joules"]) / first["true_joules"] for first, _ in firsts)
    drew_more = max(first["true_joules"] / first["iterations"]
                    / statistics.fmean(o["true_joules"] / o["iterations"] for o in later)
                    for first, later in firsts) - 1
    return [
        meta["date"][:10], meta["command"], f"{meta['seconds']:.0f} s", meta["git_commit"][:7],
        *noise_rows(bench), *cpu_noise_rows(bench), *detection_rows(bench), *measured_rows(bench),
        *before_after_rows(before, bench), *overhead_rows(bench), *top_rows(bench),
        # the 0.1 s column: one misplaced edge moves energy between two adjacent windows
        f"read {signed(min(errors))} and {signed(max(errors))} against their",
        f"the other {len(rest)} windows read within ±{math.ceil(max(abs(e) for e in rest) * 100)} %",
        f"the CV of all {len(errors)} is {pct(sim_01['cv'])}",
        f"one read {signed(read_high)} high by such an edge, the other truly drew {drew_more * 100:.0f} % more",
        # what the results show
        f"at 1 s the later windows' error is {_spread(sim_1s, 'error_mean_later_windows', 'error_sd_later_windows')}",
        f"({_whole_range(bench, 1.0)} % at 1 s, {_whole_range(bench, 0.2)} % at 0.2 s)",
        f"**The CV at 1 s is the meter's, {pct(sim_1s['cv'])}** ({pct(sim_1s['cv_net_later'])} net",
        f"against {pct(_noise(before, 'sim', 'plugin', 1.0)['cv_net_later'])} net in the 2026-11-23 run",
        f"({pct(advice['false_alarm_rate'], 1)} false alarms, +3 % caught in {pct(advice['detection_rate_3pct'], 1)})",
        "raises {:.0f} % false alarms on one CodeCarbon window at 1 s and {:.0f}-{:.0f} % on naive or CodeCarbon "
        "windows at 0.2 s".format(*(100 * _rule(bench, window, f"{what}, one {window:g} s window")["effects"]["0"][
            "regression_rate"] for what, window in (("CodeCarbon, 15 s", 1.0), ("naive reads", 0.2),
                                                     ("CodeCarbon, 15 s", 0.2)))),
        f"recommends {advice['min_window_seconds']:g} s, {advice['rounds']} rounds and a "
        f"{advice['min_effect'] * 100:g} % minimum effect",
        f"{bench['detection']['trials']:,} trials a cell",
        f"{next(iter(bench['detection']['measured'][0]['effects'].values()))['trials']} trials a cell",
        f"two edges of {edges['sim']['measured_thread_seconds_per_edge'] * 1e6:.0f} µs (measured above), "
        f"{2 * edges['sim']['measured_thread_seconds_per_edge'] * 1000:.2f} ms per test",
        # overhead notes
        f"{runs['cpu']['session_end_seconds']:.2f} s", f"{runs['sim']['session_end_seconds']:.2f} s",
        f"{edges['sim']['counter_reads_per_edge']:.2f} times per edge",
        f"{edges['sim']['background_cpu_seconds_per_edge'] * 1000:.2f} ms of CPU per edge",
        f"~{edges['sim']['projected_h100_cpu_seconds_per_edge'] * 1000:.1f} ms per edge",
        f"{edges['sim']['measured_thread_seconds_per_edge'] * 1e6:.0f} µs",
        f"{edges['cpu']['measured_thread_seconds_per_edge'] * 1e6:.0f} µs",
        f"{load['pytest_energy_import_self_seconds'] * 1000:.1f} ms", f"{load['plugin_load_seconds'] * 1000:+.0f} ms",
        f"{load['collect_only_with_plugin_seconds']:.2f} s against {load['collect_only_without_plugin_seconds']:.2f} s",
        # validity and render
        f"{sim_valid['sum_joules']:.1f} J against one reading {sim_valid['whole_session_joules']:.1f} J "
        f"({signed(sim_valid['relative_difference'], 3)})",
        f"sum is off by {signed(sim_valid['sum_vs_truth'], 3)} and the single reading by "
        f"{signed(sim_valid['whole_reading_vs_truth'], 3)}",
        f"{cpu_valid['sum_joules']:.1f} J against {cpu_valid['whole_session_joules']:.1f} J from independent channels "
        f"({signed(cpu_valid['relative_difference'], 1)})",
        render["output"], f"the idle run of 2026-11-23 took {before['render']['build_and_html_seconds']:.2f} s wall",
        # what --energy costs an ordinary suite
        f"{ms(now['energy_collect_wall_seconds'])} and {ms(now['energy_run_wall_seconds'])} wall, "
        f"{ms(now['energy_collect_cpu_seconds'])} and {ms(now['energy_run_cpu_seconds'])} CPU",
        f"{ms(then['energy_collect_wall_seconds'])} and {ms(then['energy_run_wall_seconds'])} wall "
        f"({ms(then['energy_collect_cpu_seconds'])} and {ms(then['energy_run_cpu_seconds'])} CPU)",
        f"{now['top_session_wall_seconds']:+.2f} s wall ({now['top_session_cpu_seconds']:+.2f} s CPU), before "
        f"{then['top_session_wall_seconds']:+.2f} s ({then['top_session_cpu_seconds']:+.2f} s CPU)",
        f"{now['top_per_test_wall_seconds'] * 1e6:+.0f} µs wall and "
        f"{now['top_per_test_cpu_seconds'] * 1e6:+.0f} µs CPU per test, before "
        f"{then['top_per_test_wall_seconds'] * 1e6:+.0f} µs and "
        f"{then['top_per_test_cpu_seconds'] * 1e6:+.0f} µs",
    ]


def overhead_doc_rows(results: dict[str, Any]) -> list[str]:
    """docs/overhead.md's table: each method's error and CV at 1 s on the simulated counter."""
    labels = {"plugin": "pytest-energy (ticks interpolated at each edge)",
              "naive": "naive counter reads at the edges",
              "codecarbon-15": "CodeCarbon, `measure_power_secs=15`",
              "codecarbon-1": "CodeCarbon, `measure_power_secs=1`"}
    return [row(label, _spread(cell, "error_mean", "error_sd"), pct(cell["cv"]))
            for method, label in labels.items() if (cell := _noise(results, "sim", method, 1.0))]


def overhead_figures() -> list[str]:
    """Every figure docs/overhead.md states, as it states it."""
    bench, before, ordinary = _results(BENCH), _results(BEFORE), _results(ORDINARY)
    suites, light = _results(SUITES), _results(SUITES_LIGHT)
    story = (RESULTS / "2026-12-06-ordinary-suite-overhead.md").read_text(encoding="utf-8")
    at = {(r["method"], r["window_seconds"]): r for r in bench["noise"] if r["rig"] == "sim"}
    runs = {run["rig"]: run for run in bench["overhead"]["tests"]}
    sim_test = runs["sim"]["tests"]["test_1_marked"]
    edges = next(edge for edge in bench["overhead"]["edges"] if edge["rig"] == "sim")
    validity = {v["rig"]: v for v in bench["validity"]}
    old_cpu = next(v for v in before["validity"] if v["rig"] == "cpu")
    now, then = (ordinary["figures"]["packages"][p] for p in ("this tree", ordinary["figures"]["against"]))
    verdict_1, verdict_2 = (_rule(bench, 1.0, AS_MEASURED, t) for t in (0.01, 0.02))
    assert "25-35 µs per test" in story  # the one-process timing the doc quotes from the story
    assert suites["summary"].startswith("19 passed, 1 skipped")  # "every case: 19 tests, the 2:4 one skipped"
    return [
        *overhead_doc_rows(bench),
        f"{pct(at[('plugin', 1.0)]['cv'])} on the simulated counter "
        f"({pct(_noise(before, 'sim', 'plugin', 1.0)['cv_net_later'])} net in the run before it)",
        f"within {_spread(at[('plugin', 0.2)], 'error_mean', 'error_sd')} while naive reads lose "
        f"{signed(at[('naive', 0.2)]['error_mean'])} and CodeCarbon {signed(at[('codecarbon-15', 0.2)]['error_mean'])}",
        f"takes {signed(sim_test['overhead_fraction'])} wall time",
        f"reads the counter {edges['counter_reads_per_edge']:.2f} times per edge",
        f"{runs['cpu']['session_end_seconds']:.2f} s with the modelled sources and "
        f"{runs['sim']['session_end_seconds']:.2f} s with the simulated GPU",
        f"at the simulated counter's {pct(verdict_1['cv'])} per round",
        f"catch +3 % in {rates(verdict_1)[2]} of trials at `--energy-min-effect 0.01` and {rates(verdict_2)[2]} at "
        f"`0.02`, with {rates(verdict_1)[0]} false alarms",
        f"one CodeCarbon window raises {rates(_rule(bench, 1.0, 'CodeCarbon, 15 s, one 1 s window'))[0]} false alarms",
        f"within {signed(validity['sim']['relative_difference'], 3)}",
        f"{signed(validity['cpu']['relative_difference'], 1)} here, {signed(old_cpu['relative_difference'], 1)} in the "
        "idle run of 2026-11-23",
        f"(before: {then['energy_collect_wall_seconds'] * 1000:+.0f} ms on "
        f"collection, {then['energy_run_wall_seconds'] * 1000:+.0f} ms a run)",
        f"adds {now['top_session_wall_seconds']:+.2f} s per session (before {then['top_session_wall_seconds']:+.2f} s",
        "25-35 µs of CPU per test",
        f"the package {bench['overhead']['load']['pytest_energy_import_self_seconds'] * 1000:.1f} ms",
        f"{bench['render']['records']:,}-record HTML report builds and renders in "
        f"{bench['render']['output'].split('wall, ')[1].split(' CPU')[0]} of CPU "
        f"({bench['render']['build_and_html_seconds']:.3f} s wall",
        f"took {suites['wall_seconds']:.1f} s wall, {suites['cpu_user_seconds']:.1f} s of user CPU",
        f"and generation left out) {light['wall_seconds']:.1f} s",
        "(every case: 19 tests, the 2:4 one skipped without a GPU)",
    ]


#: The quality table of docs/cases.md: case row -> its record in the quality results and the metrics it
#: shows, by the names the doc gives them.
QUALITY_ROWS = {
    "`sst2_classification`": ("suites/test_classification.py::sst2_classification[bf16]",
                              {"accuracy": "accuracy", "F1": "f1"}),
    "`highlights_summarisation`": ("suites/test_summarisation.py::highlights_summarisation",
                                   {"ROUGE-1": "rouge1", "ROUGE-2": "rouge2", "ROUGE-L": "rougeL", "METEOR": "meteor",
                                    "BERTScore": "bertscore"}),
    "`highlights_finetune` (BART)": ("suites/test_finetune.py::highlights_finetune",
                                     {"ROUGE-1": "rouge1", "ROUGE-L": "rougeL", "METEOR": "meteor"}),
    "`highlights_finetune_t5`": ("suites/test_finetune_arms.py::highlights_finetune_t5",
                                 {"ROUGE-1": "rouge1", "ROUGE-L": "rougeL", "METEOR": "meteor"}),
    "`highlights_finetune_llama`": ("suites/test_finetune_arms.py::highlights_finetune_llama",
                                    {"ROUGE-1": "rouge1", "ROUGE-L": "rougeL", "METEOR": "meteor"}),
    "`prompts_generation`": ("suites/test_generation.py::prompts_generation::decode", {"ROUGE-L": "rougeL"}),
    "`shape_classification`": ("suites/test_image_classification.py::shape_classification", {"accuracy": "accuracy"}),
    "`news_questions`": ("suites/test_question_answering.py::news_questions",
                         {"exact match": "exact_match", "token F1": "token_f1"}),
    "`entity_tagging`": ("suites/test_token_classification.py::entity_tagging", {"entity F1": "entity_f1"}),
    "`sentiment_zero_shot`": ("suites/test_zero_shot.py::sentiment_zero_shot", {"accuracy": "accuracy"}),
}


def _quality(results: dict[str, Any], record: str, metric: str) -> str:
    values = [run["value"] for run in results["records"][record][metric]["runs"]]
    return f"{statistics.fmean(values):.3f}, {statistics.stdev(values):.3f} -> {quality_budget(values):.2f}"


def _seed_zero(results: dict[str, Any], record: str, metric: str) -> str:
    return f"{next(r['value'] for r in results['records'][record][metric]['runs'] if r['seed'] == 0):.2f}"


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def cases_figures() -> list[str]:
    """Every figure docs/cases.md states from a results file, as it states it."""
    quality, suites, light = _results(QUALITY), _results(SUITES), _results(SUITES_LIGHT)
    rows = [row(case, "; ".join(f"{shown} {_quality(quality, record, key)}" for shown, key in metrics.items()))
            for case, (record, metrics) in QUALITY_ROWS.items()]
    pruning = "suites/test_pruning.py::sentiment_pruning[{}]"
    rows.append(row("`sentiment_pruning` (one floor for every level)",
                    f"the lowest level's: accuracy at 95 % {_quality(quality, pruning.format('95%'), 'accuracy')} "
                    f"(at 0 %: {_quality(quality, pruning.format('0%'), 'accuracy')})"))
    finetunes = [_seed_zero(quality, QUALITY_ROWS[case][0], "rouge1") for case in
                 ("`highlights_finetune` (BART)", "`highlights_finetune_t5`", "`highlights_finetune_llama`")]
    return [
        *rows,
        f"accuracy {_seed_zero(quality, QUALITY_ROWS['`sst2_classification`'][0], 'accuracy')} (classification), "
        f"{_seed_zero(quality, QUALITY_ROWS['`sentiment_zero_shot`'][0], 'accuracy')} (zero-shot), "
        f"ROUGE-1 {_seed_zero(quality, QUALITY_ROWS['`highlights_summarisation`'][0], 'rouge1')} (summarisation), "
        f"{'/'.join(finetunes)} (BART/T5/Llama fine-tunes), "
        f"ROUGE-L {_seed_zero(quality, QUALITY_ROWS['`prompts_generation`'][0], 'rougeL')} (generation)",
        f"{_minutes(suites['wall_seconds'])} wall, {suites['cpu_user_seconds']:.0f} s of CPU",
        f"`-m \"not heavy\"` {_minutes(light['wall_seconds'])}",
    ]


def runners_figures() -> list[str]:
    """docs/runners.md's before and after of the tick-period fix."""
    before, after = _results(BEFORE), _results(BENCH)
    cv = [pct(_rule(results, 1.0, AS_MEASURED, 0.01)["cv"]) for results in (before, after)]
    caught = [rates(_rule(results, 1.0, AS_MEASURED, 0.01))[2] for results in (before, after)]
    return [f"net CV at 1 s fell from {cv[0]} (bench/results/{BEFORE.removesuffix('.json')}.md) to {cv[1]}",
            f"catch +3 % in {caught[1]} of trials instead of {caught[0]}"]


@pytest.mark.parametrize("doc, figures, files", [
    ("docs/accuracy.md", accuracy_figures, (BENCH, BEFORE, ORDINARY)),
    ("docs/overhead.md", overhead_figures, (BENCH, ORDINARY, SUITES, SUITES_LIGHT)),
    ("docs/cases.md", cases_figures, (QUALITY, SUITES)),
    ("docs/runners.md", runners_figures, (BEFORE, BENCH)),
])
def test_each_figure_of_a_doc_is_its_results_file(doc: str, figures: Callable[[], list[str]], files: tuple[str, ...]):
    """Each figure the doc states, built from the results file it names, appears in it as built (line
    breaks and indents read as one space)."""
    text = " ".join(_doc(doc).split())
    assert [name for name in files if f"bench/results/{name.removesuffix('.json')}" not in text] == []
    assert [figure for figure in figures() if " ".join(figure.split()) not in text] == []


# -- the architecture's word on pytest ---------------------------------------------------------------
def _imports_pytest(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        if any(name.split(".")[0] in ("pytest", "_pytest") for name in names):
            return True
    return False


def test_architecture_says_which_modules_import_pytest():
    """docs/architecture.md's sentence naming the modules that import pytest (lazily too) names exactly
    those."""
    text = _doc("docs/architecture.md")
    sentence = text[text.index("pytest itself is imported by"):text.index("no module of")]
    said = set(re.findall(r"`([\w/]+\.py)`", sentence))
    actual = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if _imports_pytest(path)}
    assert said == actual


def _defines(tree: ast.Module, owner: str, name: str) -> bool:
    """Whether class ``owner`` of the module defines ``name`` (a method, property or field)."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == owner:
            return any((isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name)
                       or (isinstance(item, ast.AnnAssign) and ast.unparse(item.target) == name)
                       for item in node.body)
    return False


def test_architecture_names_modules_and_functions_that_exist():
    """Each module row names a file or folder of the package, and each name the walk from the counter to
    the report gives (``Class.method``, a function, a field) is defined in one of the modules it names."""
    text = _doc("docs/architecture.md")
    rows = re.findall(r"^\| `([\w/.]+)`", text, flags=re.MULTILINE)
    assert [path for path in rows if not (PACKAGE / path).exists()] == []
    walk = text[text.index("## The path of one test's joules"):]
    walk = walk[:walk.index("\n## ")]
    tokens = re.findall(r"`([^`]+)`", walk)
    modules = [token for token in tokens if token.endswith(".py") and not token.startswith("tests/")]
    assert [path for path in modules if not (PACKAGE / path).is_file()] == []
    sources = [(PACKAGE / path).read_text(encoding="utf-8") for path in modules]
    trees = [ast.parse(source) for source in sources]
    unknown = []
    for token in tokens:
        name = token.split("(")[0]
        if token.endswith(".py") or not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            continue  # a path, an option, an expression
        owner, _, attribute = name.rpartition(".")
        if owner[:1].isupper() and "." not in owner:
            found = any(_defines(tree, owner, attribute) for tree in trees)
        else:  # a function, a field, or a call on an object (``gate.update_baselines``)
            found = any(re.search(rf"\b(def |class )?{re.escape(attribute)}\b", source) for source in sources)
        if not found:
            unknown.append(token)
    assert unknown == []
