"""A record's typed facts (its model, its case, its notes) and the figures derived from them: built with
the record, written to the JSON document, read back from it, and read from documents of schema 3 and
older, which kept them under string keys of ``extra``; no report, judge or store code reads ``extra``."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pytest_energy.testing.records import make_record
from pytest_energy.core import figures
from pytest_energy.core.facts import (CaseFacts, FineTuneFacts, GenerationFacts, ModelFacts, Pruned, Trained,
                                      from_old_extra)
from pytest_energy.core.record import SCHEMA_VERSION, Record, misfit
from pytest_energy.report import build_report

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_energy"

MODEL = ModelFacts("distilbert/sst2", "fallback distilbert (2 layers)", "fallback", "k1",
                   reason="distilbert/sst2: HF_HUB_OFFLINE is set", dtype="float32", device="cpu",
                   settings={"max_input_tokens": 128}, details={"training_steps": 300})


def _fine_tune() -> Record:
    recipe = FineTuneFacts(12, 3, "adamw", 5e-5, "linear", 0.7, 0.2, 18,
                           Trained("fallback distilbert", "random", "training from scratch"), {"method": "full fine-tune"})
    return make_record("t.py::tune", 2.0, rounds=5, iterations=2, unit="step", model=MODEL,
                       case=CaseFacts("fine-tune", "text-classification", 8, 5, fine_tune=recipe),
                       proxies={"flops": 1.2e9, "tokens_in": 576.0, "tokens_out": 0.0}, notes=["a note"])


def _decode() -> Record:
    return make_record("t.py::gen::decode", 1.0, unit="inference", iterations_per_call=2, model=MODEL,
                       case=CaseFacts("generation", "text-generation", 2, 5, 8, True,
                                      generation=GenerationFacts("decode", 5, 0.25)),
                       proxies={"flops_per_inference": 2e6, "tokens_in_per_inference": 0.0,
                                "tokens_out_per_inference": 4.0})


@pytest.mark.parametrize("build", [_fine_tune, _decode])
def test_typed_facts_go_through_the_json_document_unchanged(build):
    record = build()
    data = json.loads(json.dumps(record.to_dict()))
    again = Record.from_dict(data)
    assert again.model == record.model and again.case == record.case and again.notes == record.notes
    assert misfit(again, "record") is None  # a tuple read back as a tuple, nested facts as their types
    assert data["figures"] == json.loads(json.dumps(figures.case_figures(record)))
    assert SCHEMA_VERSION == 4


def test_the_figures_of_a_case_are_derived_from_its_record_and_facts():
    tune = _fine_tune()
    found = figures.case_figures(tune)
    gross = tune.per_iteration_gross_joules
    assert found["examples_seen"] == tune.case.examples_seen == 96 and found["epochs"] == 4
    assert found["joules_per_step"] == gross and found["joules_per_epoch_estimate"] == gross * 3
    # Its 3 warm-up steps had no window of their own: they are estimated at the rounds' mean per step.
    assert found["steps_estimated"] == 3 and found["joules_warmup"] is None
    assert found["joules_fine_tune"] == pytest.approx(tune.total_gross_joules + 3 * gross)
    assert found["joules_per_gflop"] == pytest.approx(found["joules_fine_tune"] / 1.2)
    assert "joules_per_output_token" not in found  # a fine-tune makes no text per step
    decode = _decode()
    assert [r.iterations for r in decode.rounds] == [40] * 5 and decode.iterations_per_call == 2
    split = figures.query_split(decode)
    query = 0.25 + decode.per_iteration_gross_joules
    assert split.joules_per_1000_queries == pytest.approx(1000 * query)
    assert split.joules_per_generated_token == pytest.approx(query / 5)
    assert split.decode_joules_per_token == pytest.approx(decode.per_iteration_gross_joules / 4)
    found = figures.case_figures(decode)
    assert found["generation"] == dataclasses.asdict(split)
    assert found["joules_per_output_token"] == pytest.approx(decode.per_iteration_gross_joules / 4)
    assert found["wh_per_1000_inferences"] == figures.wh_per_1000(decode.per_iteration_gross_joules)
    assert figures.case_figures(make_record()) == {}


def _schema_3_record() -> dict:
    """A fine-tune record as pytest-energy wrote it in schema 3: the facts and figures under ``extra``."""
    data = make_record("t.py::tune", 2.0, rounds=5, iterations=2, unit="step").to_dict()
    for key in ("model", "case", "notes", "figures"):
        del data[key]
    data["extra"] = {
        "case": "fine-tune", "task": "summarization", "model": {"requested": "t5-small", "ran": "fallback t5",
                                                                "source": "fallback", "digest": "k2",
                                                                "reason": "offline", "training_steps": 0},
        "device": "cpu", "dtype": "float32", "settings": {"max_new_tokens": 40}, "steps": 12, "batch_size": 8,
        "examples_seen": 96, "steps_per_epoch": 3, "epochs": 4.0, "optimizer": "adamw", "learning_rate": 5e-5,
        "schedule": "linear", "energy_basis": "gross", "rounds": 5, "steps_per_round": [2, 2, 2, 2, 2],
        "steps_warmup": 2, "joules_fine_tune": 50.0, "joules_warmup": 5.0, "steps_estimated": 0,
        "joules_per_step": 2.0, "joules_per_epoch_estimate": 6.0, "loss_first": 0.7, "loss_last": 0.2,
        "eval_examples": 18, "training": {"model": "fallback t5", "initial_weights": "random",
                                          "type": "training from scratch"},
        "adapter": {"method": "full fine-tune"}, "joules_per_gflop": 0.1, "notes": ["the warm-up window was invalid"],
        "user_key": 1,
    }
    return data


def test_a_schema_3_record_reads_its_extra_keys_onto_the_typed_fields():
    record = Record.from_dict(json.loads(json.dumps(_schema_3_record())))
    assert record.model == ModelFacts("t5-small", "fallback t5", "fallback", "k2", "offline", dtype="float32",
                                      device="cpu", settings={"max_new_tokens": 40}, details={"training_steps": 0})
    assert record.case == CaseFacts("fine-tune", "summarization", 8, 5, fine_tune=FineTuneFacts(
        12, 3, "adamw", 5e-5, "linear", 0.7, 0.2, 18, Trained("fallback t5", "random", "training from scratch"),
        {"method": "full fine-tune"}))
    assert record.notes == ["the warm-up window was invalid"]
    assert record.extra == {"user_key": 1}  # what no writer of pytest-energy put there stays the user's
    assert misfit(record, "record") is None
    # The report reads the typed fields: the old fine-tune is classed and its card says how it trained.
    row = build_report([record], None, None).rows[0]
    assert row.is_fine_tune and row.carbon_class is not None and row.model == "fallback t5, standing in for t5-small"


def test_schema_3_cases_of_every_kind_read_their_facts():
    _, inference, _, _ = from_old_extra({
        "case": "inference", "task": "text-classification", "batch_size": 4, "rounds": 2, "inferences": 24,
        "reference_range": [0.0, 2.0], "pruning": "global L1 magnitude, 50% of base-model linear weights",
        "linear_layers": 6, "weight_sparsity": 0.5, "wh_per_1000_inferences": 0.1})
    assert inference == CaseFacts("inference", "text-classification", 4, 2, 24, False, (0.0, 2.0),
                                  Pruned("global L1 magnitude, 50% of base-model linear weights", 6, 0.5))
    _, decode, _, rest = from_old_extra({
        "case": "generation", "phase": "decode", "max_new_tokens": 5, "task": "text-generation",
        "joules_per_output_token": 0.1, "generation": {"prefill_joules_per_query": 0.25}})
    assert decode.generation == GenerationFacts("decode", 5, 0.25) and decode.generates and rest == {}
    # A key of the wrong type (a hand-edited file) reads as absent; a record of no case has none.
    model, none, notes, rest = from_old_extra({"model": {"requested": "m", "parameters": "many"}, "notes": "x",
                                               "batch_size": 4})
    assert model == ModelFacts("m") and none is None and notes == [] and rest == {"batch_size": 4}


def test_no_report_judge_or_store_code_reads_record_extra():
    """``Record.extra`` is the user's free-form dict: a renderer reading a fact from it by string key
    showed a blank for a misspelt one. Typed fields replace every such read."""
    readers = [path for folder in ("report", "judge", "store") for path in (PACKAGE / folder).rglob("*.py")]
    assert len(readers) > 10
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}" for path in readers
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\.extra\b(?!_info)", line)]
    assert found == []


FAST = ["--energy", "--energy-json", "out.json", "--energy-min-window", "0.02", "--energy-rounds", "3",
        "--energy-warmup", "1", "--energy-idle-seconds", "0.05", "--energy-report", "none", "-p", "no:cacheprovider"]

STATED = """
from pytest_energy.core.facts import CaseFacts, GenerationFacts, ModelFacts, RecordFacts

MODEL = ModelFacts("org/m", "fallback m", "fallback", "d1", dtype="float32", device="cpu")

def test_call(energy):
    facts = RecordFacts(MODEL, {"flops_per_inference": 2e6}, CaseFacts("inference", "text-classification", 4, 3, 12,
                        reference_range=(0.0, 2.0)), iterations_per_call=4)
    energy.run(lambda: sum(range(20000)), iterations=2, unit="inference", facts=facts)
    record = energy.last
    assert record.form == "case" and record.iterations_per_call == 4 and record.model == MODEL
    assert [r.iterations for r in record.rounds] == [8, 8, 8] and record.warmup_iterations == 4

def test_block(energy):
    with energy.measure(unit="step", iterations=4) as block:
        for _ in range(4):
            sum(range(20000))
            block.step()
        block.facts = RecordFacts(MODEL, {"flops": 1e9}, CaseFacts("generation", generation=GenerationFacts("decode", 5)))
    assert block.record.case.generation.phase == "decode" and block.record.proxies == {"flops": 1e9}
"""


@pytest.fixture(params=["serial", "xdist"])
def mode(request) -> list[str]:
    return ["-p", "no:xdist"] if request.param == "serial" else ["-n", "2"]


def test_what_a_caller_states_is_built_into_its_record_and_its_json(pytester, mode):
    """``energy.run(facts=...)`` and ``block.facts``, as the case runners state theirs: the record is built
    with them (a call counted as a batch, the form "case"), and they reach the JSON through the xdist
    hand-over too."""
    pytester.makepyfile(test_stated=STATED)
    result = pytester.runpytest(*FAST, *mode)
    result.assert_outcomes(passed=2)
    records = {r["name"].split("::", 1)[1]: r for r in json.loads((pytester.path / "out.json").read_text())["records"]}
    call, block = records["test_call"], records["test_block"]
    assert call["model"]["digest"] == "d1" and call["case"]["reference_range"] == [0.0, 2.0]
    assert call["iterations_per_call"] == 4 and call["figures"]["inferences_per_round"] == [8, 8, 8]
    assert block["form"] == "case" and block["case"]["generation"]["phase"] == "decode"
    assert block["extra"] == {} == call["extra"]  # nothing of pytest-energy's goes there
