"""The measurement benchmark (bench/): its decision rules, and one end-to-end run in a tiny configuration
on the simulated NVML GPU (no GPU needed; CodeCarbon is pointed at the simulated GPU, offline)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench import detection, recommend  # the repository's folder, on the path by pytest's `pythonpath`
from pytest_energy.judge.verdict import judge_energy

ROOT = Path(__file__).resolve().parents[1]


def test_the_bench_verdict_is_the_gates_verdict():
    chance = random.Random(4)
    for _ in range(200):
        shift = chance.choice([1.0, 1.03, 1.1, 0.9])
        rounds = chance.choice([5, 7])
        baseline = [1 + chance.gauss(0, 0.02) for _ in range(rounds)]
        current = [shift * (1 + chance.gauss(0, 0.02)) for _ in range(rounds)]
        statuses = detection.verdict_statuses(current, baseline, [0.02, 0.05])
        assert statuses == [judge_energy("t", current, baseline, t, "b").status for t in (0.02, 0.05)]


def test_a_first_round_offset_larger_than_the_effect_hides_it_from_the_verdict():
    """What the benchmark found: five rounds a side cannot outvote one off first round."""
    clean = detection.NoiseModel("clean", 0.002)
    offset = detection.NoiseModel("offset", 0.002, first_offset=0.04, first_sd=0.001)
    caught = detection.simulate_verdict("sim", 1.0, clean, 5, 200, seed=1, effects=[0.03], thresholds=[0.02])
    hidden = detection.simulate_verdict("sim", 1.0, offset, 5, 200, seed=1, effects=[0.03], thresholds=[0.02])
    assert caught[0].by_effect[0.03].regression == 200
    assert hidden[0].by_effect[0.03].regression == 0


def test_a_bare_threshold_on_a_noisy_number_raises_false_alarms():
    quiet = detection.simulate_bare("sim", 1.0, 0.002, "quiet", 1000, seed=2, effects=[0.0])
    noisy = detection.simulate_bare("sim", 1.0, 0.08, "noisy", 1000, seed=2, effects=[0.0])
    assert quiet.by_effect[0.0].regression == 0
    assert 0.2 < noisy.by_effect[0.0].regression / 1000 < 0.45  # P(ratio > 1.05) with 8 % noise a side


def test_recommendation_takes_the_largest_threshold_then_the_shortest_window():
    def rule(window: float, threshold: float, false_alarms: float, detected: float) -> dict:
        return {"rig": "sim", "rule": "verdict", "rounds": 5, "noise_from": "m", "window_seconds": window,
                "threshold": threshold, "cv": 0.01,
                "effects": {"0": {"regression_rate": false_alarms}, "0.03": {"regression_rate": detected}}}

    rules = [rule(0.5, 0.02, 0.0, 0.90), rule(1.0, 0.02, 0.0, 0.99), rule(2.0, 0.02, 0.0, 1.0),
             rule(0.5, 0.01, 0.0, 0.99), rule(1.0, 0.05, 0.0, 0.0), rule(0.2, 0.01, 0.02, 1.0)]
    advice = recommend.defaults(rules, "sim", "m")
    assert (advice["min_window_seconds"], advice["min_effect"], advice["rounds"]) == (1.0, 0.02, 5)
    assert not recommend.defaults(rules[-2:], "sim", "m")["found"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "bench", "--quick", "--sources", "sim",
               "--sections", "noise,detection,validity,render", "--windows", "0.1", "--seconds-per-window", "0.5",
               "--trials", "100", "--measured-trials", "1", "--measured-window", "0.1", "--render-records", "20",
               "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [data] = out.glob("*-quick.json")
    [table] = out.glob("*-quick.md")
    return json.loads(data.read_text()), table.read_text()


@pytest.mark.slow
def test_a_tiny_run_writes_json_and_markdown_with_device_and_date(tiny_run):
    results, table = tiny_run
    meta = results["meta"]
    assert meta["date"][:4].isdigit() and meta["device"]
    assert meta["device_slug"].startswith("cpu-")  # the file is named by the machine (no GPU rig), not by a package
    assert meta["network_attempts"] == []
    assert meta["rigs"]["sim"]["simulated"] is True
    assert "simulated NVML" in table and "## 1. Noise" in table and "## 4. Validity" in table
    assert meta["date"][:10] in table


def test_the_tiny_run_measures_the_simulated_gpu_against_its_true_energy(tiny_run):
    results, _ = tiny_run
    rows = {row["method"]: row for row in results["noise"]}
    plugin, naive = rows["plugin"], rows["naive"]
    assert len(plugin["samples"]) == 5 and len(naive["samples"]) == 5
    assert all(s["true_joules"] > 0 for s in plugin["samples"])
    assert abs(plugin["error_mean_later_windows"]) < 0.05  # 0.1 s windows: ticks interpolated at both edges
    assert naive["error_mean"] < -0.05  # a window read naively misses the load's last partial tick
    for method in ("codecarbon-15", "codecarbon-1"):
        assert rows[method]["samples"] or rows[method]["absent"]
    [validity] = results["validity"]
    assert abs(validity["sum_vs_truth"]) < 0.01
    assert abs(validity["relative_difference"]) < 0.03


def test_the_tiny_run_judges_identical_work_unchanged(tiny_run):
    results, _ = tiny_run
    verdicts = [r for r in results["detection"]["simulated"] if r["rule"] == "verdict"]
    assert verdicts
    assert all(r["effects"]["0"]["regression_rate"] <= 0.05 for r in verdicts)
    measured = results["detection"]["measured"]
    assert {r["rule"] for r in measured} == {"verdict", "bare"}
    assert all(r["effects"]["0"]["trials"] == 1 for r in measured)


def test_contended_runs_make_the_previous_step_fit_cry_wolf_and_not_the_one_used():
    """What bench/changepoint.py found: with one run in ten 20-40 % high, asv's PELT fit (levels of two
    runs, report/model.py's detect_steps before) marks a step in about a third of flat 30-run series;
    the method used marks few and still finds a 20 % step."""
    from bench import changepoint

    noise = changepoint.NOISES[2]
    used, before = "pytest-energy: L1 binary segmentation + rank test", "L1 PELT, levels of 2 runs (detect_steps before)"
    cells = changepoint.run(100, seed=1, noises=(noise,), lengths=(30,), effects=(0.0, 0.2), methods=(used, before))
    rate = {(c["method"], c["effect"]): c for c in cells}
    assert rate[before, 0.0]["false_alarm_rate"] > 0.2
    assert rate[used, 0.0]["false_alarm_rate"] < 0.06
    assert rate[used, 0.2]["detection_rate"] >= 0.7
    table = "\n".join(changepoint.markdown(cells))
    assert "| pytest-energy: L1 binary segmentation + rank test | contended" in table


def test_the_nightly_bench_builds_the_fleet_report_from_a_filled_history(history_at):
    from bench import nightly

    figures = nightly.run(runs=8, records=10, history=history_at)  # on SQLite and on PostgreSQL
    assert figures["runs"] == 8 and figures["kinds"] == 2 and figures["tests"] > 10
    assert figures["build_seconds"] > 0 and figures["html_megabytes"] > 0
    assert "nightly report over 8 runs x 10 records" in nightly.text(figures)


def test_the_history_scale_bench_appends_and_imports_the_nightly_series(history_at, tmp_path):
    from bench import history_scale

    figures = history_scale.measure(history_at, runs=4, records=3, folder=tmp_path)  # SQLite and PostgreSQL
    assert figures["append_median_seconds"] > 0 and figures["import_100_seconds"] > 0
    from pytest_energy.store.history import History

    runs = History(history_at).runs()
    assert len(runs) == 4 + 1 + 100 and {run.branch for run in runs} == {"main"}


def test_the_energy_top_overhead_runs_the_suite_plain_and_listed_and_tables_show_it():
    from bench import overhead, rigs, tables

    run = overhead.top_overhead(rigs.simulated_rig(0), 1, tests=20)
    assert run["tests"] == 20 and run["listed"] == 10  # --energy-top 10 of the 20
    assert "counter" in run["listed_methods"]  # the simulated NVML counter, ticking
    assert run["tests_plain_seconds"] >= 20 * 0.02 and run["tests_measured_seconds"] >= 20 * 0.02
    lines = tables._overhead({"overhead": {"top": [{"rig": "sim", **run}]}, "meta": {"rigs": {"sim": {"label": "sim"}}}})
    assert any("`--energy-top`" in line for line in lines)
    assert any(line.startswith("| sim | 20 x 20 ms |") for line in lines)


def test_the_ordinary_suite_bench_runs_each_way_against_a_commit_and_writes_its_table(tmp_path, capsys):
    from bench import ordinary

    assert ordinary.main(["--tests", "5", "--repetitions", "1", "--against", "HEAD", "--out", str(tmp_path)]) == 0
    [data] = [json.loads(path.read_text()) for path in tmp_path.glob("ordinary-*.json")]
    packages = data["figures"]["packages"]
    assert set(packages) == {"this tree", "HEAD"}  # HEAD's package exported and run in the same rounds
    for row in packages.values():
        assert set(row["seconds"]) == {"collect plain", "collect --energy", "run plain", "run --energy",
                                       "run --energy --energy-top 10"}
        assert all(times["wall"] > 0 and times["cpu"] > 0 for times in row["seconds"].values())
        assert row["seconds"]["collect --energy"]["tests_wall"] == 0 < row["seconds"]["run --energy"]["tests_wall"]
    [table] = tmp_path.glob("ordinary-*.md")
    text = table.read_text()
    assert "5 short tests" in text and "| this tree | run --energy --energy-top 10 |" in text and "| HEAD |" in text
    assert text in capsys.readouterr().out


def test_the_quality_bench_reads_the_runs_and_pools_machines_into_the_budget_rule():
    from bench import quality

    def document(values, outcome="passed"):
        runs = [{"value": v, "seed": i, "threads": 1} for i, v in enumerate(values)]
        return {"records": [{"name": "s.py::case", "outcome": outcome, "quality": {
            "rouge1": {"value": values[0], "trained_in_run": True, "runs": runs, "higher_is_better": True},
            "bertscore": {"value": None, "trained_in_run": True, "runs": [{"value": None, "seed": 0}]},
            "accuracy": {"value": 0.9}}}]}  # not trained here: no spread to measure

    here = {"device": "intel", "records": quality.runs_of(document([0.70, 0.72, 0.74, 0.71, 0.73]))}
    assert list(here["records"]["s.py::case"]) == ["rouge1"]  # a figure not computed here has no spread
    # mean 0.72, sd 0.0158: mean - 4 sd = 0.6568 is below the lowest run - 1 sd (0.684): 0.65
    assert quality.budget([0.70, 0.72, 0.74, 0.71, 0.73]) == 0.65
    assert quality.budget([0.70, 0.72]) is None  # two runs give no spread worth a budget
    assert quality.budget([0.30, 0.32, 0.34], higher_is_better=False) == 0.40  # 0.32 + 4 x 0.02
    other = {"device": "amd", "records": quality.runs_of(document([0.78, 0.79, 0.80]))}
    pool = quality.pooled([here, other])
    assert [run["device"] for run in pool["s.py::case"]["rouge1"]["runs"]] == ["intel"] * 5 + ["amd"] * 3
    table = quality.markdown(dict(here, date="2026-12-06", command="pytest", hardware="intel-x", summary="ok",
                                  exit_code=0, wall_seconds=1.0, seeds=5), pool, [Path("quality-x-amd.json")])
    row = next(line for line in table.splitlines() if line.startswith("| `case` | rouge1 |"))
    assert row.split("|")[8:10] == [" 8 ", f" {quality.budget([0.70, 0.72, 0.74, 0.71, 0.73, 0.78, 0.79, 0.80]):.2f} "]
    assert "Pooled with: `quality-x-amd.json`" in table


def test_the_gpu_check_without_nvml_says_so_in_one_line_and_exits_3(tmp_path):
    from bench import rigs

    if not rigs.gpu_available():
        pytest.skip("this machine has a GPU to check")
    done = subprocess.run([sys.executable, "-m", "bench", "gpu", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    [line] = (done.stdout + done.stderr).strip().splitlines()
    assert line.startswith("bench gpu: no NVIDIA GPU to check here (") and "--simulated" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_simulated_gpu_check_writes_every_section_and_the_constants_table(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "gpu", "--simulated", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "gpu-simulated.json").read_text())
    table = (tmp_path / "gpu-simulated.md").read_text()
    assert table.startswith("# GPU check: simulated NVML GPU") and "**simulated**" in table
    for heading in ("Counter: tick and read cost", "Idle power", "Conditions reads", "Per-round CV at 0.1 s windows",
                    "Detection of +3 % and +1 %", "Per-test overhead", "`--energy-top` overhead",
                    "The suites' GPU-only case (2:4 pruning)", "Constants"):
        assert f"## {heading}\n" in table
    assert "skipped: no CUDA" in table  # the 2:4 case runs only where CUDA is
    assert results["meta"]["simulated"] is True and results["meta"]["product_slug"] == "simulated"
    # The simulated counter's own figures (bench/simnvml.py), measured back.
    assert abs(results["counter"]["tick_seconds"] - 0.1) < 0.01
    assert results["counter"]["read_wall_seconds"] >= 0.0039 * 0.9
    assert abs(results["idle"]["idle_watts"] / 77.0 - 1) < 0.05
    assert results["conditions"]["last"]["power_limit_watts"] == 700.0
    measured = {(r["rule"], r["threshold"]): r["effects"] for r in results["detection"]["measured"]}
    assert set(measured[("verdict", 0.02)]) == {"0", "0.01", "0.03"}
    assert results["top"]["listed"] == 10 and results["overhead"]["tests"]["test_1_marked"]["plain_seconds"] >= 1.0
    rows = {row["constant"]: row for row in results["constants"]}
    assert {"WINDOW_NOISE", "COUNTER_TICK_SECONDS", "TICK_TIMEOUT_PERIODS (frozen-counter ticks)",
            "IDLE_FLOOR_FRACTION", "POWER_LIMIT_MARGIN"} <= set(rows)
    assert all(row["verdict"] == "agrees" for row in rows.values())  # the simulation is built from them
    assert "| WINDOW_NOISE | judge/verdict.py | 10 % a window |" in table


def test_the_gpu_checks_constants_table_says_where_the_data_disagree():
    from bench import gpu

    measured = {"meta": {"window_seconds": 1.0},
                "counter": {"tick_seconds": 0.1, "longest_interval_seconds": 0.45, "interval_watts": [4.0, 80.0, 81.0],
                            "read_wall_seconds": 0.0039},
                "idle": {"idle_watts": 80.0}, "conditions": {"power_limit_watts": 700.0},
                "noise": {"cv_net": 0.14, "watts": [600.0, 1100.0]}}
    rows = {row["constant"]: row["verdict"] for row in gpu.constants(measured)}
    assert rows["TICK_TIMEOUT_PERIODS (frozen-counter ticks)"].startswith("disagrees (a live counter")
    assert rows["WINDOW_NOISE"].startswith("disagrees (")
    assert rows["IDLE_FLOOR_FRACTION"].startswith("disagrees (")  # 4 W of an 80 W idle
    assert rows["POWER_LIMIT_MARGIN"].startswith("disagrees (")  # 1100 W over a 700 W limit
    assert rows["COUNTER_TICK_SECONDS"] == "agrees"
    assert gpu.constants({"meta": {"window_seconds": 1.0}})[0]["verdict"] == "not measured"


def test_a_gpu_check_whose_budget_is_spent_skips_each_part_and_says_so(tmp_path):
    from bench import gpu, rigs

    arguments = gpu.parse_arguments(["--simulated", "--budget", "1e-9", "--out", str(tmp_path)])
    results = gpu.Check(arguments, rigs.simulated_rig(0)).run()
    _, table = gpu.write(results, tmp_path)
    text = table.read_text()
    parts = ("counter", "idle", "conditions", "noise", "detection", "overhead", "top", "pruning")
    assert all(results[part] == {"skipped": "the 1e-09 s budget was spent"} for part in parts)
    assert text.count("skipped: the 1e-09 s budget was spent") == len(parts)
    assert {row["verdict"] for row in results["constants"]} == {"not measured"}
