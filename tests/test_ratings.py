"""The carbon-reporting study's two classifications (Castaño et al. 2023): the carbon-efficiency class
from the fixed reference table per task, and the reporting-practice class of a card's emissions
metadata; and model cards that say truthfully what was trained and how."""

from __future__ import annotations


import pytest
import yaml

from pytest_energy.core.facts import CaseFacts, FineTuneFacts, ModelFacts, Trained
from pytest_energy.testing.records import make_record, make_run_info
from test_cases import FINETUNE, run_session  # (tests/ is on sys.path under pytest's default import mode)
from pytest_energy.core.record import Carbon
from pytest_energy.report import build_report
from pytest_energy.report.exports import model_card_block
from pytest_energy.report.ratings import CARBON_REFERENCES, carbon_efficiency_class, carbon_per_1000_examples, reporting_practice



def _fine_tune(grams_per_1000_examples: float, task: str = "summarization", model: ModelFacts | None = None,
               training: Trained | None = None):
    """A fine-tune of 4,800 examples (300 steps of 16) whose CO2 is ``grams_per_1000_examples`` per 1,000
    of them."""
    recipe = FineTuneFacts(300, 100, "adamw", 5e-5, "linear", 2.0, 1.0, 8, training or Trained("", "", ""))
    record = make_record("suites/test_ft.py::tune", 1000.0, rounds=1, iterations=300, unit="step", model=model,
                         case=CaseFacts("fine-tune", task, batch_size=16, rounds=1, fine_tune=recipe))
    record.co2_grams = grams_per_1000_examples * 4.8
    return record


def test_the_table_gives_a_class_to_a_single_fine_tune():
    reference = CARBON_REFERENCES["summarization"]
    fifth = (reference.high - reference.low) / 5
    # t5-base: 4.2 Wh per 1,000 inferences x 3 for training at 475 g/kWh = 5.985 g, mid-C of 0..11.97 g.
    assert reference.high == pytest.approx(2 * 4.2 * 3 * 0.475)
    expected = {0.0: "A", 0.99 * fifth: "A", 1.01 * fifth: "B", 2.5 * fifth: "C", 3.5 * fifth: "D",
                4.5 * fifth: "E", 40 * fifth: "E"}
    for grams, grade in expected.items():
        assert carbon_efficiency_class(_fine_tune(grams))[0] == grade, grams
    record = _fine_tune(2.5 * fifth)
    assert carbon_per_1000_examples(record) == pytest.approx(2.5 * fifth)
    grade, basis = carbon_efficiency_class(record)
    assert grade == "C" and "gCO2eq per 1,000 training examples" in basis and "t5-base" in basis
    # The class of a record does not depend on the others in the report (it was a rank among them).
    alone = build_report([record], None, make_run_info()).rows[0]
    together = build_report([record, _fine_tune(0.1 * fifth), _fine_tune(9 * fifth)], None, make_run_info())
    assert alone.carbon_class == "C"
    assert [row.carbon_class for row in together.rows if row.record is record] == ["C"]


def test_a_task_without_reference_or_a_record_without_examples_is_not_classed_and_says_why():
    grade, basis = carbon_efficiency_class(_fine_tune(1.0, task="image-classification"))
    assert grade is None and "no carbon reference for task 'image-classification'" in basis
    record = _fine_tune(1.0)
    record.case.fine_tune.steps = 0  # no training example seen
    grade, basis = carbon_efficiency_class(record)
    assert grade is None and "training examples" in basis


@pytest.mark.parametrize(("metadata", "level", "missing"), [
    ({"emissions": 12.5, "source": "codecarbon", "training_type": "fine-tuning", "geographical_location": "FRA",
      "hardware_used": "1 x A100"}, "complete", ()),
    ({"emissions": 12.5, "source": "codecarbon", "training_type": "pre-training"}, "partial",
     ("geographical_location", "hardware_used")),
    ({"emissions": 12.5, "source": "", "hardware_used": None}, "minimal",
     ("source", "training_type", "geographical_location", "hardware_used")),
    (3.5, "minimal", ("source", "training_type", "geographical_location", "hardware_used")),  # older cards
    ({}, "not reported", ("emissions", "source", "training_type", "geographical_location", "hardware_used")),
    (None, "not reported", ("emissions", "source", "training_type", "geographical_location", "hardware_used")),
    ({"emissions": "a lot", "source": "guess"}, "not reported",
     ("emissions", "training_type", "geographical_location", "hardware_used")),
])
def test_reporting_practice_counts_the_fields_a_card_fills(metadata, level, missing):
    practice = reporting_practice(metadata)
    assert (practice.level, practice.missing) == (level, missing)
    assert practice.text.startswith(f"{level}: {5 - len(missing)} of 5 co2_eq_emissions fields")


def _card(record) -> dict:
    row = build_report([record], None, make_run_info()).rows[0]
    return yaml.safe_load(model_card_block(row))


def test_a_card_says_fine_tuning_only_for_pre_trained_weights_and_classes_itself():
    tuned = _card(_fine_tune(1.0, model=ModelFacts("facebook/bart-base", "facebook/bart-base", "hub cache"),
                             training=Trained("facebook/bart-base", "pre-trained", "fine-tuning")))
    assert tuned["base_model"] == "facebook/bart-base"
    assert tuned["co2_eq_emissions"]["training_type"] == "fine-tuning"
    assert tuned["training"] == {"model": "facebook/bart-base", "initial_weights": "pre-trained"}
    assert tuned["emissions_reporting"] == {"practice": "complete", "missing": []}
    # No country given: the card leaves the location out rather than write a placeholder, and says so.
    record = _fine_tune(1.0)
    record.carbon = Carbon(475.0, "world average", 1.0)
    unknown = _card(record)
    assert "training_type" not in unknown["co2_eq_emissions"] and "base_model" not in unknown
    assert "geographical_location" not in unknown["co2_eq_emissions"]
    assert unknown["emissions_reporting"] == {"practice": "partial",
                                              "missing": ["training_type", "geographical_location"]}


@pytest.mark.slow
def test_the_card_of_a_fallback_trained_from_scratch_does_not_say_fine_tuning(tmp_path):
    # The case runner's own fine-tune of a fallback trained from scratch (test_cases' FINETUNE), with its card.
    session = run_session(tmp_path, {"test_tune.py": FINETUNE}, "--energy", "--energy-json", "out.json",
                          "--energy-model-card", "cards")
    assert session.returncode == 0, "\n".join(session.lines)
    record = session.records["tune"]
    training = record["case"]["fine_tune"]["training"]
    assert training == {"model": record["model"]["ran"], "initial_weights": "random",
                        "type": "training from scratch"}
    assert training["model"].startswith("fallback distilbert")
    card_file, = (tmp_path / "cards").iterdir()
    text = card_file.read_text()
    card = yaml.safe_load(text)
    assert card["co2_eq_emissions"]["training_type"] == "training from scratch"
    assert "fine-tuning" not in text and "base_model" not in card
    assert card["training"]["model"].startswith("fallback distilbert") and \
        "standing in for no-such-org/no-such-model" in card["training"]["model"]
    assert "# model trained: fallback distilbert" in text
    assert card["carbon_efficiency"]["class"] in tuple("ABCDE")  # text classification is in the table


@pytest.mark.parametrize(("facts", "initial", "kind"), [
    ({"source": "hub cache", "ran": "facebook/bart-base"}, "pre-trained", "fine-tuning"),
    ({"source": "fallback", "ran": "fallback bart (d_model=64)", "training_steps": 0}, "random",
     "training from scratch"),
    ({"source": "fallback", "ran": "fallback bart (d_model=64)", "training_steps": 300},
     "pre-trained in this test (300 steps, not measured)", "fine-tuning"),
    ({"source": "factory", "ran": "my_factory"}, "unknown (built by the case's factory)", ""),
])
def test_the_runner_records_what_was_trained_and_from_which_weights(facts, initial, kind):
    from pytest_energy.cases.runner import _how_trained

    assert _how_trained(facts) == Trained(facts["ran"], initial, kind)
